"""Checked stand-ins for the standard library's values in a pickle: sets, slices, bytes, complex, OrderedDict state, argparse.Namespace."""

# Each checks its arguments, so a file can't use them to allocate or iterate without bound,
# or to reach a method of some other object.

from models.pickle_machine import Malformed, is_int


class Namespace(dict):
    """Stands in for argparse.Namespace (rosinality's saved `args`): its attributes as a plain dict."""


def make_set(items=()):
    if not isinstance(items, (list, tuple, set, frozenset)):
        raise Malformed("set items are not a list")
    return set(items)


def make_frozenset(items=()):
    return frozenset(make_set(items))


def make_slice(*args):
    if len(args) > 3 or not all(a is None or is_int(a) for a in args):
        raise Malformed("slice arguments are malformed")
    return slice(*args)


def make_complex(real=0.0, imag=0.0):
    if not all(isinstance(v, (int, float)) for v in (real, imag)):
        raise Malformed("complex arguments are not numbers")
    return complex(real, imag)


def codecs_encode(text, encoding="utf-8"):
    # Protocol-2 pickles written by Python 3 store bytes as _codecs.encode(str, 'latin1').
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise Malformed("_codecs.encode used for something other than bytes")
    return text.encode("latin1")


def make_bytes(*args):
    if not args:
        return b""
    return codecs_encode(*args)


def make_bytearray(*args):
    if len(args) == 1 and isinstance(args[0], (bytes, bytearray)):
        return bytearray(args[0])
    return bytearray(make_bytes(*args))


def _text_keyed(state):
    return isinstance(state, dict) and all(isinstance(key, str) for key in state)


def set_ordered_dict_attributes(target, state):
    """BUILD on an OrderedDict: torch state dicts carry a `_metadata` attribute."""
    if not _text_keyed(state):
        return False
    vars(target).update(state)
    return True


def set_namespace_attributes(target, state):
    """BUILD on a fresh Namespace: an argparse.Namespace's attributes, kept as dict items."""
    if target or not _text_keyed(state):
        return False
    target.update(state)
    return True
