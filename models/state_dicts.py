"""Torch checkpoints that hold tensors, not NVIDIA modules: rosinality, NADA, pSp/e4e and bare state dicts."""

# Every setting comes from tensor names and shapes; `args`/`opts` stored beside the weights are
# never read (they may disagree with the tensors). What no tensor says gets a documented
# default and is listed in G.info["source"]["defaults"].

import re

import numpy as np
import torch

from models import rosinality, stylegan2
from models.errors import LoadError
from models.pickle_nvidia import PersistentObject, TFNetwork

# What NVIDIA's train.py uses in both repos; a bare state dict does not say.
SG2_DEFAULTS = dict(conv_clamp=256, num_fp16_res=4)
SG3_DEFAULTS = dict(output_scale=0.25, conv_clamp=256, num_fp16_res=4, num_critical=2, first_cutoff=2,
                    first_stopband=2 ** 2.1, last_stopband_rel=2 ** 0.3, filter_size=6, lrelu_upsampling=2)
_KEYS_SHOWN = 6


def _tensor_dict(value):
    return isinstance(value, dict) and bool(value) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def _holds_tensors(tree, depth=0):
    if isinstance(tree, torch.Tensor):
        return True
    if depth > 3:
        return False
    items = tree.values() if isinstance(tree, dict) else tree if isinstance(tree, (list, tuple)) else ()
    return any(_holds_tensors(item, depth + 1) for item in items)


def _has_network_objects(tree):
    return isinstance(tree, dict) and any(isinstance(v, (PersistentObject, TFNetwork)) for v in tree.values())


def _key_list(mapping):
    # Keys come from the file: printable, short, no line breaks.
    keys = ["".join(c if c.isprintable() else "?" for c in " ".join(str(k).split()))[:40] for k in mapping]
    shown = ", ".join(keys[:_KEYS_SHOWN])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > _KEYS_SHOWN else "")


def _no_generator(tree):
    return LoadError(f"a torch checkpoint, but no StyleGAN generator found: keys {_key_list(tree)}")


def _locate(tree, key):
    """(state dict, format name, latent_avg or None) of the generator a checkpoint tree holds."""
    if "g" in tree and "d" in tree:
        kind = "rosinality-checkpoint"
    elif "g_optim" in tree:
        kind = "stylegan-nada"
    elif "latent_avg" in tree:
        kind = "rosinality-converted"
    else:
        kind = "rosinality-g_ema"
    if key is not None:  # another network of the file, e.g. 'g' (or NVIDIA's name 'G'): the training generator
        name = key if key in tree else key.lower() if key.lower() in tree else None
        if name is None or not _tensor_dict(tree[name]):
            raise LoadError(f"no {key!r} state dict in this checkpoint (keys: {_key_list(tree)})")
        return tree[name], (kind if "g_ema" in tree else "state-dict"), None
    if _tensor_dict(tree.get("g_ema")):
        return tree["g_ema"], kind, tree.get("latent_avg")
    state = tree.get("state_dict")
    if _tensor_dict(state) and any(str(k).startswith("decoder.") for k in state):
        decoder = {k[len("decoder."):]: v for k, v in state.items() if k.startswith("decoder.")}
        return decoder, "psp-e4e", tree.get("latent_avg")
    for name in ("G_ema", "G"):
        if _tensor_dict(tree.get(name)):
            return tree[name], "state-dict", None
    if _tensor_dict(tree):
        return tree, "state-dict", None
    raise _no_generator(tree)


def generator_from_tree(tree, key=None):
    """(G, format) for a checkpoint of tensors; None for anything else (NVIDIA/TF pickles take over)."""
    if not isinstance(tree, dict) or _has_network_objects(tree) or not _holds_tensors(tree):
        return None
    sd, kind, latent_avg = _locate(tree, key)
    try:
        return _build(sd, kind, latent_avg)
    except KeyError as err:  # a layout recognised by some keys, missing others
        raise LoadError(f"{kind} generator lacks the tensor {str(err)[:80]}") from None
    except (IndexError, ValueError, RuntimeError) as err:  # tensors of the wrong rank or size
        what = (str(err).splitlines() or [type(err).__name__])[0][:120]
        raise LoadError(f"{kind} generator tensors do not fit together ({what})") from None


def _build(sd, kind, latent_avg):
    if rosinality.is_generator_state(sd):
        G, notes = rosinality.load_generator_state(sd, latent_avg)
        file_format = kind if kind != "state-dict" else "rosinality-state-dict"
    elif "synthesis.b4.const" in sd:
        G, notes = _load_sg2(sd)
        file_format = "stylegan2-state-dict"
    elif "synthesis.input.freqs" in sd:
        G, notes = _load_sg3(sd)
        file_format = "stylegan3-state-dict"
    elif rosinality.is_discriminator_state(sd):
        raise LoadError("this state dict is a rosinality discriminator, not a generator")
    else:
        raise _no_generator(sd)
    G.info["source"] = notes
    return G, file_format


# ----------------------------------------------------------------------------
# NVIDIA state dicts: torch.save(G_ema.state_dict()) of stylegan2-ada-pytorch / stylegan3


def _mapping_kwargs(sd):
    """z/c/w dims and mapping settings from mapping.fc*/embed tensors."""
    layers = rosinality.key_indices(sd, r"mapping\.fc(\d+)\.weight")
    if not layers or layers != list(range(len(layers))):
        raise LoadError("state dict has no mapping.fc0 ... mapping layers")
    fc0 = sd["mapping.fc0.weight"]
    w_dim = int(sd[f"mapping.fc{layers[-1]}.weight"].shape[0])
    mapping = dict(num_layers=len(layers), lr_multiplier=rosinality.mapping_lr_multiplier(fc0),
                   layer_features=int(fc0.shape[0]) if len(layers) > 1 else None)
    c_dim = embed = 0
    if "mapping.embed.weight" in sd:
        embed, c_dim = (int(n) for n in sd["mapping.embed.weight"].shape)
        mapping["embed_features"] = embed
    z_dim = int(fc0.shape[1]) - embed
    return dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, mapping_kwargs=mapping)


def _finish(G, sd, kwargs, defaults, inferred):
    """Load sd strictly into G; notes for info (what was inferred or defaulted, where w_avg came from)."""
    has_w_avg = "mapping.w_avg" in sd
    if not has_w_avg:
        sd = dict(sd, **{"mapping.w_avg": G.mapping.w_avg})
    stylegan2.load_state_dict_checked(G, sd)
    mapping = kwargs["mapping_kwargs"]
    inferred = dict(resolution=kwargs["img_resolution"], z_dim=kwargs["z_dim"], w_dim=kwargs["w_dim"],
                    c_dim=kwargs["c_dim"], mapping_layers=mapping["num_layers"], **inferred)
    notes = {"inferred": inferred, "defaults": defaults,
             "lr_multiplier": f"{kwargs['mapping_kwargs']['lr_multiplier']} (from the mapping weights' scale)",
             "w_avg": "file"}
    if not has_w_avg:
        if G.c_dim:
            notes["w_avg"] = "none in the file: zeros (conditional network, no estimate)"
        else:
            notes["w_avg"] = rosinality.set_w_avg(G, None)
    return G, notes


def _load_sg2(sd):
    resolutions = rosinality.key_indices(sd, r"synthesis\.b(\d+)\..*")
    if not resolutions or resolutions != [2 ** i for i in range(2, 2 + len(resolutions))]:
        raise LoadError(f"StyleGAN2 state dict with blocks {resolutions} (need b4, b8, ... in steps of 2x)")
    last = resolutions[-1]
    channels = [int(sd["synthesis.b4.const"].shape[0])] + \
        [int(sd[f"synthesis.b{r}.conv1.weight"].shape[0]) for r in resolutions[1:]]
    if any(f"synthesis.b{r}.skip.weight" in sd for r in resolutions):
        architecture = "resnet"
    elif all(f"synthesis.b{r}.torgb.weight" in sd for r in resolutions):
        architecture = "skip"
    else:
        architecture = "orig"
    kwargs = dict(_mapping_kwargs(sd), img_resolution=last,
                  img_channels=int(sd[f"synthesis.b{last}.torgb.weight"].shape[0]), flavour="stylegan2-ada")
    kwargs["synthesis_kwargs"] = dict(channel_table=channels, architecture=architecture,
                                      resample_filter=_taps(sd["synthesis.b4.resample_filter"]), **SG2_DEFAULTS)
    G = stylegan2.build(kwargs)
    return _finish(G, sd, kwargs, dict(SG2_DEFAULTS), dict(architecture=architecture, channels=channels))


def _taps(filter_2d):
    k = filter_2d.double()
    return [float(t) for t in (k / k.sum()).sum(dim=1)]


def _sg3_layers(sd):
    """[(idx, size, channels, name)] of synthesis.L{idx}_{size}_{channels} layers, in order."""
    regex = re.compile(r"synthesis\.L(\d+)_(\d+)_(\d+)\.weight")
    layers = sorted((int(m[1]), int(m[2]), int(m[3]), f"L{m[1]}_{m[2]}_{m[3]}") for m in map(regex.fullmatch, sd) if m)
    if not layers or [layer[0] for layer in layers] != list(range(len(layers))):
        raise LoadError("StyleGAN3 state dict without layers L0 ... Ln")
    return layers


def _sg3_channel_base(schedule, channels, channel_max):
    """A channel_base that gives these channels: a power of two if one fits (NVIDIA's are)."""
    cutoffs = schedule["cutoffs"][:-1]
    wanted = np.asarray(channels[:-1], dtype=np.float64)
    candidates = [2.0 ** e for e in range(4, 24)] + list(2 * wanted * cutoffs)
    for base in candidates:
        if np.array_equal(np.rint(np.minimum((base / 2) / cutoffs, channel_max)), wanted):
            return int(base) if float(base).is_integer() else float(base)
    raise LoadError(f"no channel_base gives the StyleGAN3 channels {channels}")


def _load_sg3(sd):
    from models import stylegan3

    layers = _sg3_layers(sd)
    num_layers = len(layers) - 1
    img_resolution, img_channels = layers[-1][1], layers[-1][2]
    channels = [layer[2] for layer in layers]
    d = SG3_DEFAULTS
    schedule = stylegan3.layer_schedule(img_resolution, img_channels, 2, 1, num_layers, d["num_critical"],
                                        d["first_cutoff"], d["first_stopband"], d["last_stopband_rel"], 0)
    margin = (layers[0][1] - schedule["sampling_rates"][0]) / 2
    if margin < 0 or not float(margin).is_integer():
        raise LoadError(f"StyleGAN3 first layer size {layers[0][1]} fits no margin")
    first = sd[f"synthesis.{layers[0][3]}.weight"]
    radial = any(v.ndim == 2 for k, v in sd.items() if k.endswith(".down_filter"))
    kwargs = dict(_mapping_kwargs(sd), img_resolution=img_resolution, img_channels=img_channels,
                  channel_base=_sg3_channel_base(schedule, channels, channels[0]), channel_max=channels[0],
                  num_layers=num_layers, margin_size=int(margin), conv_kernel=int(first.shape[-1]),
                  use_radial_filters=radial)
    kwargs["mapping_kwargs"].pop("layer_features", None)  # StyleGAN3's mapping has w_dim-wide layers
    kwargs["mapping_kwargs"].pop("embed_features", None)
    kwargs.update(d)
    G = stylegan3.build(kwargs)
    expected = G.state_dict()
    for key, value in expected.items():
        if key in sd and tuple(sd[key].shape) != tuple(value.shape):
            raise LoadError(f"StyleGAN3 tensor {key} has shape {list(sd[key].shape)}, the inferred layout "
                            f"expects {list(value.shape)}")
    inferred = {k: kwargs[k] for k in ("channel_base", "channel_max", "num_layers", "margin_size", "conv_kernel")}
    return _finish(G, sd, kwargs, dict(d), dict(inferred, variant=G.architecture))
