"""Exports: PNG frames that carry their RenderRequest, latents, grids and videos, written atomically."""

import contextlib
import errno
import hashlib
import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PNG_KEY_REQUEST = "stylescope.request"
PNG_KEY_MODEL = "stylescope.model"
PNG_KEY_MODEL_SHA256 = "stylescope.model_sha256"


class ExportError(Exception):
    """An export could not be written; the message is one line a person can act on."""


class ExportCancelled(Exception):
    """The user cancelled an export; nothing was left behind."""


# ---------------------------------------------------------------- atomic writing


def describe_os_error(error, path):
    """One clear line for a failed write (full disk, no permission, no such folder...)."""
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
        return f"cannot write {path}: folder {folder} does not exist"
    if code == errno.ENOTDIR:
        return f"cannot write {path}: {folder} is not a folder"
    if code == errno.EISDIR:
        return f"cannot write {path}: it is a folder"
    reason = getattr(error, "strerror", None) or str(error)
    return f"cannot write {path}: {reason}"


def _umask():
    # os.umask can only be read by setting it; done once, at import, before threads write.
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path in the target's folder; rename it onto `path` when the block ends.

    The temporary file lives in the same folder (so the same file system, so os.replace is
    atomic): readers see the old file or the whole new one, never half a file. An exception
    inside the block, a cancel included, deletes the temporary file and propagates; an
    OSError becomes an ExportError with a one-line message.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ExportError(f"cannot write {path}: it is a folder")
    if not folder.exists():
        raise ExportError(f"cannot write {path}: folder {folder} does not exist")
    if not folder.is_dir():
        raise ExportError(f"cannot write {path}: {folder} is not a folder")
    try:
        handle, temp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=folder)
        os.close(handle)
    except OSError as error:
        raise ExportError(describe_os_error(error, path)) from error
    try:
        yield temp_name
        # mkstemp makes the file private (0600); give the result the usual permissions.
        os.chmod(temp_name, 0o666 & ~_UMASK)
        os.replace(temp_name, path)
    except OSError as error:
        _remove_quietly(temp_name)
        raise ExportError(describe_os_error(error, path)) from error
    except BaseException:
        _remove_quietly(temp_name)
        raise


def _remove_quietly(name):
    with contextlib.suppress(OSError):
        os.remove(name)


def check_writable(path):
    """Raise ExportError now if `path` cannot be written (before an hour of rendering)."""
    with atomic_output(path) as temp_name:
        Path(temp_name).write_bytes(b"")
        raise _ProbeDone()


class _ProbeDone(Exception):
    pass


def writable_or_error(path):
    """None if a file can be created at `path`, else the one-line reason."""
    try:
        check_writable(path)
    except _ProbeDone:
        return None
    except ExportError as error:
        return str(error)
    return None


# ---------------------------------------------------------------- model identity


_sha256_cache = {}
_sha256_lock = threading.Lock()


def file_sha256(path):
    """Hex sha256 of a file, cached by (path, size, mtime): model files are large."""
    path = os.path.abspath(path)
    stat = os.stat(path)
    key = (path, stat.st_size, stat.st_mtime_ns)
    with _sha256_lock:
        if key in _sha256_cache:
            return _sha256_cache[key]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    with _sha256_lock:
        _sha256_cache[key] = value
    return value


# ---------------------------------------------------------------- PNG frames


@dataclass(frozen=True)
class PngMetadata:
    """What an exported PNG remembers about how it was made."""

    request_json: str
    model_name: str = ""
    model_sha256: str = ""

    def request(self):
        """The RenderRequest that made the picture."""
        from renderer.request import RenderRequest

        return RenderRequest.from_json(self.request_json)


def save_png(frame, request, path, model_path=None, model_name=None, model_sha256=None):
    """Write a frame's image as PNG carrying its RenderRequest and the model's name and sha256.

    `frame` is a renderer Frame (its .image, uint8 [H, W, 3]) or the image array itself.
    The model is named by `model_path` (name and sha256 are read from the file) or given
    directly by `model_name` / `model_sha256` (e.g. for the embedded default model).
    """
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    image = _image_of(frame)
    if model_path is not None:
        model_name = model_name or Path(model_path).name
        model_sha256 = model_sha256 or file_sha256(model_path)
    info = PngInfo()
    info.add_text(PNG_KEY_REQUEST, request.to_json() if hasattr(request, "to_json") else str(request))
    info.add_text(PNG_KEY_MODEL, model_name or "")
    info.add_text(PNG_KEY_MODEL_SHA256, model_sha256 or "")
    info.add_text("Software", "StyleScope")
    with atomic_output(path) as temp_name:
        Image.fromarray(image).save(temp_name, format="PNG", pnginfo=info)
    return Path(path)


def read_png_metadata(path):
    """The StyleScope metadata of an exported PNG; ExportError if it has none."""
    from PIL import Image

    try:
        with Image.open(path) as picture:
            text = dict(getattr(picture, "text", {}) or {})
    except OSError as error:
        raise ExportError(f"{path}: not a readable PNG ({error})") from error
    if PNG_KEY_REQUEST not in text:
        raise ExportError(f"{path}: no StyleScope request in this PNG (was it exported by StyleScope?)")
    return PngMetadata(
        request_json=text[PNG_KEY_REQUEST],
        model_name=text.get(PNG_KEY_MODEL, ""),
        model_sha256=text.get(PNG_KEY_MODEL_SHA256, ""),
    )


def read_png_image(path):
    """The pixels of a PNG as uint8 [H, W, 3]."""
    from PIL import Image

    with Image.open(path) as picture:
        return np.asarray(picture.convert("RGB"))


def save_array(array, path):
    """Write one numpy array as .npy atomically (the current z or w)."""
    with atomic_output(path) as temp_name:
        with open(temp_name, "wb") as handle:
            np.save(handle, np.asarray(array))
    return Path(path)


def _image_of(frame):
    image = getattr(frame, "image", frame)
    if image is None:
        error = getattr(frame, "error", None)
        raise ExportError(f"nothing to export: the frame has no image ({error or 'not rendered'})")
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ExportError(f"nothing to export: expected a uint8 [H, W, 3] image, got {image.dtype} {image.shape}")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


# ---------------------------------------------------------------- grids


def tile_images(images, rows, cols, padding=0, background=0):
    """Tile equally sized uint8 [H, W, 3] images row by row into one picture; None leaves a cell blank."""
    images = list(images)
    if len(images) > rows * cols:
        raise ValueError(f"{len(images)} images do not fit a {rows}x{cols} grid")
    shaped = [np.asarray(im) for im in images if im is not None]
    if not shaped:
        raise ValueError("no images to tile")
    height, width, channels = shaped[0].shape
    canvas = np.full(
        (rows * height + (rows - 1) * padding, cols * width + (cols - 1) * padding, channels),
        background,
        dtype=np.uint8,
    )
    for index, image in enumerate(images):
        if image is None:
            continue
        image = np.asarray(image)
        if image.shape != (height, width, channels):
            raise ValueError(f"grid cell {index} is {image.shape}, the first is {(height, width, channels)}")
        row, col = divmod(index, cols)
        top = row * (height + padding)
        left = col * (width + padding)
        canvas[top : top + height, left : left + width] = image
    return canvas


def grid_cell(grid, row, col, cell_height, cell_width, padding=0):
    """Cut one cell back out of a tiled grid."""
    top = row * (cell_height + padding)
    left = col * (cell_width + padding)
    return grid[top : top + cell_height, left : left + cell_width]


def parse_grid_shape(text):
    """'2x3' -> (2, 3) as (rows, cols)."""
    try:
        rows, cols = (int(part) for part in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"grid shape {text!r}: expected ROWSxCOLS, e.g. 2x2") from None
    if rows < 1 or cols < 1:
        raise ValueError(f"grid shape {text!r}: rows and columns must be at least 1")
    return rows, cols


def parse_seeds(text):
    """'0,1,5-7' -> [0, 1, 5, 6, 7]."""
    seeds = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            first, last = part.split("-", 1)
            seeds.extend(range(int(first), int(last) + 1))
        else:
            seeds.append(int(part))
    if not seeds:
        raise ValueError(f"no seeds in {text!r}")
    return seeds


# ---------------------------------------------------------------- videos


def write_video(frames, path, fps=30, quality=8, total=None, progress=None, cancel=None):
    """Write an iterable of uint8 [H, W, 3] images as MP4 or GIF (by suffix), atomically.

    progress(done, total) is called after each frame; cancel is a threading.Event checked
    between frames. A cancel raises ExportCancelled and, like any error, leaves no file.
    """
    from renderer.video import VideoWriter, video_format

    fmt = video_format(path)
    with atomic_output(path) as temp_name:
        writer = VideoWriter(temp_name, fps=fps, quality=quality, fmt=fmt)
        try:
            done = 0
            for image in frames:
                _check_cancel(cancel)
                writer.append(_image_of(image))
                done += 1
                if progress is not None:
                    progress(done, total if total is not None else done)
            _check_cancel(cancel)
            writer.close()
        except BaseException as error:
            writer.abort()
            raise _explain_writer_error(error, path) from error
    return Path(path)


def _check_cancel(cancel):
    if cancel is not None and cancel.is_set():
        raise ExportCancelled("export cancelled")


def _explain_writer_error(error, path):
    """ffmpeg reports a full disk as a broken pipe plus text; turn that into the plain reason."""
    if isinstance(error, (ExportCancelled, ExportError, KeyboardInterrupt, ValueError)):
        return error
    text = str(error)
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS):
        return ExportError(describe_os_error(error, path))
    if "No space left" in text or _disk_nearly_full(Path(path).parent):
        return ExportError(describe_os_error(OSError(errno.ENOSPC, "No space left on device"), path))
    first_line = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return ExportError(f"cannot write {path}: the video encoder failed ({first_line})")


def _disk_nearly_full(folder):
    import shutil

    try:
        return shutil.disk_usage(folder).free < 64 * 1024
    except OSError:
        return False
