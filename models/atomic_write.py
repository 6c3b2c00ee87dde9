"""Atomic file writing and one-line wording for failed writes (shared by models/ and renderer/)."""

import contextlib
import errno
import os
import re
import tempfile
from pathlib import Path


class WriteError(OSError):
    """A file could not be written; the message is one line naming the target file."""


def describe_os_error(error, path):
    """One clear line for a failed write (full disk, no permission, no such folder...), naming `path`."""
    folder = Path(path).parent
    code = getattr(error, "errno", None)
    if code == errno.ENOSPC:
        return f"cannot write {path}: the disk is full (no space left on device)"
    if code == errno.EDQUOT:
        return f"cannot write {path}: disk quota exceeded"
    if code in (errno.EACCES, errno.EPERM):
        return f"cannot write {path}: permission denied in folder {folder}"
    if code == errno.EROFS:
        return f"cannot write {path}: folder {folder} is on a read-only file system"
    if code == errno.ENOENT:
        if folder.is_dir():
            return f"cannot write {path}: files cannot be created in folder {folder}"
        return f"cannot write {path}: folder {folder} does not exist"
    if code == errno.ENOTDIR:
        return f"cannot write {path}: {folder} is not a folder"
    if code == errno.EISDIR:
        return f"cannot write {path}: it is a folder"
    reason = getattr(error, "strerror", None) or str(error)
    return f"cannot write {path}: {reason}"


def os_error_from_text(text):
    """An OSError rebuilt from a message like 'I/O error: No space left on device (os error 28)'
    (how Rust-backed libraries such as safetensors report them), or None when there is no code."""
    found = re.search(r"os error (\d+)", str(text))
    if not found:
        return None
    code = int(found.group(1))
    return OSError(code, os.strerror(code))


def target_problem(path):
    """The one-line reason a file cannot be created at `path` as far as the path alone says, or None."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        return f"cannot write {path}: it is a folder"
    if not folder.exists():
        return f"cannot write {path}: folder {folder} does not exist"
    if not folder.is_dir():
        return f"cannot write {path}: {folder} is not a folder"
    return None


class _ProbeDone(Exception):
    """Ends a write probe: the temporary file was created, and is removed again."""


def write_problem(path):
    """None if a file can be created at `path`, else the one-line reason: checked before an
    hour of rendering or a slow load, not after. Creates and removes a temporary file."""
    try:
        with atomic_output(path) as temp_name:
            Path(temp_name).write_bytes(b"")
            raise _ProbeDone()
    except _ProbeDone:
        return None
    except WriteError as error:
        return str(error)


def _umask():
    # os.umask can only be read by setting it; done once, at import, before threads write.
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


@contextlib.contextmanager
def atomic_output(path, error_type=WriteError):
    """Yield a temporary path in the target's folder; rename it onto `path` when the block ends.

    The temporary file lives in the same folder (so the same file system, so os.replace is
    atomic): readers see the old file or the whole new one, never half a file. An exception
    inside the block, a cancel included, deletes the temporary file and propagates; an
    OSError becomes `error_type` with a one-line message naming `path`, never the temporary name.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    problem = target_problem(path)
    if problem:
        raise error_type(problem)
    try:
        handle, temp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=folder)
        os.close(handle)
    except OSError as error:
        raise error_type(describe_os_error(error, path)) from error
    try:
        yield temp_name
        # mkstemp makes the file private (0600); give the result the usual permissions.
        os.chmod(temp_name, 0o666 & ~_UMASK)
        os.replace(temp_name, path)
    except error_type:
        _remove_quietly(temp_name)
        raise
    except OSError as error:
        _remove_quietly(temp_name)
        raise error_type(describe_os_error(error, path)) from error
    except BaseException:
        _remove_quietly(temp_name)
        raise


def _remove_quietly(name):
    with contextlib.suppress(OSError):
        os.remove(name)
