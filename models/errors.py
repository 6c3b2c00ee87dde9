"""Exceptions shared by the model loaders and the generators."""


class LoadError(Exception):
    """A network file could not be read; the message is one line naming the file."""


class UnsafeFileError(LoadError):
    """A network file asked for something outside the loader's allow-list."""


class RenderCancelled(Exception):
    """A synthesis pass was stopped early because its request is no longer wanted."""


MESSAGE_LIMIT = 300  # characters of one error line; names from a file can be megabytes long


def clean_line(text, limit=MESSAGE_LIMIT):
    """`text` as one printable line: control characters escaped (\\x1b, \\n), cut with an ellipsis.

    Every message built from a file's contents (a class name, a path, a layer list) goes
    through here before it reaches a terminal, a status line or a log.
    """
    text = str(text)
    if len(text) > 4 * limit:  # escaping can only lengthen it: cut the rest unread
        text = text[: 4 * limit]
        cut = True
    else:
        cut = False
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text.strip())
    if cut or len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def error_line(error, limit=MESSAGE_LIMIT):
    """An exception as one clean line: its message's first line, else its type's name."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(error, OSError) and error.strerror and error.filename:
        first = f"{error.filename}: {error.strerror}"
    return clean_line(first or type(error).__name__, limit)
