"""Reads NVIDIA network pickles and torch checkpoints as inert data: read_pickle, the one entry."""

# A pickle is a small program; this reads one without running it. The parts, each short:
#   models/pickle_allowlist.py  every global a file may name and what stands in for it (audit here)
#   models/pickle_machine.py    the opcode machine: globals only through the allow-list, bounded nesting
#   models/pickle_storages.py   torch storages and tensors; torch.save's zip and legacy containers
#   models/pickle_numpy.py      numpy arrays, scalars and dtypes (plain numeric only)
#   models/pickle_nvidia.py     NVIDIA's persistent modules and TF networks as dataclasses
#   models/pickle_stdlib.py     checked sets, slices, bytes, OrderedDict state, argparse.Namespace
# Nothing in the file is ever imported, exec'd or eval'd; NVIDIA's embedded module source stays text.

import io
from pathlib import Path

from models.errors import LoadError, UnsafeFileError, clean_line
from models.pickle_allowlist import NETWORK
from models.pickle_machine import Malformed, Refused, unpickle
from models.pickle_storages import is_legacy_torch, is_zip, read_legacy_torch, read_torch_zip, unpack_budget


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
        raise Malformed("empty file")
    if is_zip(data):
        return read_torch_zip(data, NETWORK)
    if is_legacy_torch(data):
        return read_legacy_torch(data, NETWORK)
    return unpickle(io.BytesIO(data), NETWORK)


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
    try:
        with unpack_budget(4 * len(data) + (16 << 20)):
            result = _read_any(data)
    except Refused as error:
        raise UnsafeFileError(f"{name}: {_one_line(error)}") from None
    except Malformed as error:
        raise LoadError(f"{name}: {_one_line(error)}") from None
    except LoadError as error:
        raise LoadError(f"{name}: {_one_line(error)}") from None
    except Exception as error:  # noqa: BLE001 -- whatever a broken file triggers, one clear line
        if data[:1] != b"\x80" and not data.startswith(b"PK"):
            raise LoadError(f"{name}: {_describe_unreadable(data)}") from error
        raise LoadError(f"{name}: {_describe_failure(error)} ({type(error).__name__}: "
                        f"{_one_line(error, 160)})") from error
    if result is None or isinstance(result, (bool, int, float, complex, str, bytes)):
        raise LoadError(f"{name}: not a network file (the pickle holds only a single "
                        f"{type(result).__name__} value)")
    return result
