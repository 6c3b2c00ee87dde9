"""Latent files: a w read from .npy/.npz, headers checked before any data is read, never unpickled."""

from models.errors import clean_line, error_line
from models.limits import NumpyFile


def read_w(path):
    """The w array of a .npy file, or the array named 'w' of a .npz (NVIDIA's projected_w.npz).

    Raises ValueError with one line naming the file for a missing, unreadable or unsafe file.
    """
    try:
        with NumpyFile(path) as data:
            if data.names is None:
                return data.array()
            if "w" not in data.names:
                raise ValueError(f"{clean_line(path)} has no array named 'w' (found {clean_line(', '.join(data.names))})")
            return data.array("w")
    except OSError as error:
        raise ValueError(f"{clean_line(path)}: not a readable numpy array file ({error_line(error)})") from None
