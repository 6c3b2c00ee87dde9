"""load_generator: any supported network file -> a ready generator; save_safetensors: our own safe format."""

import importlib
import json
import warnings
from pathlib import Path

import torch

from models import rosinality, state_dicts, stylegan2, tf_discriminator, tf_stylegan1, tf_stylegan2
from models.atomic_write import WriteError, atomic_output, os_error_from_text
from models.errors import LoadError, UnsafeFileError, clean_line
from models.limits import allocation_budget, load_json, stored_size
from models.pickle_nvidia import PersistentObject, TFNetwork
from models.runtime import faithful_cuda
from models.safe_pickle import read_pickle

# Our safe format: safetensors tensors + this metadata key holding
# {"family": "stylegan2"|"stylegan3"|"stylegan", "init_kwargs": {...}, "info": {...}} as JSON.
CONFIG_KEY = "stylescope"
FAMILY_MODULES = {"stylegan2": "models.stylegan2", "stylegan3": "models.stylegan3", "stylegan": "models.stylegan1"}
ARCHITECTURE_FAMILIES = {"stylegan2": "stylegan2", "stylegan3-t": "stylegan3", "stylegan3-r": "stylegan3",
                         "stylegan": "stylegan"}


def _family_module(family):
    """The models module that builds a family, imported only when needed."""
    if family not in FAMILY_MODULES:
        raise LoadError(f"unsupported generator family {family!r}")
    try:
        return importlib.import_module(FAMILY_MODULES[family])
    except ImportError as err:
        raise LoadError(f"{family} support is not available ({err})") from None


def _one_line(err):
    """An exception as one clean line of text (control characters escaped, long values cut)."""
    text = str(err).strip().splitlines()
    text = text[0] if text else ""
    return clean_line(text if isinstance(err, LoadError) else f"{type(err).__name__}: {text}")


def _stored_tensors(net):
    """The tensors / arrays a network record stores (each TF component once)."""
    if isinstance(net, PersistentObject):
        return list(net.state_dict().values())
    arrays, seen, todo = [], set(), [net]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        arrays.extend(node.variables.values())
        todo.extend(node.components.values())
    return arrays


def _tree_tensors(tree, depth=0):
    """The tensors a checkpoint of plain containers stores (a state dict, or dicts of them)."""
    if isinstance(tree, torch.Tensor):
        return [tree]
    if depth > 4 or not isinstance(tree, (dict, list, tuple)):
        return []
    items = tree.values() if isinstance(tree, dict) else tree
    return [t for item in items for t in _tree_tensors(item, depth + 1)]


def _build_within_budget(build, stored, what):
    """build(): the network is made while torch may allocate only about what the file stores."""
    stored_bytes, count = stored_size(stored)
    with allocation_budget(stored_bytes, count, what), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # odd declared sizes make numpy warn: the error says it
        return build()


# ----------------------------------------------------------------------------
# Pickles: pick the generator out of the inert tree and dispatch by structure.


def _pick_network(tree, key):
    """The generator node of a read_pickle tree: snapshot dict, bare Generator, or TF (G, D, Gs) tuple."""
    if isinstance(tree, dict):
        if key is not None:
            if key not in tree:
                raise LoadError(f"no {key!r} in this snapshot (keys: {', '.join(map(str, tree))})")
            return tree[key]
        for name in ("G_ema", "G"):
            if tree.get(name) is not None:
                return tree[name]
        raise LoadError("no generator in this snapshot (neither 'G_ema' nor 'G')")
    if isinstance(tree, (tuple, list)) and len(tree) == 3 and all(isinstance(n, TFNetwork) for n in tree):
        names = {"G": 0, "D": 1, "Gs": 2, "G_ema": 2, None: 2}
        if key not in names:
            raise LoadError(f"no {key!r} in this TF pickle (it holds G, D, Gs)")
        return tree[names[key]]
    if isinstance(tree, (PersistentObject, TFNetwork)):
        return tree
    raise LoadError(f"not a generator file (found {type(tree).__name__})")


def _from_network(net):
    """(Generator, format) for a PersistentObject or TFNetwork generator."""
    if isinstance(net, PersistentObject):
        if net.class_name != "Generator":
            raise LoadError(f"expected a Generator, found {net.class_name}")
        synthesis = net.submodules().get("synthesis")
        if synthesis is None:
            raise LoadError("Generator has no synthesis network")
        if "input" in synthesis.submodules():  # SynthesisInput: only StyleGAN3 has it
            return _family_module("stylegan3").from_persistent(net), "stylegan3"
        G = stylegan2.from_persistent(net)
        return G, ("stylegan3" if G.flavour == "stylegan3" else "stylegan2-ada-pytorch")

    if isinstance(net, TFNetwork):
        if net.build_func_name == "G_main":
            synthesis = net.components.get("synthesis")
            if synthesis is None or synthesis.build_func_name not in tf_stylegan2.SYNTHESIS_FUNCS:
                found = synthesis.build_func_name if synthesis is not None else "none"
                raise LoadError(f"unsupported TF synthesis network ({found})")
            return tf_stylegan2.from_tf(net), "tf-stylegan2"
        if net.build_func_name == "G_style":
            return tf_stylegan1.from_tf(net), "tf-stylegan"
        raise LoadError(f"unsupported TF network {net.build_func_name!r}")

    raise LoadError(f"not a network (found {type(net).__name__})")


# ----------------------------------------------------------------------------
# Safetensors.


def _load_safetensors(path):
    """(Generator, format) from one of our .safetensors files."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as err:  # safetensors raises its own error types for bad headers
        raise LoadError(f"not a readable safetensors file ({_one_line(err)})") from None
    if CONFIG_KEY not in metadata:
        raise LoadError(f"no {CONFIG_KEY!r} config in the safetensors metadata")
    try:
        config = load_json(metadata[CONFIG_KEY], f"the {CONFIG_KEY!r} config")  # nesting bounded first
        family, init_kwargs = config["family"], config["init_kwargs"]
    except (ValueError, KeyError, TypeError) as err:
        raise LoadError(f"bad {CONFIG_KEY!r} config in the safetensors metadata ({_one_line(err)})") from None

    module = _family_module(family)
    G = _build_within_budget(lambda: module.build(init_kwargs), tensors.values(), "the file")
    stylegan2.load_state_dict_checked(G, tensors)
    saved_info = dict(config.get("info") or {})
    saved_info.pop("format", None)
    G.info.update({k: v for k, v in saved_info.items() if k not in G.info})  # e.g. source_format, tf_static_kwargs
    return G, "stylescope-safetensors"


def save_safetensors(G, path, extra_metadata=None):
    """Write G as .safetensors (tensors + JSON config) atomically: a temp file in the same folder, then rename."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    family = ARCHITECTURE_FAMILIES.get(getattr(G, "architecture", None))
    if family is None:
        raise ValueError(f"cannot save a generator of architecture {getattr(G, 'architecture', None)!r}")
    info = dict(G.info)
    info["source_format"] = info.get("source_format") or info.get("format")
    info.pop("format", None)
    config = {"family": family, "init_kwargs": info.get("init_kwargs"), "info": info}
    metadata = {CONFIG_KEY: json.dumps(config)}
    for name, value in (extra_metadata or {}).items():
        if name == CONFIG_KEY:
            raise ValueError(f"extra metadata may not use the reserved key {CONFIG_KEY!r}")
        metadata[str(name)] = value if isinstance(value, str) else json.dumps(value)
    # Own contiguous CPU copies: safetensors refuses tensors that share memory.
    tensors = {name: t.detach().to("cpu").contiguous().clone() for name, t in G.state_dict().items()}

    # A temporary file in the target's folder, renamed at the end: a failed or interrupted
    # save leaves the old file (if any) and no partial one. Errors name the target, not the temp.
    with atomic_output(path) as temp_name:
        try:
            save_file(tensors, temp_name, metadata=metadata)
        except SafetensorError as error:  # its I/O errors are not OSErrors: "I/O error: ... (os error 28)"
            raise os_error_from_text(error) or WriteError(f"cannot write {path}: {_one_line(error)}") from error


# ----------------------------------------------------------------------------


def load_generator(path, device="cpu", reference=False, key=None):
    """Load a generator (NVIDIA pickle, TF pickle, torch checkpoint or our .safetensors) ready for `device`.

    `key` picks another network of a snapshot ('G' = the training generator instead of 'G_ema';
    'g' in a rosinality training checkpoint).
    By default the generator runs the fastest faithful path for its device (same pixels within
    float rounding); `reference=True` asks for the plain reference implementation.
    """
    path = Path(path)
    if not path.is_file():
        raise LoadError(f"{clean_line(path)}: no such file")
    try:
        if path.suffix.lower() == ".safetensors":
            G, file_format = _load_safetensors(path)
        else:
            tree = read_pickle(path)
            # Checkpoints of plain tensors (rosinality, NADA, pSp/e4e, bare state dicts) first.
            found = _build_within_budget(lambda: state_dicts.generator_from_tree(tree, key), _tree_tensors(tree),
                                         "the file")
            if found is not None:
                G, file_format = found
            else:
                net = _pick_network(tree, key)
                if not isinstance(net, (PersistentObject, TFNetwork)):
                    raise LoadError(f"not a network (found {type(net).__name__})")
                G, file_format = _build_within_budget(lambda: _from_network(net), _stored_tensors(net), "the file")
    except UnsafeFileError:
        raise
    except LoadError as err:
        message = _one_line(err)
        raise LoadError(message if path.name in message else f"{clean_line(path)}: {message}") from None
    except Exception as err:  # anything else while building is still "this file could not be loaded"
        raise LoadError(f"{clean_line(path)}: {_one_line(err)}") from None
    G.info["format"] = file_format
    if hasattr(G, "set_reference"):  # families without a fast path have only the reference one
        G.set_reference(bool(reference))
    if torch.device(device).type == "cuda":
        faithful_cuda()
    return G.eval().requires_grad_(False).to(device)


# ----------------------------------------------------------------------------
# Discriminators (for projection losses): a file's D where it has one.

def load_discriminator(path):
    """The discriminator a network file holds, ready for inference on the CPU, or None where it has none.

    NVIDIA snapshots ('D'), rosinality training checkpoints ('d'), TF (G, D, Gs) pickles, and our
    .safetensors files whose companion <stem>_D.safetensors exists (the default model ships one).
    """
    from models import discriminator

    path = Path(path)
    if not path.is_file():
        raise LoadError(f"{path}: no such file")
    if path.suffix.lower() == ".safetensors":
        return _load_companion_discriminator(path)
    try:
        tree = read_pickle(path)
    except UnsafeFileError:
        raise
    except Exception:  # not a pickle we read: no discriminator from it
        return None
    if isinstance(tree, dict) and isinstance(tree.get("d"), dict) and rosinality.is_discriminator_state(tree["d"]):
        return rosinality.Discriminator(tree["d"])
    net = tree.get("D") if isinstance(tree, dict) else None
    if isinstance(net, PersistentObject) and net.class_name == "Discriminator":
        try:
            return discriminator.from_persistent(net)
        except LoadError as err:
            raise LoadError(f"{path}: discriminator: {_one_line(err)}") from None
    if isinstance(tree, (tuple, list)) and len(tree) == 3 and isinstance(tree[1], TFNetwork):
        try:
            return _build_within_budget(lambda: tf_discriminator.from_tf(tree[1]), _stored_tensors(tree[1]),
                                        "the file")
        except LoadError as err:
            raise LoadError(f"{path}: discriminator: {_one_line(err)}") from None
    return None


def _load_companion_discriminator(path):
    """<stem>_D.safetensors beside a generator .safetensors: tensors plus a JSON config (family + init kwargs)."""
    from safetensors import safe_open

    from models import discriminator

    companion = path.with_name(f"{path.stem}_D.safetensors")
    if not companion.is_file():
        return None
    try:
        with safe_open(str(companion), framework="pt") as f:
            config = json.loads((f.metadata() or {})[CONFIG_KEY])
            tensors = {name: f.get_tensor(name) for name in f.keys()}
        family, init_kwargs = config["family"], config["init_kwargs"]
    except Exception as err:  # bad header, no config, bad JSON
        raise LoadError(f"{companion}: not a readable discriminator file ({_one_line(err)})") from None
    from models import residual_discriminator

    builders = {"stylegan2-discriminator": discriminator.Discriminator,
                "stylescope-residual-discriminator": residual_discriminator.Discriminator}
    if family not in builders:
        raise LoadError(f"{companion}: unsupported discriminator family {family!r}")
    try:
        D = builders[family](**init_kwargs)
    except (TypeError, ValueError) as err:
        raise LoadError(f"{companion}: cannot build the discriminator ({_one_line(err)})") from None
    stylegan2.load_state_dict_checked(D, tensors)
    return D.eval().requires_grad_(False)


def save_discriminator_safetensors(D, path, family="stylescope-residual-discriminator"):
    """Write a discriminator as the companion <stem>_D.safetensors of a generator file (tensors + JSON config)."""
    from safetensors.torch import save_file

    config = {"family": family, "init_kwargs": dict(D.init_kwargs)}
    tensors = {name: t.detach().to("cpu").contiguous().clone() for name, t in D.state_dict().items()}
    with atomic_output(path) as temp_name:
        save_file(tensors, temp_name, metadata={CONFIG_KEY: json.dumps(config)})
