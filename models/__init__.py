"""StyleGAN-family generators in pure PyTorch, and their safe loaders."""

from models.errors import LoadError, RenderCancelled, UnsafeFileError


def load_generator(path, device="cpu", **kwargs):
    """Load a generator from any supported file (see models/loader.py)."""
    from models.loader import load_generator as _load

    return _load(path, device=device, **kwargs)


__all__ = ["load_generator", "LoadError", "UnsafeFileError", "RenderCancelled"]
