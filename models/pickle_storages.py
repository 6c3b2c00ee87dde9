"""Torch's side of a network file: storages and tensors, and torch.save's zip and legacy containers."""

# Every allocation here is bounded by what the file stores: a storage's size is checked
# against the bytes left in the file (legacy) or the zip record (zip) before memory is taken,
# and a tensor is a checked view of its storage, never larger than it.

import contextlib
import contextvars
import io
import math
import struct
import zipfile
from collections import OrderedDict

import numpy as np
import torch

from models.limits import ZIP_TAIL_BYTES, check_zip_entries
from models.pickle_machine import NOTHING, Malformed, Marker, Refused, as_bytes, int_tuple, is_int, unpickle

# Bytes that zip entries may still expand to in this read (unpack_budget sets it per file).
_UNPACK_BUDGET = contextvars.ContextVar("unpack_budget", default=None)
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.save's legacy (non-zip) format
_LEGACY_PROTOCOL = 1001
_LEGACY_MAGIC_PICKLE = b"\x8a\x0a" + _LEGACY_MAGIC.to_bytes(10, "little")  # LONG1 of 10 bytes


class StorageType(Marker):
    """Stands in for torch.FloatStorage & co: says which dtype the raw data has."""

    def __init__(self, name, dtype):
        super().__init__(name)
        self.dtype = dtype


class Storage:
    """A flat run of tensor data: what torch's pickles call a storage."""

    __slots__ = ("flat",)

    def __init__(self, flat):
        self.flat = flat


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "ComplexFloatStorage": torch.complex64,
    "ComplexDoubleStorage": torch.complex128, "UntypedStorage": torch.uint8,
}
STORAGE_TYPES = {name: StorageType(f"torch.{name}", dtype) for name, dtype in _STORAGE_DTYPES.items()}
TENSOR_TYPE = Marker("torch.Tensor")
PARAMETER_TYPE = Marker("torch.nn.parameter.Parameter")


# ----------------------------------------------------------------------------------------
# Tensors


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
        raise Malformed("tensor backward hooks are not a dict")
    if hooks:
        raise Refused("refused a tensor with backward hooks (they would run code)")


def _view_of_storage(storage, offset, size, stride):
    if not isinstance(storage, Storage):
        raise Malformed("tensor data is not a storage")
    if not is_int(offset) or offset < 0:
        raise Malformed("tensor storage offset is not a non-negative integer")
    size = int_tuple(size, "tensor size")
    stride = int_tuple(stride, "tensor stride")
    if len(size) != len(stride):
        raise Malformed("tensor size and stride differ in length")
    available = storage.flat.numel()
    numel = math.prod(size)
    if numel:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= available:
            raise Malformed("tensor reaches past the end of its storage")
        # A view bigger than its data (zero strides) would let a tiny file expand into a
        # huge tensor later; real network files never store such views.
        if numel > available:
            raise Malformed("tensor view is larger than its storage")
    base = storage.flat.storage_offset()
    return storage.flat.as_strided(size, stride, base + offset)


def rebuild_tensor(storage, storage_offset, size, stride):
    return _view_of_storage(storage, storage_offset, size, stride)


def rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                      backward_hooks=None, metadata=None):
    _check_no_hooks(OrderedDict() if backward_hooks is None else backward_hooks)
    if metadata is not None and not isinstance(metadata, dict):
        raise Malformed("tensor metadata is not a dict")
    return _view_of_storage(storage, storage_offset, size, stride)


def rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    if not isinstance(data, torch.Tensor):
        raise Malformed("parameter data is not a tensor")
    _check_no_hooks(OrderedDict() if backward_hooks is None else backward_hooks)
    return data  # parameters come back as plain tensors


def rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    if not isinstance(state, dict):
        raise Malformed("parameter state is not a dict")
    return rebuild_parameter(data, requires_grad, backward_hooks)


_TENSOR_REBUILDERS = (rebuild_tensor, rebuild_tensor_v2, rebuild_parameter, rebuild_parameter_with_state)


def rebuild_from_type_v2(func, new_type, args, state):
    # torch wraps tensors that carry Python attributes this way; the attributes are dropped.
    if not any(func is rebuilder for rebuilder in _TENSOR_REBUILDERS):
        raise Refused("refused a tensor rebuilt by something other than torch's tensor rebuilders")
    if new_type is not TENSOR_TYPE and new_type is not PARAMETER_TYPE:
        raise Refused("refused a tensor subclass")
    if not isinstance(args, tuple) or (state is not None and not isinstance(state, dict)):
        raise Malformed("tensor record is malformed")
    return func(*args)


def make_size(dims=()):
    return torch.Size(int_tuple(dims, "torch.Size"))


def make_device(kind, index=None):
    if not isinstance(kind, str) or not (index is None or is_int(index)):
        raise Malformed("torch.device arguments are malformed")
    return torch.device(kind) if index is None else torch.device(kind, index)


# ----------------------------------------------------------------------------------------
# Storages


def load_storage_blob(allowed, blob):
    """Decodes the legacy torch.save blob NVIDIA pickles store each storage in (read with `allowed`)."""
    blob = as_bytes(blob, "storage blob")
    # torch writes the legacy format here; torch.load would also take a zip, so we do too.
    if is_zip(blob):
        storage = read_torch_zip(blob, allowed)
    else:
        storage = read_legacy_torch(blob, allowed)
    if not isinstance(storage, Storage):
        raise Malformed("storage blob does not hold a storage")
    return storage


def _check_storage_pid(pid):
    """Validates a ('storage', type, key, location, numel[, view]) persistent id."""
    if not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage":
        raise Malformed(f"unexpected persistent id {str(pid)[:60]}")
    storage_type, key, location, numel = pid[1:5]
    if not isinstance(storage_type, StorageType):
        raise Malformed("storage record does not name a storage type")
    if not isinstance(key, str) or not isinstance(location, str):
        raise Malformed("storage record key or location is not text")
    if not is_int(numel) or numel < 0:
        raise Malformed("storage record size is not a non-negative integer")
    return storage_type.dtype, key, numel, (pid[5] if len(pid) == 6 else None)


def _itemsize(dtype):
    return torch.empty((), dtype=dtype).element_size()


# ----------------------------------------------------------------------------------------
# torch.save's legacy format


def is_legacy_torch(data):
    """Whether data starts with the legacy format's magic-number pickle, for any pickle_protocol.

    Protocols 2 and 3 put the number right after the PROTO opcode; 4 and 5 put an 8-byte FRAME first.
    """
    if data[:2] in (b"\x80\x02", b"\x80\x03"):
        return data[2:14] == _LEGACY_MAGIC_PICKLE
    return data[:2] in (b"\x80\x04", b"\x80\x05") and data[2:3] == b"\x95" and data[11:23] == _LEGACY_MAGIC_PICKLE


def read_legacy_torch(data, allowed):
    """Reads torch.save's legacy format: 5 pickles, then each storage's count and raw data."""
    stream = io.BytesIO(data)
    if unpickle(stream, NOTHING) != _LEGACY_MAGIC:
        raise Malformed("not a torch file (bad magic number)")
    if unpickle(stream, NOTHING) != _LEGACY_PROTOCOL:
        raise Malformed("unsupported torch file protocol")
    sys_info = unpickle(stream, NOTHING)
    if not isinstance(sys_info, dict):
        raise Malformed("torch file header is malformed")
    if sys_info.get("little_endian") is False:
        raise Malformed("big-endian torch files are not supported")

    storages = {}
    claimed = [0]

    def load_storage(pid):
        dtype, key, numel, view = _check_storage_pid(pid)
        if key not in storages:
            # The data follows the pickles: a storage can't be bigger than what is left.
            claimed[0] += 8 + numel * _itemsize(dtype)
            if claimed[0] > len(data) - stream.tell():
                raise Malformed("storage is larger than the file holds")
            storages[key] = Storage(torch.empty(numel, dtype=dtype))
        root = storages[key]
        if root.flat.dtype != dtype or root.flat.numel() != numel:
            raise Malformed("storage records disagree about one storage")
        if view is None:
            return root
        if not isinstance(view, tuple) or len(view) != 3:
            raise Malformed("storage view record is malformed")
        _, view_offset, view_size = view
        if not (is_int(view_offset) and is_int(view_size)) or view_offset < 0 or view_size < 0 \
                or view_offset + view_size > numel:
            raise Malformed("storage view reaches outside its storage")
        return Storage(root.flat[view_offset:view_offset + view_size])

    obj = unpickle(stream, allowed, load_storage)
    keys = unpickle(stream, NOTHING)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise Malformed("torch file storage list is malformed")
    if set(keys) != set(storages):
        raise Malformed("torch file storage list does not match its storages")
    for key in keys:
        flat = storages[key].flat
        header = stream.read(8)
        if len(header) != 8:
            raise Malformed("truncated storage data")
        (count,) = struct.unpack("<q", header)
        if count != flat.numel():
            raise Malformed("storage data size disagrees with its record")
        if count:
            # Straight into the tensor's memory: these can be hundreds of megabytes.
            if stream.readinto(_byte_view(flat)) != count * flat.element_size():
                raise Malformed("truncated storage data")
            _sanitize_bools(flat)
    return obj


# ----------------------------------------------------------------------------------------
# torch.save's zip format


def is_zip(data):
    return data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06")


@contextlib.contextmanager
def unpack_budget(nbytes):
    """Within it, the zip entries read (at any depth) may expand to `nbytes` in all."""
    token = _UNPACK_BUDGET.set([nbytes])
    try:
        yield
    finally:
        _UNPACK_BUDGET.reset(token)


def read_torch_zip(data, allowed):
    """torch.save's zip format: <stem>/data.pkl plus one raw record per storage."""
    try:
        check_zip_entries(data[-ZIP_TAIL_BYTES:], "zip archive")
    except ValueError as error:
        raise Malformed(str(error)) from None
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = set(archive.namelist())  # looked up once per storage: a list would be quadratic
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as error:
        raise Malformed(f"damaged zip archive ({error})") from None
    pickles = [n for n in names if n == "data.pkl" or (n.endswith("/data.pkl") and n.count("/") == 1)]
    if len(pickles) != 1:
        raise Malformed("zip archive is not a torch checkpoint (no single data.pkl)")
    prefix = pickles[0][: -len("data.pkl")]
    if prefix + "byteorder" in names and _read_zip_entry(archive, prefix + "byteorder", len(data)) != b"little":
        raise Malformed("big-endian torch checkpoints are not supported")
    storages = {}

    def load_storage(pid):
        dtype, key, numel, view = _check_storage_pid(pid)
        if view is not None:
            raise Malformed("storage views are not supported in zip checkpoints")
        if key not in storages:
            entry = f"{prefix}data/{key}"
            if entry not in names:
                raise Malformed(f"checkpoint lacks the data record {key[:40]}")
            nbytes = numel * _itemsize(dtype)
            if archive.getinfo(entry).file_size < nbytes:
                raise Malformed(f"data record {key[:40]} is smaller than its storage")
            raw = _read_zip_entry(archive, entry, len(data))[:nbytes]
            storages[key] = Storage(_tensor_from_bytes(raw, dtype, numel))
        storage = storages[key]
        if storage.flat.dtype != dtype or storage.flat.numel() != numel:
            raise Malformed("storage records disagree about one storage")
        return storage

    return unpickle(io.BytesIO(_read_zip_entry(archive, pickles[0], len(data))), allowed, load_storage)


def _read_zip_entry(archive, name, archive_size):
    info = archive.getinfo(name)
    # torch stores its records uncompressed, so none can be much bigger than the file; this
    # refuses zip bombs before decompressing. Reading stops at the declared size in any case.
    if info.file_size > 4 * archive_size + (1 << 20):
        raise Malformed(f"zip entry {name[:60]} claims an absurd size")
    left = _UNPACK_BUDGET.get()
    if left is not None:
        left[0] -= info.file_size
        if left[0] < 0:
            raise Malformed("zip entries expand to far more than the file's size")
    with archive.open(info) as entry:
        data = entry.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise Malformed(f"zip entry {name[:60]} has the wrong size")
    return data
