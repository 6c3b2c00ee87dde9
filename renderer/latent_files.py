"""Latent files: z, w and direction arrays written as .npy and read back from .npy / .npz (never unpickled)."""

import io
from pathlib import Path

import numpy as np

from renderer.export_jobs import ExportError, atomic_output


def save_array(array, path):
    """Write one numpy array as .npy atomically (the current z or w)."""
    with atomic_output(path) as temp_name:
        write_npy_file(array, temp_name)
    return Path(path)


def write_npy_file(array, filename):
    # Through bytes and a plain write: np.save into a file reports a full disk as
    # "N requested and M written" with no errno, which would hide the reason.
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array))
    with open(filename, "wb") as handle:
        handle.write(buffer.getbuffer())


def request_z(request, z_dim=None):
    """The z [1, z_dim] a request starts from, or None when it has none (a seed blend, or w)."""
    from renderer.interpolate import seed_z

    if request.w is not None or request.seed_xy is not None:
        return None
    if request.z is not None:
        return np.asarray([request.z], dtype=np.float64)
    if len(request.seeds) == 1 and request.seeds[0][1] == 1.0:
        if z_dim is None:
            return None
        return seed_z(request.seeds[0][0], z_dim)
    return None


def plain_latent():
    """Changes that clear every latent source of a request."""
    return {"seeds": ((0, 1.0),), "seed_xy": None, "z": None, "w": None}


def load_latent(path):
    """('z' or 'w', array) from a latent file.

    .npz: the array named 'w' or 'z' (NVIDIA's projector writes projected_w.npz with 'w').
    .npy: a name ending in _w / _z decides (what export_frame writes); else an array with
    several rows ([num_ws, w_dim] or [1, num_ws, w_dim]) is a w, a single vector a z.
    """
    path = Path(path)
    with _numpy_file(path) as data:
        if data.names is not None:
            for kind in ("w", "z"):
                if kind in data.names:
                    return kind, _array_of(data, kind)
            raise ExportError(f"{_name(path)}: no array named 'w' or 'z' (found {_names(data.names)})")
        array = _array_of(data)
    stem = path.stem.lower()
    if stem.endswith(("_w", ".w")) or stem == "w":
        return "w", array
    if stem.endswith(("_z", ".z")) or stem == "z":
        return "z", array.reshape(-1)
    rows = array.reshape(-1, array.shape[-1]) if array.ndim else array.reshape(1, 1)
    if rows.shape[0] > 1:
        return "w", rows
    return "z", rows.reshape(-1)


def load_direction(path):
    """A direction in W from a file, as an array ([w_dim], [num_ws, w_dim], or with a batch of 1).

    .npy: the array. .npz: the array named 'direction', 'boundary' or 'w', or the only one.
    Directions from InterFaceGAN (boundary .npy, [1, w_dim]) and GANSpace-style components
    load as they are; the strength slider scales them.
    """
    path = Path(path)
    with _numpy_file(path) as data:
        if data.names is None:
            return _array_of(data)
        names = [name for name in ("direction", "boundary", "w") if name in data.names]
        if not names and len(data.names) != 1:
            raise ExportError(f"{_name(path)}: several arrays and none named 'direction', 'boundary' or 'w' "
                              f"(found {_names(data.names)})")
        return _array_of(data, names[0] if names else data.names[0])


def _name(path):
    from models.errors import clean_line

    return clean_line(path, 160)


def _names(names):
    from models.errors import clean_line

    return clean_line(", ".join(names), 120)


def _numpy_file(path):
    """A .npy/.npz opened with its headers checked before any data is read (never unpickled)."""
    from models.errors import error_line
    from models.limits import NumpyFile

    try:
        return NumpyFile(path)
    except OSError as error:
        raise ExportError(f"{_name(path)}: not a readable numpy file ({error_line(error, 100)})") from None
    except ValueError as error:
        raise ExportError(str(error)) from None


def _array_of(data, name=None):
    try:
        return data.array(name)
    except ValueError as error:  # the header's claims, a structured dtype, a truncated member
        raise ExportError(str(error)) from None
