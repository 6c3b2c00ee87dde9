"""PNG metadata: frames written as PNG carrying their RenderRequest and the model's name and sha256,
read back, and rebuilt from it."""

import contextlib
import hashlib
import io
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from renderer.export_jobs import ExportError, atomic_output, model_path_of, render_image
from renderer.latent_files import request_z, write_npy_file

PNG_KEY_REQUEST = "stylescope.request"
PNG_KEY_MODEL = "stylescope.model"
PNG_KEY_MODEL_SHA256 = "stylescope.model_sha256"

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

        try:
            return RenderRequest.from_json(self.request_json)
        except ValueError as error:
            raise ExportError(f"the PNG's request: {error}") from None


def check_png_name(path):
    """ExportError unless `path` ends in .png: exports are PNG, the one format that carries the
    request they were made from (a .jpg name holding PNG bytes would mislead every viewer)."""
    if Path(path).suffix.lower() != ".png":
        raise ExportError(f"cannot write {path}: pictures are exported as PNG (it keeps the request "
                          f"that rebuilds them; JPEG would not); use a .png name")


def save_png(frame, request, path, model_path=None, model_name=None, model_sha256=None, extra_text=None):
    """Write a frame's image as PNG carrying its RenderRequest and the model's name and sha256.

    `frame` is a renderer Frame (its .image, uint8 [H, W, 3]) or the image array itself.
    The model is named by `model_path` (name and sha256 are read from the file) or given
    directly by `model_name` / `model_sha256` (e.g. for the embedded default model).
    extra_text: more PNG text chunks, e.g. a grid's layout.
    """
    check_png_name(path)
    with atomic_output(path) as temp_name:
        write_png_file(frame, request, temp_name, model_path, model_name, model_sha256, extra_text)
    return Path(path)


def write_png_file(frame, request, filename, model_path=None, model_name=None, model_sha256=None, extra_text=None):
    """save_png's work, straight into `filename` (the caller makes it atomic)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    image = image_of(frame)
    if model_path is not None:
        model_name = model_name or Path(model_path).name
        model_sha256 = model_sha256 or file_sha256(model_path)
    info = PngInfo()
    info.add_text(PNG_KEY_REQUEST, request.to_json() if hasattr(request, "to_json") else str(request))
    info.add_text(PNG_KEY_MODEL, model_name or "")
    info.add_text(PNG_KEY_MODEL_SHA256, model_sha256 or "")
    info.add_text("Software", "StyleScope")
    for key, value in (extra_text or {}).items():
        info.add_text(key, value if isinstance(value, str) else json.dumps(value))
    Image.fromarray(image).save(filename, format="PNG", pnginfo=info)


def encode_png(frame, request, model_path=None, model_name=None, model_sha256=None):
    """The bytes save_png would write (for workers that send files to the process that writes them)."""
    buffer = io.BytesIO()
    write_png_file(frame, request, buffer, model_path, model_name, model_sha256)
    return buffer.getvalue()


def read_png_metadata(path):
    """The StyleScope metadata of an exported PNG; ExportError if it has none."""
    from PIL import Image

    from models.errors import clean_line, error_line

    try:
        with Image.open(path) as picture:
            text = dict(getattr(picture, "text", {}) or {})
    except Image.DecompressionBombError:  # a header claiming gigapixels: the pixels are not needed
        raise ExportError(f"{clean_line(path)}: not a usable PNG (its header claims an absurd size)") from None
    except Exception as error:  # noqa: BLE001 -- PIL raises OSError, SyntaxError, ValueError... for broken files
        raise ExportError(f"{clean_line(path)}: not a readable PNG ({error_line(error, 120)})") from None
    if PNG_KEY_REQUEST not in text:
        raise ExportError(f"{clean_line(path)}: no StyleScope request in this PNG (was it exported by StyleScope?)")
    return PngMetadata(
        request_json=str(text[PNG_KEY_REQUEST]),
        model_name=str(text.get(PNG_KEY_MODEL, "")),
        model_sha256=str(text.get(PNG_KEY_MODEL_SHA256, "")),
    )


def read_png_image(path):
    """The pixels of a PNG as uint8 [H, W, 3]."""
    from PIL import Image

    from models.errors import clean_line

    try:
        with Image.open(path) as picture:
            return np.asarray(picture.convert("RGB"))
    except Image.DecompressionBombError:
        raise ExportError(f"{clean_line(path)}: not a usable PNG (its header claims an absurd size)") from None
    except MemoryError:
        raise ExportError(f"{clean_line(path)}: too large a picture") from None


def image_of(frame):
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


def export_frame(renderer, request, path, save_latents=False, image=None):
    """Render a request to a PNG that remembers it; with save_latents also <stem>_w.npy and
    <stem>_z.npy (z only when the request has one: a single seed or an explicit z).
    image: the request's picture when it is already rendered. Returns the paths written.

    The set is written whole or not at all: every file goes to a temporary name first, and
    the names are swapped in only once all are written, so a full disk at the last file
    leaves none of the new set and any older files of the same names as they were.
    """
    check_png_name(path)
    if image is None:
        image = render_image(renderer, request)
    model = model_path_of(request)
    path = Path(path)
    writes = [(path, lambda name: write_png_file(image, request, name, model_path=model if model.is_file() else None))]
    if save_latents:
        ws = renderer.compute_ws(request).detach().cpu().numpy()
        writes.append((path.with_name(f"{path.stem}_w.npy"), lambda name: write_npy_file(ws, name)))
        z = request_z(request, renderer.load(request)[1].z_dim)
        if z is not None:
            writes.append((path.with_name(f"{path.stem}_z.npy"), lambda name: write_npy_file(z, name)))
    with contextlib.ExitStack() as renames_at_the_end:
        for target, write in writes:
            write(renames_at_the_end.enter_context(atomic_output(target)))
    return [target for target, _ in writes]


def rebuild_from_png(renderer, png_path, out_path, pkl=None):
    """Render the request stored in an exported PNG again and write it to out_path.

    pkl overrides the stored network path (the file moved). Returns (request, warning),
    the warning saying when the network's sha256 differs from the one recorded.
    """
    import dataclasses

    from renderer.request_files import choose_network, read_png_request

    check_png_name(out_path)
    saved = read_png_request(png_path)
    meta = saved  # its model_name / model_sha256 say which network made the picture
    if pkl is not None:
        request = dataclasses.replace(saved.request, pkl=str(pkl))
    else:  # the PNG's own path is opened only beside it with the recorded sha256
        request = choose_network(saved, None, "give the network with --pkl FILE")
    model = model_path_of(request)
    if not model.is_file():
        raise ExportError(
            f"{png_path}: its network {meta.model_name or model} is not at {model}; give the file with --pkl"
        )
    warning = None
    if meta.model_sha256 and file_sha256(model) != meta.model_sha256:
        warning = (
            f"{model} is not the network that made {png_path} "
            f"(sha256 {file_sha256(model)[:12]}... != {meta.model_sha256[:12]}...); pixels will differ"
        )
    image = render_image(renderer, request)
    save_png(image, request, out_path, model_path=model)
    return request, warning
