"""numpy's records in a pickle: arrays, scalars and dtypes, plain numeric only (object dtypes would hold arbitrary objects)."""

import math

import numpy as np

from models.pickle_machine import Malformed, Marker, Refused, as_bytes, int_tuple

NDARRAY = Marker("numpy.ndarray")


def checked_numpy_dtype(dtype):
    if not isinstance(dtype, np.dtype):
        raise Malformed("numpy dtype expected")
    if dtype.kind not in "biufc" or dtype.hasobject or dtype.names is not None \
            or dtype.subdtype is not None:
        raise Refused(f"refused numpy dtype {dtype.str!r} (only plain numeric types are allowed)")
    return dtype


def new_numpy_dtype(spec, align=False, copy=False):
    if isinstance(spec, bytes):
        spec = spec.decode("latin1")
    if not isinstance(spec, str):
        raise Malformed("numpy dtype spec is not a string")
    try:
        dtype = np.dtype(spec)
    except TypeError as error:
        raise Malformed(f"unknown numpy dtype {spec!r}") from error
    checked_numpy_dtype(dtype)
    # Always a fresh copy: the BUILD that follows sets its byte order, and must never
    # touch numpy's shared built-in dtype objects.
    return np.dtype(spec, align=False, copy=True)


def build_numpy_dtype(dtype, state):
    if not isinstance(state, tuple) or len(state) not in (8, 9) or state[0] not in (3, 4):
        raise Malformed("numpy dtype state is malformed")
    _, byteorder, subarray, names, fields = state[:5]
    if subarray is not None or names is not None or fields is not None:
        raise Refused("refused a structured numpy dtype")
    if byteorder not in ("<", ">", "|", "="):
        raise Malformed("numpy dtype byte order is malformed")
    # Only the byte order comes from the file; everything else is the dtype's own.
    dtype.__setstate__((3, byteorder, None, None, None, -1, -1, dtype.flags))


def reconstruct_ndarray(subtype, shape, dtype):
    if subtype is not NDARRAY:
        raise Refused("refused a numpy array subclass")
    return np.ndarray((0,), dtype=np.uint8)  # its BUILD gives it shape, dtype and data


def build_ndarray(array, state):
    if not isinstance(state, tuple) or len(state) not in (4, 5):
        raise Malformed("numpy array state is malformed")
    if len(state) == 5:
        state = state[1:]
    shape, dtype, is_fortran, rawdata = state
    shape = int_tuple(shape, "numpy array shape")
    dtype = checked_numpy_dtype(dtype)
    rawdata = as_bytes(rawdata, "numpy array data")
    if len(rawdata) != math.prod(shape) * dtype.itemsize:
        raise Malformed("numpy array data does not match its shape")
    array.__setstate__((1, shape, dtype, bool(is_fortran), rawdata))


def numpy_scalar(dtype, data):
    dtype = checked_numpy_dtype(dtype)
    data = as_bytes(data, "numpy scalar data")
    if len(data) != dtype.itemsize:
        raise Malformed("numpy scalar data has the wrong size")
    return np.frombuffer(data, dtype=dtype)[0]


def numpy_frombuffer(buffer, dtype, shape, order):
    # numpy's protocol-5 array format (Python 3.14 pickles by default with protocol 5).
    dtype = checked_numpy_dtype(dtype)
    shape = int_tuple(shape, "numpy array shape")
    data = as_bytes(buffer, "numpy array data")
    if order not in ("C", "F") or len(data) != math.prod(shape) * dtype.itemsize:
        raise Malformed("numpy array data does not match its shape")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order=order).copy()
