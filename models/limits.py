"""Bounds on what a file may make us do: JSON depth, numpy headers, and allocations while building a network."""

# The rule everywhere: check what a file declares against what it stores, and bound the work
# by the file's size, before allocating. Each reader here raises ValueError (LoadError for
# networks) with one line; none lets a MemoryError, RecursionError or OverflowError out.

import json
import math
import re
import zipfile
from pathlib import Path

import numpy as np

from models.errors import LoadError, clean_line

MAX_NESTING = 200  # containers inside containers; real network pickles and requests stay under 40
MAX_JSON_BYTES = 16 << 20  # a request with a 18 x 512 w is ~200 KB
MAX_JSON_INT_DIGITS = 24  # seeds and counts; longer integers only make float() overflow later
MAX_LATENT_VALUES = 1 << 22  # values in one latent/direction array: [num_ws, w_dim] is ~10^4
MAX_ZIP_ENTRIES = 10_000  # a torch checkpoint with G, D, G_ema and optimizer state holds a few thousand
ZIP_TAIL_BYTES = (1 << 16) + 22 + 20 + 56  # where a zip's end records are: comment, zip64 locator and record


def zip_entry_count(tail):
    """The number of entries a zip declares, from the last ZIP_TAIL_BYTES of the file (None if no end record).

    Read before zipfile parses the directory: a million tiny entries cost seconds and gigabytes there.
    """
    end = tail.rfind(b"PK\x05\x06")
    if end < 0 or len(tail) < end + 22:
        return None
    count = int.from_bytes(tail[end + 10:end + 12], "little")
    if count == 0xFFFF:  # zip64: the count is in the zip64 end record
        record = tail.rfind(b"PK\x06\x06", 0, end)
        if record < 0 or len(tail) < record + 40:
            return None
        count = int.from_bytes(tail[record + 32:record + 40], "little")
    return count


def check_zip_entries(tail, what):
    """ValueError when a zip declares more entries than any file we read holds."""
    count = zip_entry_count(tail)
    if count is not None and count > MAX_ZIP_ENTRIES:
        raise ValueError(f"{what}: a zip of {count} entries (at most {MAX_ZIP_ENTRIES})")


# ----------------------------------------------------------------------------------------
# JSON


_JSON_STRUCTURE = re.compile(r'[\[\]{}"\\]')


def json_nesting(text, limit=MAX_NESTING):
    """The deepest bracket nesting of a JSON text (strings skipped), or limit + 1 once it is deeper."""
    depth = deepest = 0
    in_string = False
    escaped_at = -2
    for match in _JSON_STRUCTURE.finditer(text):
        char, at = match.group(), match.start()
        if in_string:
            if char == "\\" and escaped_at != at - 1:
                escaped_at = at
            elif char == '"' and escaped_at != at - 1:
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return depth
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _bounded_int(text):
    if len(text.lstrip("-")) > MAX_JSON_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits")
    return int(text)


def load_json(text, what, max_bytes=MAX_JSON_BYTES, max_nesting=MAX_NESTING):
    """json.loads with its size, nesting and integer lengths bounded first; ValueError naming `what`."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{what}: not UTF-8 text") from None
    if len(text) > max_bytes:
        raise ValueError(f"{what}: {len(text)} characters is too long for a request (at most {max_bytes})")
    if json_nesting(text, max_nesting) > max_nesting:
        raise ValueError(f"{what}: nested more than {max_nesting} levels deep")
    try:
        return json.loads(text, parse_int=_bounded_int)
    except ValueError as error:  # JSONDecodeError, and _bounded_int's refusal
        raise ValueError(f"{what}: not valid JSON ({clean_line(error, 120)})") from None
    except RecursionError:  # cannot happen after the nesting check; kept as a last line
        raise ValueError(f"{what}: nested too deeply") from None


def read_json_file(path, what=None, max_bytes=MAX_JSON_BYTES):
    """A JSON file's value, its size checked before reading; ValueError / OSError with one line."""
    path = Path(path)
    what = what or clean_line(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{what}: {size} bytes is too large for a request or session (at most {max_bytes})")
    with open(path, "rb") as handle:
        return load_json(handle.read(max_bytes + 1), what, max_bytes)


# ----------------------------------------------------------------------------------------
# numpy .npy / .npz files: the header is checked before a byte of data is read


class NumpyFile:
    """A .npy or .npz file opened for bounded reads: `names` (None for .npy), `array(name)`."""

    def __init__(self, path, max_values=MAX_LATENT_VALUES):
        self.path = Path(path)
        self.max_values = max_values
        self.what = clean_line(self.path)
        with open(self.path, "rb") as handle:
            head = handle.read(6)
        self._zip = None
        self.names = None
        if head.startswith(b"PK"):
            with open(self.path, "rb") as handle:
                handle.seek(max(0, self.path.stat().st_size - ZIP_TAIL_BYTES))
                check_zip_entries(handle.read(), self.what)
            try:
                self._zip = zipfile.ZipFile(self.path)
                members = self._zip.namelist()
            except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as error:
                raise ValueError(f"{self.what}: not a readable .npz file ({clean_line(error, 100)})") from None
            self._members = {name[:-4]: name for name in members if name.endswith(".npy")}
            self.names = list(self._members)
        elif head != b"\x93NUMPY":
            raise ValueError(f"{self.what}: not a .npy/.npz array file")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._zip is not None:
            self._zip.close()

    def array(self, name=None):
        """The array (the .npy's, or the .npz member `name`), as float64."""
        if self._zip is None:
            with open(self.path, "rb") as handle:
                return self._read(handle, self.what, self.path.stat().st_size)
        what = f"{self.what}[{clean_line(name, 60)}]"
        try:
            info = self._zip.getinfo(self._members[name])
            with self._zip.open(info) as member:
                return self._read(member, what, info.file_size)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, NotImplementedError) as error:
            raise ValueError(f"{what}: damaged .npz member ({clean_line(error, 100)})") from None

    def _read(self, stream, what, stored_size):
        fmt = np.lib.format
        try:
            version = fmt.read_magic(stream)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(stream)
            else:
                shape, fortran, dtype = fmt.read_array_header_2_0(stream)
        except Exception as error:  # noqa: BLE001 -- numpy's header parser raises ValueError, SyntaxError, TokenError...
            raise ValueError(f"{what}: not a readable numpy array ({clean_line(error, 100)})") from None
        if dtype.kind not in "biuf" or dtype.names is not None or dtype.subdtype is not None \
                or dtype.hasobject:
            if dtype.hasobject:
                raise ValueError(f"{what}: holds Python objects (pickled), which are never loaded")
            raise ValueError(f"{what}: holds {clean_line(dtype, 60)} values, not plain numbers")
        count = math.prod(shape)
        if count > self.max_values:
            raise ValueError(f"{what}: claims {count} values (shape {clean_line(shape, 80)}); "
                             f"a latent or direction has at most {self.max_values}")
        nbytes = count * dtype.itemsize
        if nbytes > stored_size:
            raise ValueError(f"{what}: claims {nbytes} bytes of data but stores {stored_size}")
        data = stream.read(nbytes)
        if len(data) != nbytes:
            raise ValueError(f"{what}: truncated (its header claims {count} values)")
        array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
        return array.astype(np.float64)


# ----------------------------------------------------------------------------------------
# Building a network: allocations bounded by what the file stores


ALLOCATION_FACTOR = 24  # bytes torch may allocate while a network is built, per byte the file stores

_FACTORIES = ("empty", "zeros", "ones", "full", "rand", "randn", "randint", "randperm", "arange", "eye")


def _requested_numel(name, args):
    """Values a factory call such as torch.randn(3, 4) or torch.zeros([3, 4]) asks for, else None."""
    if name not in _FACTORIES or not args:
        return None
    if name in ("randint", "randperm", "arange", "eye"):
        sizes = [a for a in args if isinstance(a, int)] if name != "randint" else list(args[-1]) \
            if isinstance(args[-1], (list, tuple)) else []
        return math.prod(abs(n) for n in sizes[:2]) if sizes else None
    sizes = args[0] if isinstance(args[0], (list, tuple)) else args
    if all(isinstance(n, int) for n in sizes):
        return math.prod(abs(n) for n in sizes)
    return None


def allocation_budget(stored_bytes, stored_tensors, what="network"):
    """A context in which torch may allocate about what a file stores, in a bounded number of calls.

    A file that declares a 32768 px network or a million mapping layers but stores a few
    megabytes is refused at the first allocation past the budget, before it is made.
    (A TorchFunctionMode: torch's dispatch modes would import torch._dynamo, seconds per start.)
    """
    import torch
    from torch.overrides import TorchFunctionMode

    # Every allocation counts, freed or not: building a network (initialisers, a converted copy of the
    # state dict, loading it) and estimating w_avg allocate about 11x what a rosinality g_ema stores.
    # A bomb declares thousands of times what it stores, so a generous factor still refuses it early.
    max_bytes = ALLOCATION_FACTOR * int(stored_bytes) + (256 << 20)
    max_calls = 100 * int(stored_tensors) + 10_000

    class Budget(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.bytes = 0
            self.calls = 0

        def _charge(self, nbytes):
            self.bytes += nbytes
            if self.bytes > max_bytes:
                raise LoadError(f"{what} declares a network far larger than the weights it holds "
                                f"({stored_bytes} bytes)")

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            self.calls += 1
            if self.calls > max_calls:
                raise LoadError(f"{what} declares far more layers than it holds weights for "
                                f"({stored_tensors} tensors)")
            numel = _requested_numel(getattr(func, "__name__", ""), args)
            if numel is not None:  # checked before it is allocated
                dtype = kwargs.get("dtype") or torch.get_default_dtype()
                self._charge(numel * torch.empty((), dtype=dtype).element_size())
            out = func(*args, **kwargs)
            if numel is None:
                for tensor in out if isinstance(out, (list, tuple)) else (out,):
                    if isinstance(tensor, torch.Tensor) and not tensor._is_view():
                        self._charge(tensor.numel() * tensor.element_size())
            return out

    return Budget()


def stored_size(tensors):
    """(bytes, count) of an iterable of tensors / numpy arrays: what a file stores."""
    total = count = 0
    for value in tensors:
        count += 1
        total += int(getattr(value, "nbytes", 0) or 0) if not hasattr(value, "element_size") \
            else value.numel() * value.element_size()
    return total, count
