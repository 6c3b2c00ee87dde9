"""NVIDIA's records rebuilt as data: torch_utils.persistence modules (init kwargs included), TF networks, EasyDicts."""

# NVIDIA's pickles hold their networks as records of their own libraries: a persistent module
# (class name, embedded source, pickled __dict__, init args) and dnnlib's TF Network state.
# Each becomes a plain dataclass; embedded source stays text and is never run.

from dataclasses import dataclass, field

import numpy as np
import torch

from models.errors import LoadError
from models.pickle_machine import Malformed, Marker
from models.pickle_numpy import checked_numpy_dtype

_MAX_MODULES = 100_000  # modules visited by one state_dict(); real nets have a few hundred
_MAX_KWARG_VALUES = 100_000  # values in a network's init kwargs, shared lists counted each time
TF_NETWORK = Marker("dnnlib.tflib.network.Network")


@dataclass
class PersistentObject:
    """A torch_utils.persistence object (an NVIDIA module), rebuilt as data."""

    class_name: str
    module_src: str  # the embedded source, kept as text, never executed
    state: dict  # the pickled module __dict__
    init_args: tuple = ()
    init_kwargs: dict = field(default_factory=dict)

    def submodules(self):
        """The child modules by name, as NVIDIA's _modules holds them (None skipped)."""
        modules = self.state.get("_modules") or {}
        return {name: module for name, module in modules.items() if module is not None}

    def state_dict(self):
        """The keys and tensors NVIDIA's module.state_dict() gives: params + persistent buffers."""
        out = {}
        budget = [_MAX_MODULES]
        try:
            self._collect_state("", out, set(), budget)
        except RecursionError:
            raise LoadError(f"{self.class_name}: module tree is too deep") from None
        return out

    def _collect_state(self, prefix, out, active, budget):
        # `active` holds the modules on the current path: a file can make a module its own
        # child, and torch's recursion would never end. `budget` bounds shared subtrees.
        if id(self) in active:
            raise LoadError(f"{self.class_name}: module tree loops back on itself at '{prefix}'")
        budget[0] -= 1
        if budget[0] < 0:
            raise LoadError(f"{self.class_name}: module tree is too large")
        active.add(id(self))
        non_persistent = self.state.get("_non_persistent_buffers_set") or ()
        for name, tensor in (self.state.get("_parameters") or {}).items():
            if tensor is not None:
                out[prefix + name] = tensor
        for name, tensor in (self.state.get("_buffers") or {}).items():
            if tensor is not None and name not in non_persistent:
                out[prefix + name] = tensor
        for name, module in self.submodules().items():
            module._collect_state(prefix + name + ".", out, active, budget)
        active.discard(id(self))


@dataclass
class TFNetwork:
    """A dnnlib.tflib.network.Network (TensorFlow StyleGAN 1/2), rebuilt as data."""

    name: str
    build_func_name: str  # 'G_main', 'G_style', 'G_synthesis_stylegan2', ...
    static_kwargs: dict
    components: dict  # name -> TFNetwork
    variables: dict  # name -> numpy array, in file order; 0-d values as 0-d float32 arrays
    build_module_src: str  # text, never executed


class EasyDict(dict):
    """Stands in for dnnlib.util.EasyDict: a plain dict, no attribute access, no code."""


def _plain_dicts(value, seen=None):
    """A copy of `value` with every EasyDict (at any depth) turned into a plain dict."""
    seen = {} if seen is None else seen
    if id(value) in seen:
        return seen[id(value)]
    if isinstance(value, dict):
        out = {} if isinstance(value, EasyDict) else type(value)()
        seen[id(value)] = out
        for key, item in value.items():
            out[key] = _plain_dicts(item, seen)
        return out
    if isinstance(value, list):
        out = []
        seen[id(value)] = out
        out.extend(_plain_dicts(item, seen) for item in value)
        return out
    if isinstance(value, tuple):
        out = tuple(_plain_dicts(item, seen) for item in value)
        seen[id(value)] = out
        return out
    return value


def _count_values(value, what, memo=None, limit=_MAX_KWARG_VALUES):
    """How many values `value` holds once every shared list is copied out; refused past `limit`.

    Lists that share their items ("billion laughs") stay small in the file but grow
    exponentially under a copy without memo; counting with a memo costs one visit per object.
    """
    memo = {} if memo is None else memo
    if not isinstance(value, (dict, list, tuple, set, frozenset)):
        return 1
    if id(value) in memo:
        if memo[id(value)] is None:
            raise Malformed(f"{what} contain themselves")
        return memo[id(value)]
    memo[id(value)] = None
    total = 1
    # A dict's keys and values one by one: items() would make pairs whose ids are reused.
    for item in (list(value.keys()) + list(value.values()) if isinstance(value, dict) else value):
        total += _count_values(item, what, memo, limit)
        if total > limit:
            raise Malformed(f"{what} expand to more than {limit} values")
    memo[id(value)] = total
    return total


def reconstruct_persistent_obj(meta):
    """torch_utils.persistence's record -> PersistentObject; the module source stays text."""
    if not isinstance(meta, dict):
        raise Malformed("persistent object record is not a dict")
    kind = meta.get("type")
    if kind != "class":
        raise Malformed(f"persistent object of type {str(kind)[:40]!r} is not supported "
                        "(only 'class')")
    class_name, module_src, state = meta.get("class_name"), meta.get("module_src"), meta.get("state")
    if not isinstance(class_name, str) or not isinstance(module_src, str):
        raise Malformed("persistent object has no class name or module source")
    if not isinstance(state, dict):
        raise Malformed(f"persistent object {class_name[:40]} has no state dict")
    for key in ("_parameters", "_buffers"):
        tensors = state.get(key, {})
        if not isinstance(tensors, dict) or not all(
                isinstance(name, str) and (t is None or isinstance(t, torch.Tensor))
                for name, t in tensors.items()):
            raise Malformed(f"{class_name[:40]}.{key} is not a dict of tensors")
    modules = state.get("_modules", {})
    if not isinstance(modules, dict) or not all(
            isinstance(name, str) and (m is None or isinstance(m, PersistentObject))
            for name, m in modules.items()):
        raise Malformed(f"{class_name[:40]}._modules is not a dict of persistent modules")
    non_persistent = state.get("_non_persistent_buffers_set", set())
    if not isinstance(non_persistent, (set, frozenset, list, tuple)):
        raise Malformed(f"{class_name[:40]}._non_persistent_buffers_set is not a set")
    init_args = state.get("_init_args", ())
    init_kwargs = state.get("_init_kwargs", {})
    if not isinstance(init_args, (tuple, list)) or not isinstance(init_kwargs, dict):
        raise Malformed(f"{class_name[:40]} init args are malformed")
    _count_values((init_args, init_kwargs), f"{class_name[:40]} init args")
    return PersistentObject(class_name=class_name, module_src=module_src, state=state,
                            init_args=tuple(_plain_dicts(list(init_args))),
                            init_kwargs=_plain_dicts(init_kwargs))


def build_tf_network(network, state):
    """Fills a TFNetwork from the state dnnlib.tflib.network.Network.__getstate__ wrote."""
    if not isinstance(state, dict):
        raise Malformed("TF network state is not a dict")
    required = ("name", "static_kwargs", "components", "build_module_src",
                "build_func_name", "variables")
    missing = [key for key in required if key not in state]
    if missing:
        raise Malformed(f"TF network state lacks {', '.join(missing)}")
    name, func_name = state["name"], state["build_func_name"]
    static_kwargs, components = state["static_kwargs"], state["components"]
    if not isinstance(name, str) or not isinstance(func_name, str) \
            or not isinstance(state["build_module_src"], str):
        raise Malformed("TF network name or build function is not text")
    if not isinstance(static_kwargs, dict) or not isinstance(components, dict):
        raise Malformed(f"TF network {name[:40]} kwargs or components are not dicts")
    if not all(isinstance(key, str) and isinstance(c, TFNetwork) for key, c in components.items()):
        raise Malformed(f"TF network {name[:40]} components are not networks")
    _count_values(static_kwargs, f"TF network {name[:40]} kwargs")
    variables = {}
    if not isinstance(state["variables"], (list, tuple)):
        raise Malformed(f"TF network {name[:40]} variables are not a list")
    for entry in state["variables"]:
        if not isinstance(entry, (tuple, list)) or len(entry) != 2 or not isinstance(entry[0], str):
            raise Malformed(f"TF network {name[:40]} has a malformed variable")
        var_name, value = entry
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = np.float32(value)
        if not isinstance(value, (np.ndarray, np.generic)):
            raise Malformed(f"TF variable {var_name[:60]} is not a numpy value")
        checked_numpy_dtype(value.dtype)
        value = np.asarray(value)
        if value.ndim == 0:
            value = np.array(value, dtype=np.float32)
        if var_name in variables:
            raise Malformed(f"TF variable {var_name[:60]} appears twice")
        variables[var_name] = value
    network.name = name
    network.build_func_name = func_name
    network.static_kwargs = _plain_dicts(static_kwargs)
    network.components = dict(components)
    network.variables = variables
    network.build_module_src = state["build_module_src"]


def new_tf_network():
    """An empty TFNetwork: NEWOBJ makes it, its one BUILD (build_tf_network) fills it."""
    return TFNetwork.__new__(TFNetwork)
