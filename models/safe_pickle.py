"""Restricted unpickler: reads NVIDIA network pickles and torch checkpoints as inert data."""

# A pickle is a small program: every global it names gets imported and called. This module
# reads one with an allow-list of globals, each mapped to a function of ours that only builds
# data (tensors, numpy arrays, plain containers, the two dataclasses below). Nothing in the
# file is ever imported, exec'd or eval'd; NVIDIA's embedded module source stays text.
#
# It subclasses the pure-Python unpickler (pickle._Unpickler) rather than the C one, because
# find_class alone does not close every door: BUILD calls __setstate__ on whatever object is
# on the stack (numpy's dtype.__setstate__ can be talked into an object-typed layout, torch's
# Tensor.__setstate__ attaches hooks), and SETITEMS/APPENDS call methods of any object. Here
# those opcodes only act on the objects we expect them on.

import contextvars
import io
import math
import pickle
import struct
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from models.errors import LoadError, UnsafeFileError, clean_line
from models.limits import MAX_NESTING, ZIP_TAIL_BYTES, check_zip_entries

__all__ = ["read_pickle", "PersistentObject", "TFNetwork", "EasyDict", "Namespace"]


# ----------------------------------------------------------------------------------------
# What comes out


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


class Namespace(dict):
    """Stands in for argparse.Namespace (rosinality's saved `args`): its attributes as a plain dict."""


# ----------------------------------------------------------------------------------------
# Errors inside the unpickler carry no file name; read_pickle adds it.


class _Refused(Exception):
    """The file asks for something outside the allow-list (becomes UnsafeFileError)."""


class _Malformed(Exception):
    """The file is broken or not what it claims to be (becomes LoadError)."""


_MAX_MODULES = 100_000  # modules visited by one state_dict(); real nets have a few hundred
_MAX_KWARG_VALUES = 100_000  # values in a network's init kwargs, shared lists counted each time
# Bytes that zip entries may still expand to in this read (read_pickle sets it per file).
_UNPACK_BUDGET = contextvars.ContextVar("unpack_budget", default=None)
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.save's legacy (non-zip) format
_LEGACY_PROTOCOL = 1001
_LEGACY_MAGIC_PICKLE = b"\x8a\x0a" + _LEGACY_MAGIC.to_bytes(10, "little")  # LONG1 of 10 bytes


def _is_legacy_torch(data):
    """Whether data starts with the legacy format's magic-number pickle, for any pickle_protocol.

    Protocols 2 and 3 put the number right after the PROTO opcode; 4 and 5 put an 8-byte FRAME first.
    """
    if data[:2] in (b"\x80\x02", b"\x80\x03"):
        return data[2:14] == _LEGACY_MAGIC_PICKLE
    return data[:2] in (b"\x80\x04", b"\x80\x05") and data[2:3] == b"\x95" and data[11:23] == _LEGACY_MAGIC_PICKLE


class _Marker:
    """A named, inert stand-in for a class the file mentions only by name."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"<{self.name}>"


class _StorageType(_Marker):
    """Stands in for torch.FloatStorage & co: says which dtype the raw data has."""

    def __init__(self, name, dtype):
        super().__init__(name)
        self.dtype = dtype


class _Storage:
    """A flat run of tensor data: what torch's pickles call a storage."""

    __slots__ = ("flat",)

    def __init__(self, flat):
        self.flat = flat


_NDARRAY = _Marker("numpy.ndarray")
_TF_NETWORK = _Marker("dnnlib.tflib.network.Network")
_TENSOR_TYPE = _Marker("torch.Tensor")
_PARAMETER_TYPE = _Marker("torch.nn.parameter.Parameter")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _int_tuple(value, what):
    if not isinstance(value, (tuple, list, torch.Size)) or not all(_is_int(v) for v in value):
        raise _Malformed(f"{what} is not a tuple of integers")
    if any(v < 0 for v in value):
        raise _Malformed(f"{what} has a negative entry")
    return tuple(value)


def _as_bytes(value, what):
    """Raw data as bytes; protocol-2 files from Python 2 may carry it as a latin-1 str."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("latin1")
    if isinstance(value, pickle.PickleBuffer):
        return bytes(value.raw())
    raise _Malformed(f"{what} is not raw bytes")


# ----------------------------------------------------------------------------------------
# Tensors and storages


def _tensor_from_bytes(raw, dtype, numel):
    """A new flat tensor of `numel` elements of `dtype` holding the little-endian `raw` bytes."""
    flat = torch.empty(numel, dtype=dtype)
    if numel:
        _byte_view(flat)[:] = np.frombuffer(raw, dtype=np.uint8)
        _sanitize_bools(flat)
    return flat


def _byte_view(flat):
    """The raw bytes of a flat tensor as a writable numpy array sharing its memory."""
    return flat.view(torch.uint8).numpy()


def _sanitize_bools(flat):
    if flat.dtype == torch.bool:
        flat.view(torch.uint8).clamp_(0, 1)  # any byte other than 0/1 is not a valid bool


def _check_no_hooks(hooks):
    if not isinstance(hooks, dict):
        raise _Malformed("tensor backward hooks are not a dict")
    if hooks:
        raise _Refused("refused a tensor with backward hooks (they would run code)")


def _view_of_storage(storage, offset, size, stride):
    if not isinstance(storage, _Storage):
        raise _Malformed("tensor data is not a storage")
    if not _is_int(offset) or offset < 0:
        raise _Malformed("tensor storage offset is not a non-negative integer")
    size = _int_tuple(size, "tensor size")
    stride = _int_tuple(stride, "tensor stride")
    if len(size) != len(stride):
        raise _Malformed("tensor size and stride differ in length")
    available = storage.flat.numel()
    numel = math.prod(size)
    if numel:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= available:
            raise _Malformed("tensor reaches past the end of its storage")
        # A view bigger than its data (zero strides) would let a tiny file expand into a
        # huge tensor later; real network files never store such views.
        if numel > available:
            raise _Malformed("tensor view is larger than its storage")
    base = storage.flat.storage_offset()
    return storage.flat.as_strided(size, stride, base + offset)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _view_of_storage(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    _check_no_hooks(OrderedDict() if backward_hooks is None else backward_hooks)
    if metadata is not None and not isinstance(metadata, dict):
        raise _Malformed("tensor metadata is not a dict")
    return _view_of_storage(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    if not isinstance(data, torch.Tensor):
        raise _Malformed("parameter data is not a tensor")
    _check_no_hooks(OrderedDict() if backward_hooks is None else backward_hooks)
    return data  # parameters come back as plain tensors


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    if not isinstance(state, dict):
        raise _Malformed("parameter state is not a dict")
    return _rebuild_parameter(data, requires_grad, backward_hooks)


_TENSOR_REBUILDERS = (_rebuild_tensor, _rebuild_tensor_v2, _rebuild_parameter,
                      _rebuild_parameter_with_state)


def _rebuild_from_type_v2(func, new_type, args, state):
    # torch wraps tensors that carry Python attributes this way; the attributes are dropped.
    if not any(func is rebuilder for rebuilder in _TENSOR_REBUILDERS):
        raise _Refused("refused a tensor rebuilt by something other than torch's tensor rebuilders")
    if new_type is not _TENSOR_TYPE and new_type is not _PARAMETER_TYPE:
        raise _Refused("refused a tensor subclass")
    if not isinstance(args, tuple) or (state is not None and not isinstance(state, dict)):
        raise _Malformed("tensor record is malformed")
    return func(*args)


def _load_from_bytes(blob):
    """Decodes the legacy torch.save blob NVIDIA pickles store each storage in."""
    blob = _as_bytes(blob, "storage blob")
    # torch writes the legacy format here; torch.load would also take a zip, so we do too.
    if _is_zip(blob):
        storage = _read_torch_zip(blob, _STORAGE_GLOBALS)
    else:
        storage = _read_legacy_torch(blob, _STORAGE_GLOBALS)
    if not isinstance(storage, _Storage):
        raise _Malformed("storage blob does not hold a storage")
    return storage


def _check_storage_pid(pid):
    """Validates a ('storage', type, key, location, numel[, view]) persistent id."""
    if not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage":
        raise _Malformed(f"unexpected persistent id {str(pid)[:60]}")
    storage_type, key, location, numel = pid[1:5]
    if not isinstance(storage_type, _StorageType):
        raise _Malformed("storage record does not name a storage type")
    if not isinstance(key, str) or not isinstance(location, str):
        raise _Malformed("storage record key or location is not text")
    if not _is_int(numel) or numel < 0:
        raise _Malformed("storage record size is not a non-negative integer")
    return storage_type.dtype, key, numel, (pid[5] if len(pid) == 6 else None)


def _read_legacy_torch(data, allowed):
    """Reads torch.save's legacy format: 5 pickles, then each storage's count and raw data."""
    stream = io.BytesIO(data)
    if _unpickle(stream, {}) != _LEGACY_MAGIC:
        raise _Malformed("not a torch file (bad magic number)")
    if _unpickle(stream, {}) != _LEGACY_PROTOCOL:
        raise _Malformed("unsupported torch file protocol")
    sys_info = _unpickle(stream, {})
    if not isinstance(sys_info, dict):
        raise _Malformed("torch file header is malformed")
    if sys_info.get("little_endian") is False:
        raise _Malformed("big-endian torch files are not supported")

    storages = {}
    claimed = [0]

    def load_storage(pid):
        dtype, key, numel, view = _check_storage_pid(pid)
        if key not in storages:
            # The data follows the pickles: a storage can't be bigger than what is left.
            claimed[0] += 8 + numel * _itemsize(dtype)
            if claimed[0] > len(data) - stream.tell():
                raise _Malformed("storage is larger than the file holds")
            storages[key] = _Storage(torch.empty(numel, dtype=dtype))
        root = storages[key]
        if root.flat.dtype != dtype or root.flat.numel() != numel:
            raise _Malformed("storage records disagree about one storage")
        if view is None:
            return root
        if not isinstance(view, tuple) or len(view) != 3:
            raise _Malformed("storage view record is malformed")
        _, view_offset, view_size = view
        if not (_is_int(view_offset) and _is_int(view_size)) or view_offset < 0 or view_size < 0 \
                or view_offset + view_size > numel:
            raise _Malformed("storage view reaches outside its storage")
        return _Storage(root.flat[view_offset:view_offset + view_size])

    obj = _unpickle(stream, allowed, load_storage)
    keys = _unpickle(stream, {})
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise _Malformed("torch file storage list is malformed")
    if set(keys) != set(storages):
        raise _Malformed("torch file storage list does not match its storages")
    for key in keys:
        flat = storages[key].flat
        header = stream.read(8)
        if len(header) != 8:
            raise _Malformed("truncated storage data")
        (count,) = struct.unpack("<q", header)
        if count != flat.numel():
            raise _Malformed("storage data size disagrees with its record")
        if count:
            # Straight into the tensor's memory: these can be hundreds of megabytes.
            if stream.readinto(_byte_view(flat)) != count * flat.element_size():
                raise _Malformed("truncated storage data")
            _sanitize_bools(flat)
    return obj


def _itemsize(dtype):
    return torch.empty((), dtype=dtype).element_size()


# ----------------------------------------------------------------------------------------
# numpy: arrays, scalars and dtypes, numeric only (object dtypes would hold arbitrary objects)


def _checked_numpy_dtype(dtype):
    if not isinstance(dtype, np.dtype):
        raise _Malformed("numpy dtype expected")
    if dtype.kind not in "biufc" or dtype.hasobject or dtype.names is not None \
            or dtype.subdtype is not None:
        raise _Refused(f"refused numpy dtype {dtype.str!r} (only plain numeric types are allowed)")
    return dtype


def _new_numpy_dtype(spec, align=False, copy=False):
    if isinstance(spec, bytes):
        spec = spec.decode("latin1")
    if not isinstance(spec, str):
        raise _Malformed("numpy dtype spec is not a string")
    try:
        dtype = np.dtype(spec)
    except TypeError as error:
        raise _Malformed(f"unknown numpy dtype {spec!r}") from error
    _checked_numpy_dtype(dtype)
    # Always a fresh copy: the BUILD that follows sets its byte order, and must never
    # touch numpy's shared built-in dtype objects.
    return np.dtype(spec, align=False, copy=True)


def _build_numpy_dtype(dtype, state):
    if not isinstance(state, tuple) or len(state) not in (8, 9) or state[0] not in (3, 4):
        raise _Malformed("numpy dtype state is malformed")
    _, byteorder, subarray, names, fields = state[:5]
    if subarray is not None or names is not None or fields is not None:
        raise _Refused("refused a structured numpy dtype")
    if byteorder not in ("<", ">", "|", "="):
        raise _Malformed("numpy dtype byte order is malformed")
    # Only the byte order comes from the file; everything else is the dtype's own.
    dtype.__setstate__((3, byteorder, None, None, None, -1, -1, dtype.flags))


def _reconstruct_ndarray(subtype, shape, dtype):
    if subtype is not _NDARRAY:
        raise _Refused("refused a numpy array subclass")
    return np.ndarray((0,), dtype=np.uint8)  # its BUILD gives it shape, dtype and data


def _build_ndarray(array, state):
    if not isinstance(state, tuple) or len(state) not in (4, 5):
        raise _Malformed("numpy array state is malformed")
    if len(state) == 5:
        state = state[1:]
    shape, dtype, is_fortran, rawdata = state
    shape = _int_tuple(shape, "numpy array shape")
    dtype = _checked_numpy_dtype(dtype)
    rawdata = _as_bytes(rawdata, "numpy array data")
    if len(rawdata) != math.prod(shape) * dtype.itemsize:
        raise _Malformed("numpy array data does not match its shape")
    array.__setstate__((1, shape, dtype, bool(is_fortran), rawdata))


def _numpy_scalar(dtype, data):
    dtype = _checked_numpy_dtype(dtype)
    data = _as_bytes(data, "numpy scalar data")
    if len(data) != dtype.itemsize:
        raise _Malformed("numpy scalar data has the wrong size")
    return np.frombuffer(data, dtype=dtype)[0]


def _numpy_frombuffer(buffer, dtype, shape, order):
    # numpy's protocol-5 array format (Python 3.14 pickles by default with protocol 5).
    dtype = _checked_numpy_dtype(dtype)
    shape = _int_tuple(shape, "numpy array shape")
    data = _as_bytes(buffer, "numpy array data")
    if order not in ("C", "F") or len(data) != math.prod(shape) * dtype.itemsize:
        raise _Malformed("numpy array data does not match its shape")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order=order).copy()


# ----------------------------------------------------------------------------------------
# NVIDIA's containers


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
            raise _Malformed(f"{what} contain themselves")
        return memo[id(value)]
    memo[id(value)] = None
    total = 1
    # A dict's keys and values one by one: items() would make pairs whose ids are reused.
    for item in (list(value.keys()) + list(value.values()) if isinstance(value, dict) else value):
        total += _count_values(item, what, memo, limit)
        if total > limit:
            raise _Malformed(f"{what} expand to more than {limit} values")
    memo[id(value)] = total
    return total


def _reconstruct_persistent_obj(meta):
    """torch_utils.persistence's record -> PersistentObject; the module source stays text."""
    if not isinstance(meta, dict):
        raise _Malformed("persistent object record is not a dict")
    kind = meta.get("type")
    if kind != "class":
        raise _Malformed(f"persistent object of type {str(kind)[:40]!r} is not supported "
                         "(only 'class')")
    class_name, module_src, state = meta.get("class_name"), meta.get("module_src"), meta.get("state")
    if not isinstance(class_name, str) or not isinstance(module_src, str):
        raise _Malformed("persistent object has no class name or module source")
    if not isinstance(state, dict):
        raise _Malformed(f"persistent object {class_name[:40]} has no state dict")
    for key in ("_parameters", "_buffers"):
        tensors = state.get(key, {})
        if not isinstance(tensors, dict) or not all(
                isinstance(name, str) and (t is None or isinstance(t, torch.Tensor))
                for name, t in tensors.items()):
            raise _Malformed(f"{class_name[:40]}.{key} is not a dict of tensors")
    modules = state.get("_modules", {})
    if not isinstance(modules, dict) or not all(
            isinstance(name, str) and (m is None or isinstance(m, PersistentObject))
            for name, m in modules.items()):
        raise _Malformed(f"{class_name[:40]}._modules is not a dict of persistent modules")
    non_persistent = state.get("_non_persistent_buffers_set", set())
    if not isinstance(non_persistent, (set, frozenset, list, tuple)):
        raise _Malformed(f"{class_name[:40]}._non_persistent_buffers_set is not a set")
    init_args = state.get("_init_args", ())
    init_kwargs = state.get("_init_kwargs", {})
    if not isinstance(init_args, (tuple, list)) or not isinstance(init_kwargs, dict):
        raise _Malformed(f"{class_name[:40]} init args are malformed")
    _count_values((init_args, init_kwargs), f"{class_name[:40]} init args")
    return PersistentObject(class_name=class_name, module_src=module_src, state=state,
                            init_args=tuple(_plain_dicts(list(init_args))),
                            init_kwargs=_plain_dicts(init_kwargs))


def _build_tf_network(network, state):
    """Fills a TFNetwork from the state dnnlib.tflib.network.Network.__getstate__ wrote."""
    if not isinstance(state, dict):
        raise _Malformed("TF network state is not a dict")
    required = ("name", "static_kwargs", "components", "build_module_src",
                "build_func_name", "variables")
    missing = [key for key in required if key not in state]
    if missing:
        raise _Malformed(f"TF network state lacks {', '.join(missing)}")
    name, func_name = state["name"], state["build_func_name"]
    static_kwargs, components = state["static_kwargs"], state["components"]
    if not isinstance(name, str) or not isinstance(func_name, str) \
            or not isinstance(state["build_module_src"], str):
        raise _Malformed("TF network name or build function is not text")
    if not isinstance(static_kwargs, dict) or not isinstance(components, dict):
        raise _Malformed(f"TF network {name[:40]} kwargs or components are not dicts")
    if not all(isinstance(key, str) and isinstance(c, TFNetwork) for key, c in components.items()):
        raise _Malformed(f"TF network {name[:40]} components are not networks")
    _count_values(static_kwargs, f"TF network {name[:40]} kwargs")
    variables = {}
    if not isinstance(state["variables"], (list, tuple)):
        raise _Malformed(f"TF network {name[:40]} variables are not a list")
    for entry in state["variables"]:
        if not isinstance(entry, (tuple, list)) or len(entry) != 2 or not isinstance(entry[0], str):
            raise _Malformed(f"TF network {name[:40]} has a malformed variable")
        var_name, value = entry
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = np.float32(value)
        if not isinstance(value, (np.ndarray, np.generic)):
            raise _Malformed(f"TF variable {var_name[:60]} is not a numpy value")
        _checked_numpy_dtype(value.dtype)
        value = np.asarray(value)
        if value.ndim == 0:
            value = np.array(value, dtype=np.float32)
        if var_name in variables:
            raise _Malformed(f"TF variable {var_name[:60]} appears twice")
        variables[var_name] = value
    network.name = name
    network.build_func_name = func_name
    network.static_kwargs = _plain_dicts(static_kwargs)
    network.components = dict(components)
    network.variables = variables
    network.build_module_src = state["build_module_src"]


# ----------------------------------------------------------------------------------------
# Small builtins, checked so a file can't use them to allocate or iterate without bound


def _make_set(items=()):
    if not isinstance(items, (list, tuple, set, frozenset)):
        raise _Malformed("set items are not a list")
    return set(items)


def _make_frozenset(items=()):
    return frozenset(_make_set(items))


def _make_slice(*args):
    if len(args) > 3 or not all(a is None or _is_int(a) for a in args):
        raise _Malformed("slice arguments are malformed")
    return slice(*args)


def _make_complex(real=0.0, imag=0.0):
    if not all(isinstance(v, (int, float)) for v in (real, imag)):
        raise _Malformed("complex arguments are not numbers")
    return complex(real, imag)


def _codecs_encode(text, encoding="utf-8"):
    # Protocol-2 pickles written by Python 3 store bytes as _codecs.encode(str, 'latin1').
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Malformed("_codecs.encode used for something other than bytes")
    return text.encode("latin1")


def _make_bytes(*args):
    if not args:
        return b""
    return _codecs_encode(*args)


def _make_bytearray(*args):
    if len(args) == 1 and isinstance(args[0], (bytes, bytearray)):
        return bytearray(args[0])
    return bytearray(_make_bytes(*args))


def _make_size(dims=()):
    return torch.Size(_int_tuple(dims, "torch.Size"))


def _make_device(kind, index=None):
    if not isinstance(kind, str) or not (index is None or _is_int(index)):
        raise _Malformed("torch.device arguments are malformed")
    return torch.device(kind) if index is None else torch.device(kind, index)


# ----------------------------------------------------------------------------------------
# The allow-lists


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "ComplexFloatStorage": torch.complex64,
    "ComplexDoubleStorage": torch.complex128, "UntypedStorage": torch.uint8,
}
_STORAGE_GLOBALS = {("torch", name): _StorageType(f"torch.{name}", dtype)
                    for name, dtype in _STORAGE_DTYPES.items()}
_STORAGE_GLOBALS[("torch.storage", "UntypedStorage")] = _STORAGE_GLOBALS[("torch", "UntypedStorage")]

_TORCH_DTYPE_NAMES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16",
                      "int8", "uint8", "bool", "complex64", "complex128")

_NETWORK_GLOBALS = {
    **_STORAGE_GLOBALS,
    **{("torch", name): getattr(torch, name) for name in _TORCH_DTYPE_NAMES},
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): _make_set,
    ("builtins", "frozenset"): _make_frozenset,
    ("builtins", "slice"): _make_slice,
    ("builtins", "complex"): _make_complex,
    ("builtins", "bytes"): _make_bytes,
    ("builtins", "bytearray"): _make_bytearray,
    ("_codecs", "encode"): _codecs_encode,
    ("torch", "Size"): _make_size,
    ("torch", "device"): _make_device,
    ("torch", "Tensor"): _TENSOR_TYPE,
    ("torch.nn.parameter", "Parameter"): _PARAMETER_TYPE,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _new_numpy_dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct_ndarray,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct_ndarray,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy.core.numeric", "_frombuffer"): _numpy_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numpy_frombuffer,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("argparse", "Namespace"): Namespace,
    ("dnnlib.tflib.network", "Network"): _TF_NETWORK,
}

# Objects whose one BUILD opcode is theirs to finish, by the function that made them.
_BUILDERS = {_new_numpy_dtype: _build_numpy_dtype, _reconstruct_ndarray: _build_ndarray}

_MODULE_ALIASES = {"__builtin__": "builtins"}  # Python 2 pickles


# ----------------------------------------------------------------------------------------
# The unpickler


class _RestrictedUnpickler(pickle._Unpickler):
    """pickle's own unpickler with globals from an allow-list and guarded state opcodes."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, stream, allowed, persistent_load=None):
        super().__init__(stream, encoding="latin1")
        position = stream.tell()
        self._stream_size = stream.seek(0, io.SEEK_END)  # nothing in it can be bigger
        stream.seek(position)
        self._allowed = allowed
        self._load_persistent = persistent_load
        self._awaiting_build = {}  # id -> (object, builder) for objects made by our factories
        self._depths = {}  # id -> (container, nesting depth); the object is kept so its id stays its own

    # -- nesting: hashing a tuple nested 10^6 deep recurses in C without a guard and kills the
    # process, so every container's depth is known, and checked before it is hashed or called.

    def _depth(self, obj):
        entry = self._depths.get(id(obj))
        return entry[1] if entry is not None and entry[0] is obj else 0

    def _nesting(self, items, base=0):
        depth, depths = max(base, 1), self._depths
        for item in items:
            entry = depths.get(id(item))
            if entry is not None and entry[1] >= depth and entry[0] is item:
                depth = entry[1] + 1
        if depth > MAX_NESTING:
            raise _Malformed(f"containers nested more than {MAX_NESTING} levels deep")
        return depth

    def _contains(self, obj, depth):
        self._depths[id(obj)] = (obj, depth)
        return obj

    def _holds(self, target, items):
        """`target` gets `items` (APPEND, SETITEM, BUILD ...): its depth grows before they go in."""
        self._contains(target, self._nesting(items, self._depth(target)))

    def load_mark(self):
        # Each open mark is a container being built: as deep as they may nest, no deeper.
        if len(self.metastack) >= MAX_NESTING:
            raise _Malformed(f"containers nested more than {MAX_NESTING} levels deep")
        super().load_mark()

    dispatch[pickle.MARK[0]] = load_mark

    def load_tuple(self):
        items = self.pop_mark()
        self.append(self._contains(tuple(items), self._nesting(items)))

    dispatch[pickle.TUPLE[0]] = load_tuple

    def load_tuple1(self):
        self.stack[-1] = self._contains((self.stack[-1],), self._nesting(self.stack[-1:]))

    dispatch[pickle.TUPLE1[0]] = load_tuple1

    def load_tuple2(self):
        items = self.stack[-2:]
        self.stack[-2:] = [self._contains(tuple(items), self._nesting(items))]

    dispatch[pickle.TUPLE2[0]] = load_tuple2

    def load_tuple3(self):
        items = self.stack[-3:]
        self.stack[-3:] = [self._contains(tuple(items), self._nesting(items))]

    dispatch[pickle.TUPLE3[0]] = load_tuple3

    def load_list(self):
        items = self.pop_mark()
        self.append(self._contains(items, self._nesting(items)))

    dispatch[pickle.LIST[0]] = load_list

    def load_dict(self):
        items = self.pop_mark()
        depth = self._nesting(items)
        self.append(self._contains({items[i]: items[i + 1] for i in range(0, len(items) - 1, 2)}, depth))

    dispatch[pickle.DICT[0]] = load_dict

    def load_frozenset(self):
        items = self.pop_mark()
        depth = self._nesting(items)
        self.append(self._contains(frozenset(items), depth))

    dispatch[pickle.FROZENSET[0]] = load_frozenset

    def load_binpersid(self):
        pid = self.stack.pop()
        self._nesting([pid])
        self.append(self.persistent_load(pid))

    dispatch[pickle.BINPERSID[0]] = load_binpersid

    def find_class(self, module, name):
        module = _MODULE_ALIASES.get(module, module)
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise _Refused(f"refused global '{module}.{name}' (not on the allow-list of "
                           "network file contents; loading it could run code)") from None

    def persistent_load(self, pid):
        if self._load_persistent is None:
            raise _Malformed("unexpected persistent id in pickle")
        return self._load_persistent(pid)

    def _await_build(self, obj, builder):
        self._awaiting_build[id(obj)] = (obj, builder)

    def load_reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        if not isinstance(args, tuple):
            raise _Malformed("call arguments are not a tuple")
        if not callable(func):
            raise _Malformed(f"a {type(func).__name__} is called like a function")
        depth = self._nesting([args])
        result = self._contains(func(*args), depth)
        builder = next((b for f, b in _BUILDERS.items() if f is func), None)
        if builder is not None:
            self._await_build(result, builder)
        self.stack[-1] = result

    dispatch[pickle.REDUCE[0]] = load_reduce

    def load_newobj(self):
        args = self.stack.pop()
        cls = self.stack.pop()
        if not isinstance(args, tuple) or args:
            raise _Malformed("object creation with arguments is not supported")
        if cls is EasyDict or cls is OrderedDict or cls is Namespace:
            obj = cls()
        elif cls is _TF_NETWORK:
            obj = TFNetwork.__new__(TFNetwork)
            self._await_build(obj, _build_tf_network)
        else:
            what = getattr(cls, "name", None) or getattr(cls, "__name__", type(cls).__name__)
            raise _Refused(f"refused to create an object of {what!r}")
        self.append(obj)

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_build(self):
        state = self.stack.pop()
        target = self.stack[-1]
        self._holds(target, [state])
        pending = self._awaiting_build.pop(id(target), None)
        if pending is not None and pending[0] is target:
            pending[1](target, state)
        elif type(target) is OrderedDict and isinstance(state, dict) \
                and all(isinstance(key, str) for key in state):
            vars(target).update(state)  # torch state dicts carry a `_metadata` attribute
        elif type(target) is Namespace and not target and isinstance(state, dict) \
                and all(isinstance(key, str) for key in state):
            target.update(state)  # an argparse.Namespace's attributes, kept as dict items
        else:
            raise _Refused(f"refused to set the state of a {type(target).__name__} object")

    dispatch[pickle.BUILD[0]] = load_build

    def load_setitem(self):
        value = self.stack.pop()
        key = self.stack.pop()
        target = self._target(dict, "SETITEM")
        self._holds(target, [key, value])
        target[key] = value

    dispatch[pickle.SETITEM[0]] = load_setitem

    def load_setitems(self):
        items = self.pop_mark()
        target = self._target(dict, "SETITEMS")
        self._holds(target, items)
        for i in range(0, len(items) - 1, 2):
            target[items[i]] = items[i + 1]

    dispatch[pickle.SETITEMS[0]] = load_setitems

    def load_append(self):
        value = self.stack.pop()
        target = self._target(list, "APPEND")
        self._holds(target, [value])
        target.append(value)

    dispatch[pickle.APPEND[0]] = load_append

    def load_appends(self):
        items = self.pop_mark()
        target = self._target(list, "APPENDS")
        self._holds(target, items)
        target.extend(items)

    dispatch[pickle.APPENDS[0]] = load_appends

    def load_additems(self):
        items = self.pop_mark()
        target = self._target(set, "ADDITEMS")
        self._holds(target, items)
        target.update(items)

    dispatch[pickle.ADDITEMS[0]] = load_additems

    def _target(self, kind, opcode):
        target = self.stack[-1]
        if not isinstance(target, kind):
            raise _Malformed(f"{opcode} applied to a {type(target).__name__}")
        return target

    def load_bytearray8(self):
        # pickle's own version allocates the declared size before reading a byte of it.
        (size,) = struct.unpack("<Q", self.read(8))
        if size > self._stream_size:
            raise _Malformed("byte array is larger than the file")
        data = self.read(size)
        if len(data) != size:
            raise _Malformed("truncated file")
        self.append(bytearray(data))

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8

    def load_refused(self):
        raise _Refused("refused a pickle opcode that creates arbitrary objects")

    # Old-style instances, keyword-argument construction and the copyreg extension registry
    # have no place in network files.
    for _opcode in (pickle.INST, pickle.OBJ, pickle.NEWOBJ_EX, pickle.EXT1, pickle.EXT2,
                    pickle.EXT4):
        dispatch[_opcode[0]] = load_refused
    del _opcode


def _unpickle(stream, allowed, persistent_load=None):
    unpickler = _RestrictedUnpickler(stream, allowed, persistent_load)
    result = unpickler.load()
    # A TF network or numpy array that never got its state is an empty shell (a dtype
    # without one is just a native-order dtype).
    shells = [obj for obj, _ in unpickler._awaiting_build.values() if not isinstance(obj, np.dtype)]
    if shells:
        raise _Malformed(f"a {type(shells[0]).__name__} object in the file never gets its state")
    return result


# ----------------------------------------------------------------------------------------
# Formats


def _is_zip(data):
    return data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06")


def _read_torch_zip(data, allowed):
    """torch.save's zip format: <stem>/data.pkl plus one raw record per storage."""
    try:
        check_zip_entries(data[-ZIP_TAIL_BYTES:], "zip archive")
    except ValueError as error:
        raise _Malformed(str(error)) from None
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = set(archive.namelist())  # looked up once per storage: a list would be quadratic
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as error:
        raise _Malformed(f"damaged zip archive ({error})") from None
    pickles = [n for n in names if n == "data.pkl" or (n.endswith("/data.pkl") and n.count("/") == 1)]
    if len(pickles) != 1:
        raise _Malformed("zip archive is not a torch checkpoint (no single data.pkl)")
    prefix = pickles[0][: -len("data.pkl")]
    if prefix + "byteorder" in names and _read_zip_entry(archive, prefix + "byteorder", len(data)) != b"little":
        raise _Malformed("big-endian torch checkpoints are not supported")
    storages = {}

    def load_storage(pid):
        dtype, key, numel, view = _check_storage_pid(pid)
        if view is not None:
            raise _Malformed("storage views are not supported in zip checkpoints")
        if key not in storages:
            entry = f"{prefix}data/{key}"
            if entry not in names:
                raise _Malformed(f"checkpoint lacks the data record {key[:40]}")
            nbytes = numel * _itemsize(dtype)
            if archive.getinfo(entry).file_size < nbytes:
                raise _Malformed(f"data record {key[:40]} is smaller than its storage")
            raw = _read_zip_entry(archive, entry, len(data))[:nbytes]
            storages[key] = _Storage(_tensor_from_bytes(raw, dtype, numel))
        storage = storages[key]
        if storage.flat.dtype != dtype or storage.flat.numel() != numel:
            raise _Malformed("storage records disagree about one storage")
        return storage

    return _unpickle(io.BytesIO(_read_zip_entry(archive, pickles[0], len(data))), allowed,
                     load_storage)


def _read_zip_entry(archive, name, archive_size):
    info = archive.getinfo(name)
    # torch stores its records uncompressed, so none can be much bigger than the file; this
    # refuses zip bombs before decompressing. Reading stops at the declared size in any case.
    if info.file_size > 4 * archive_size + (1 << 20):
        raise _Malformed(f"zip entry {name[:60]} claims an absurd size")
    left = _UNPACK_BUDGET.get()
    if left is not None:
        left[0] -= info.file_size
        if left[0] < 0:
            raise _Malformed("zip entries expand to far more than the file's size")
    with archive.open(info) as entry:
        data = entry.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise _Malformed(f"zip entry {name[:60]} has the wrong size")
    return data


def _describe_unreadable(data):
    """What a file that is not a pickle looks like, for the error message."""
    head = data[:4096].lstrip()
    if data.startswith(b"\x89HDF") or data.startswith(b"\x93NUMPY"):
        return "not a network pickle (an HDF5 or .npy file)"
    if len(data) > 8 and data[8:9] == b"{" and int.from_bytes(data[:8], "little") < len(data):
        return "not a pickle (this looks like a safetensors file)"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "unknown format (not a pickle or a torch checkpoint)"
    if head[:1] in (b"{", b"["):
        return "a JSON or text file, not a network pickle"
    return "a text file, not a network pickle"


def _describe_failure(error):
    """What an unexpected exception while reading a pickle says about the file."""
    if isinstance(error, EOFError) or "truncated" in str(error):
        return "truncated file"
    if isinstance(error, MemoryError):
        return "file asks for more memory than there is"
    if isinstance(error, RecursionError):
        return "file is nested too deeply"
    return "corrupt or unsupported file"


def _read_any(data):
    if not data:
        raise _Malformed("empty file")
    if _is_zip(data):
        return _read_torch_zip(data, _NETWORK_GLOBALS)
    if _is_legacy_torch(data):
        return _read_legacy_torch(data, _NETWORK_GLOBALS)
    return _unpickle(io.BytesIO(data), _NETWORK_GLOBALS)


def _read_input(source, name):
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), name or "<bytes>"
    if hasattr(source, "read"):
        name = name or Path(str(getattr(source, "name", "<stream>"))).name
        try:
            return bytes(source.read()), name
        except OSError as error:
            raise LoadError(f"{name}: cannot read ({error.strerror or error})") from None
    try:
        path = Path(source)
    except TypeError:
        raise LoadError(f"{source!r}: not a path or bytes") from None
    name = name or path.name
    try:
        return path.read_bytes(), name
    except OSError as error:
        raise LoadError(f"{name}: cannot read the file ({error.strerror or error})") from None


def _one_line(text, limit=300):
    # Names in the message come from the file: no newlines, no terminal escape codes.
    return clean_line(text, limit)


def read_pickle(path_or_bytes, name=None):
    """Reads a network pickle or torch checkpoint as an inert object tree (see module doc).

    `name` is the file name used in error messages (defaults to the path's name).
    Raises UnsafeFileError for anything outside the allow-list and LoadError for anything
    unreadable, each with a one-line message '<name>: <what>'.
    """
    data, name = _read_input(path_or_bytes, name)
    name = clean_line(name, 160)  # a file name can hold escape codes too
    # Compressed zip entries may expand, each within its own cap; together they may not
    # expand past a few times the file (torch stores its records uncompressed).
    budget = _UNPACK_BUDGET.set([4 * len(data) + (16 << 20)])
    try:
        result = _read_any(data)
    except _Refused as error:
        raise UnsafeFileError(f"{name}: {_one_line(error)}") from None
    except _Malformed as error:
        raise LoadError(f"{name}: {_one_line(error)}") from None
    except LoadError as error:
        raise LoadError(f"{name}: {_one_line(error)}") from None
    except Exception as error:  # noqa: BLE001 -- whatever a broken file triggers, one clear line
        if data[:1] != b"\x80" and not data.startswith(b"PK"):
            raise LoadError(f"{name}: {_describe_unreadable(data)}") from error
        raise LoadError(f"{name}: {_describe_failure(error)} ({type(error).__name__}: "
                        f"{_one_line(error, 160)})") from error
    finally:
        _UNPACK_BUDGET.reset(budget)
    if result is None or isinstance(result, (bool, int, float, complex, str, bytes)):
        raise LoadError(f"{name}: not a network file (the pickle holds only a single "
                        f"{type(result).__name__} value)")
    return result
