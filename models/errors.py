"""Exceptions shared by the model loaders and the generators."""


class LoadError(Exception):
    """A network file could not be read; the message is one line naming the file."""


class UnsafeFileError(LoadError):
    """A network file asked for something outside the loader's allow-list."""


class RenderCancelled(Exception):
    """A synthesis pass was stopped early because its request is no longer wanted."""
