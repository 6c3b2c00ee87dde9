"""The restricted unpickler: pickle's opcode machine, resolving globals only through an AllowList."""

# A pickle is a small program: every global it names gets imported and called. This machine
# resolves a global only through an AllowList (models/pickle_allowlist.py holds the real ones),
# whose stand-ins only build data. Nothing in the file is ever imported, exec'd or eval'd.
#
# It subclasses the pure-Python unpickler (pickle._Unpickler) rather than the C one, because
# find_class alone does not close every door: BUILD calls __setstate__ on whatever object is
# on the stack (numpy's dtype.__setstate__ can be talked into an object-typed layout, torch's
# Tensor.__setstate__ attaches hooks), and SETITEMS/APPENDS call methods of any object. Here
# those opcodes only act on the objects we expect them on, and every container's nesting
# depth is bounded.

import io
import pickle
import struct
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch

from models.limits import MAX_NESTING

# ----------------------------------------------------------------------------------------
# Errors inside the unpickler carry no file name; read_pickle adds it.


class Refused(Exception):
    """The file asks for something outside the allow-list (becomes UnsafeFileError)."""


class Malformed(Exception):
    """The file is broken or not what it claims to be (becomes LoadError)."""


# ----------------------------------------------------------------------------------------
# What a file may do


class Finisher(NamedTuple):
    """The one BUILD an object made by `maker` gets: finish(obj, state).

    `required`: an object that never gets its state is an empty shell, and the file is refused.
    """

    maker: Callable
    finish: Callable
    required: bool = True


@dataclass(frozen=True, eq=False)
class AllowList:
    """Everything a pickle may make: the globals it may name, and what NEWOBJ and BUILD may do."""

    globals: dict  # (module, name) -> our stand-in: a function that builds data, or an inert marker
    creatable: tuple = ()  # (class or marker, maker): what NEWOBJ may create, by maker() without arguments
    finishers: tuple = ()  # Finisher per maker whose objects get their state by BUILD
    state_setters: tuple = ()  # (type, set_state): BUILD on any other object of exactly that type; set_state says if it took it


NOTHING = AllowList(globals={})  # plain data only: the header pickles of torch's legacy format

_MODULE_ALIASES = {"__builtin__": "builtins"}  # Python 2 pickles


# ----------------------------------------------------------------------------------------
# Checks the stand-ins share


class Marker:
    """A named, inert stand-in for a class the file mentions only by name."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"<{self.name}>"


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def int_tuple(value, what):
    if not isinstance(value, (tuple, list, torch.Size)) or not all(is_int(v) for v in value):
        raise Malformed(f"{what} is not a tuple of integers")
    if any(v < 0 for v in value):
        raise Malformed(f"{what} has a negative entry")
    return tuple(value)


def as_bytes(value, what):
    """Raw data as bytes; protocol-2 files from Python 2 may carry it as a latin-1 str."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("latin1")
    if isinstance(value, pickle.PickleBuffer):
        return bytes(value.raw())
    raise Malformed(f"{what} is not raw bytes")


# ----------------------------------------------------------------------------------------
# The machine


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
        self._awaiting_build = {}  # id -> (object, Finisher) for objects awaiting their BUILD
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
            raise Malformed(f"containers nested more than {MAX_NESTING} levels deep")
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
            raise Malformed(f"containers nested more than {MAX_NESTING} levels deep")
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
            return self._allowed.globals[(module, name)]
        except KeyError:
            raise Refused(f"refused global '{module}.{name}' (not on the allow-list of "
                          "network file contents; loading it could run code)") from None

    def persistent_load(self, pid):
        if self._load_persistent is None:
            raise Malformed("unexpected persistent id in pickle")
        return self._load_persistent(pid)

    def _await_build(self, obj, maker):
        """Objects of a maker with a Finisher wait for their one BUILD."""
        finisher = next((f for f in self._allowed.finishers if f.maker is maker), None)
        if finisher is not None:
            self._awaiting_build[id(obj)] = (obj, finisher)

    def load_reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        if not isinstance(args, tuple):
            raise Malformed("call arguments are not a tuple")
        if not callable(func):
            raise Malformed(f"a {type(func).__name__} is called like a function")
        depth = self._nesting([args])
        result = self._contains(func(*args), depth)
        self._await_build(result, func)
        self.stack[-1] = result

    dispatch[pickle.REDUCE[0]] = load_reduce

    def load_newobj(self):
        args = self.stack.pop()
        cls = self.stack.pop()
        if not isinstance(args, tuple) or args:
            raise Malformed("object creation with arguments is not supported")
        maker = next((make for kind, make in self._allowed.creatable if kind is cls), None)
        if maker is None:
            what = getattr(cls, "name", None) or getattr(cls, "__name__", type(cls).__name__)
            raise Refused(f"refused to create an object of {what!r}")
        obj = maker()
        self._await_build(obj, maker)
        self.append(obj)

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_build(self):
        state = self.stack.pop()
        target = self.stack[-1]
        self._holds(target, [state])
        pending = self._awaiting_build.pop(id(target), None)
        if pending is not None and pending[0] is target:
            pending[1].finish(target, state)
            return
        setter = next((set_state for kind, set_state in self._allowed.state_setters if type(target) is kind), None)
        if setter is None or not setter(target, state):
            raise Refused(f"refused to set the state of a {type(target).__name__} object")

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
            raise Malformed(f"{opcode} applied to a {type(target).__name__}")
        return target

    def load_bytearray8(self):
        # pickle's own version allocates the declared size before reading a byte of it.
        (size,) = struct.unpack("<Q", self.read(8))
        if size > self._stream_size:
            raise Malformed("byte array is larger than the file")
        data = self.read(size)
        if len(data) != size:
            raise Malformed("truncated file")
        self.append(bytearray(data))

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8

    def load_refused(self):
        raise Refused("refused a pickle opcode that creates arbitrary objects")

    # Old-style instances, keyword-argument construction and the copyreg extension registry
    # have no place in network files.
    for _opcode in (pickle.INST, pickle.OBJ, pickle.NEWOBJ_EX, pickle.EXT1, pickle.EXT2,
                    pickle.EXT4):
        dispatch[_opcode[0]] = load_refused
    del _opcode


def unpickle(stream, allowed, persistent_load=None):
    """The object the pickle in `stream` builds, with what `allowed` (an AllowList) permits."""
    unpickler = _RestrictedUnpickler(stream, allowed, persistent_load)
    result = unpickler.load()
    # An object that never got its required state is an empty shell.
    shells = [obj for obj, finisher in unpickler._awaiting_build.values() if finisher.required]
    if shells:
        raise Malformed(f"a {type(shells[0]).__name__} object in the file never gets its state")
    return result
