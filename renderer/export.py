"""Exports: PNG frames that carry their RenderRequest, latents, grids and videos, written atomically."""

import contextlib
import errno
import hashlib
import io
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.atomic_write import atomic_output as _atomic_output
from models.atomic_write import describe_os_error, write_problem

PNG_KEY_REQUEST = "stylescope.request"
PNG_KEY_MODEL = "stylescope.model"
PNG_KEY_MODEL_SHA256 = "stylescope.model_sha256"


class ExportError(ValueError):
    """An export could not be made; the message is one line a person can act on.

    A ValueError so that command lines report it like other input problems (one line, no trace).
    """


class ExportCancelled(Exception):
    """The user cancelled an export; nothing was left behind."""


# ---------------------------------------------------------------- atomic writing


def atomic_output(path):
    """Yield a temporary path in the target's folder; rename it onto `path` when the block ends.

    See models.atomic_write.atomic_output: readers see the old file or the whole new one; an
    error deletes the temporary file; an OSError becomes an ExportError naming `path`.
    """
    return _atomic_output(path, error_type=ExportError)


def writable_or_error(path):
    """None if a file can be created at `path`, else the one-line reason (checked before an
    hour of rendering, not after)."""
    return write_problem(path)


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
        _write_png_file(frame, request, temp_name, model_path, model_name, model_sha256, extra_text)
    return Path(path)


def _write_png_file(frame, request, filename, model_path=None, model_name=None, model_sha256=None, extra_text=None):
    """save_png's work, straight into `filename` (the caller makes it atomic)."""
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
    for key, value in (extra_text or {}).items():
        info.add_text(key, value if isinstance(value, str) else json.dumps(value))
    Image.fromarray(image).save(filename, format="PNG", pnginfo=info)


def encode_png(frame, request, model_path=None, model_name=None, model_sha256=None):
    """The bytes save_png would write (for workers that send files to the process that writes them)."""
    buffer = io.BytesIO()
    _write_png_file(frame, request, buffer, model_path, model_name, model_sha256)
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


def save_array(array, path):
    """Write one numpy array as .npy atomically (the current z or w)."""
    with atomic_output(path) as temp_name:
        _write_npy_file(array, temp_name)
    return Path(path)


def _write_npy_file(array, filename):
    # Through bytes and a plain write: np.save into a file reports a full disk as
    # "N requested and M written" with no errno, which would hide the reason.
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array))
    with open(filename, "wb") as handle:
        handle.write(buffer.getbuffer())


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


def check_padding(padding):
    """ValueError unless padding (pixels between grid cells) is a whole number >= 0."""
    if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
        raise ValueError(f"padding: must be a whole number of pixels >= 0, got {padding!r}")


def tile_images(images, rows, cols, padding=0, background=0):
    """Tile equally sized uint8 [H, W, 3] images row by row into one picture; None leaves a cell blank."""
    check_padding(padding)
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


SEED_MAX = 2**32 - 1  # numpy's RandomState takes seeds in [0, 2**32 - 1]
MAX_SEED_COUNT = 10000  # more cells or keyframes than anyone renders; stops a typo eating the memory


def parse_seeds(text, limit=MAX_SEED_COUNT):
    """'0,1,5-7' -> [0, 1, 5, 6, 7]; every seed in [0, 2**32-1], at most `limit` of them."""
    seeds = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        first, is_range, last = part.partition("-")
        try:
            low = int(first)
            high = int(last) if is_range else low
        except ValueError:
            raise ValueError(f"seeds: {part!r} is not a seed or a range like 3-7 (seeds are 0 to {SEED_MAX})") from None
        for value in (low, high):
            if not 0 <= value <= SEED_MAX:
                raise ValueError(f"seeds: {value} is outside 0-{SEED_MAX}")
        if high < low:
            raise ValueError(f"seeds: range {part!r} is empty (the end is below the start)")
        # Check the count before range() makes the list: 0-100000000000 must fail at once.
        if len(seeds) + (high - low + 1) > limit:
            raise ValueError(f"seeds: {text!r} gives more than {limit} seeds")
        seeds.extend(range(low, high + 1))
    if not seeds:
        raise ValueError(f"no seeds in {text!r}")
    return seeds


# ---------------------------------------------------------------- videos


def write_video(frames, path, fps=30, quality=8, total=None, progress=None, cancel=None, pixel_format="yuv444p"):
    """Write an iterable of uint8 [H, W, 3] images as MP4 or GIF (by suffix), atomically.

    progress(done, total) is called after each frame; cancel is a threading.Event checked
    between frames. A cancel raises ExportCancelled and, like any error, leaves no file.
    """
    from renderer.video import VideoWriter, video_format

    fmt = video_format(path)
    with atomic_output(path) as temp_name:
        writer = VideoWriter(temp_name, fps=fps, quality=quality, fmt=fmt, pixel_format=pixel_format)
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
            explained = _explain_writer_error(error, path)
            if explained is error:
                raise
            raise explained from error
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


# ---------------------------------------------------------------- rendering for exports


def model_path_of(request):
    """The file a request's network comes from (the embedded default model when pkl is None)."""
    if request.pkl:
        return Path(request.pkl)
    from renderer.renderer import DEFAULT_MODEL

    return DEFAULT_MODEL


def render_image(renderer, request, cancel=None):
    """One picture, uint8 [H, W, 3]; a cancel stops the render between synthesis blocks."""
    should_stop = cancel.is_set if cancel is not None else None
    frame = renderer.render(request, should_stop=should_stop)
    if frame.cancelled or (cancel is not None and cancel.is_set()):
        raise ExportCancelled("export cancelled")
    if frame.error:
        raise ExportError(f"render failed: {frame.error}")
    return frame.image


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
    writes = [(path, lambda name: _write_png_file(image, request, name, model_path=model if model.is_file() else None))]
    if save_latents:
        ws = renderer.compute_ws(request).detach().cpu().numpy()
        writes.append((path.with_name(f"{path.stem}_w.npy"), lambda name: _write_npy_file(ws, name)))
        z = request_z(request, _z_dim(renderer, request))
        if z is not None:
            writes.append((path.with_name(f"{path.stem}_z.npy"), lambda name: _write_npy_file(z, name)))
    with contextlib.ExitStack() as renames_at_the_end:
        for target, write in writes:
            write(renames_at_the_end.enter_context(atomic_output(target)))
    return [target for target, _ in writes]


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


# ---------------------------------------------------------------- keyframes


def _plain_latent():
    """Changes that clear every latent source of a request."""
    return {"seeds": ((0, 1.0),), "seed_xy": None, "z": None, "w": None}


def keyframe_request(base, item):
    """One keyframe as a full RenderRequest built on `base`.

    item: a seed (int, or text of digits); a latent file (.npy / .npz holding a z or a w);
    a saved request or session (.json, RenderRequest JSON); an exported PNG (its request).
    Seeds and latent files take every other setting from base; saved requests and PNGs
    bring their own (their own psi, mixing, ...), only the network comes from base.
    """
    import dataclasses

    if isinstance(item, (int, np.integer)) or (isinstance(item, str) and item.strip().isdigit()):
        return dataclasses.replace(base, **{**_plain_latent(), "seeds": ((int(item), 1.0),)})
    path = Path(item)
    if not path.is_file():
        raise ExportError(f"keyframe {item}: no such file (give seeds, .npy/.npz latents, .json sessions or .png exports)")
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        kind, latent = load_latent(path)
        return dataclasses.replace(base, **{**_plain_latent(), kind: latent})
    if suffix == ".png":
        saved = read_png_metadata(path).request()
    elif suffix == ".json":
        from renderer.request_files import read_request_file

        try:
            saved = read_request_file(path).request
        except ValueError as error:
            raise ExportError(f"keyframe {path}: not a saved request or session ({error})") from None
    else:
        raise ExportError(f"keyframe {path}: unknown kind of file (use .npy, .npz, .json or .png)")
    return dataclasses.replace(saved, pkl=base.pkl, device=base.device, precision=base.precision)


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


# ---------------------------------------------------------------- request sequences


def interpolation_requests(renderer, base, keyframes, frames_per_transition, method="slerp-z", loop=False, easing="linear"):
    """The frames' requests of a video through keyframes (a generator; nothing is rendered).

    slerp-z: each keyframe needs a z (a seed, a z file); frames keep base's truncation and
    mixing. lerp-w / cubic-w: each keyframe's final ws (its truncation and mixing baked in)
    are the path; the frames carry those ws with no further mixing. Either way the first
    frame renders exactly like the first keyframe.
    """
    import dataclasses

    from renderer import interpolate

    keyframes = list(keyframes)
    if not keyframes:
        raise ExportError("a video needs at least one keyframe")
    if method not in interpolate.INTERPOLATIONS:
        raise ExportError(f"unknown interpolation {method!r}; choose one of {', '.join(interpolate.INTERPOLATIONS)}")
    if method == "slerp-z":
        z_dim = None
        keys = []
        for index, key in enumerate(keyframes):
            if z_dim is None and key.z is None:
                z_dim = _z_dim(renderer, key)
            z = request_z(key, z_dim)
            if z is None:
                raise ExportError(f"keyframe {index + 1} has no z (a seed blend or a w); use lerp-w or cubic-w")
            keys.append(z)
        first = dataclasses.replace(base, **_plain_latent())
        for z in interpolate.iter_interpolation(keys, frames_per_transition, method, loop, easing):
            yield dataclasses.replace(first, z=z[0])
        return
    keys = [renderer.compute_ws(key).detach().cpu().numpy().astype(np.float64) for key in keyframes]
    unmixed = dataclasses.replace(
        keyframes[0], **_plain_latent(), mix_seed=None, mix_w=None, mix_layers="", w_offset=None
    )
    for ws in interpolate.iter_interpolation(keys, frames_per_transition, method, loop, easing):
        yield dataclasses.replace(unmixed, w=ws[0])


def _z_dim(renderer, request):
    _, G = renderer.load(request)
    return G.z_dim


def _num_ws(renderer, request):
    _, G = renderer.load(request)
    return G.num_ws


SWEEP_CONTROLS = ("psi", "mix_strength", "mix_layers", "noise_seed", "direction")


def sweep_requests(renderer, base, control, frames, start=None, stop=None, width=None, loop=False):
    """Requests that move one control of base over `frames` frames (a list).

    psi: from start to stop (default base psi -1 .. +1); mix_strength: start..stop
    (default 0..1); mix_layers: a window of `width` w indices (default 2) sliding from the
    first layer to the last; noise_seed: base's noise seed + 0, 1, 2, ... with random noise.
    direction: base's w_offset and style_offsets (its edits) times a factor from start to stop (default -1..1:
    from the opposite edit through none to the edit).
    loop: go there and back, so the video repeats without a jump.
    """
    import dataclasses

    if control not in SWEEP_CONTROLS:
        raise ExportError(f"unknown sweep control {control!r}; choose one of {', '.join(SWEEP_CONTROLS)}")
    if frames < 2:
        raise ExportError("a sweep needs at least 2 frames")
    if control in ("mix_strength", "mix_layers") and base.mix_seed is None and base.mix_w is None:
        raise ExportError(f"a {control} sweep needs a style-mixing source (a mix seed)")
    if control == "direction" and base.w_offset is None and not base.style_offsets:
        raise ExportError("a direction sweep needs a direction in W or a StyleSpace channel with a strength "
                          "(the request's w_offset or style_offsets)")
    positions = _sweep_positions(frames, loop)
    requests = []
    if control == "psi":
        lo = base.truncation_psi - 1.0 if start is None else start
        hi = base.truncation_psi + 1.0 if stop is None else stop
        for t in positions:
            requests.append(dataclasses.replace(base, truncation_psi=round(lo + (hi - lo) * t, 6)))
    elif control == "mix_strength":
        lo = 0.0 if start is None else start
        hi = 1.0 if stop is None else stop
        layers = base.mix_layers or tuple(range(_num_ws(renderer, base)))  # every w
        for t in positions:
            requests.append(dataclasses.replace(base, mix_strength=round(lo + (hi - lo) * t, 6), mix_layers=layers))
    elif control == "mix_layers":
        num_ws = renderer.compute_ws(dataclasses.replace(base, mix_layers=())).shape[1]
        width = int(width or 2)
        if not 1 <= width <= num_ws:
            raise ExportError(f"sweep width {width} does not fit {num_ws} ws")
        last_start = num_ws - width
        for t in positions:
            first = int(round(t * last_start))
            requests.append(dataclasses.replace(base, mix_layers=range(first, first + width)))
    elif control == "direction":
        lo = -1.0 if start is None else start
        hi = 1.0 if stop is None else stop
        from renderer.directions import scaled_edits

        for t in positions:
            requests.append(scaled_edits(base, lo + (hi - lo) * t))
    else:
        first_seed = base.noise_seed if start is None else int(start)
        for index in range(len(positions)):
            seed = first_seed + (index if not loop else min(index, len(positions) - index))
            requests.append(dataclasses.replace(base, noise_mode="random", noise_seed=seed))
    return requests


def _sweep_positions(frames, loop):
    """t in [0, 1] per frame; a loop goes up and back down, leaving out the repeated start."""
    if not loop:
        return [i / (frames - 1) for i in range(frames)]
    return [1.0 - abs(1.0 - 2.0 * i / frames) for i in range(frames)]


def grid_cell_keyframes(seeds, cells):
    """Seed lists of the cells of a grid video (row-major).

    When the seeds split evenly into the cells with two or more each, cell k takes the k-th
    slice (as NVIDIA's gen_video.py); otherwise each cell runs the whole list, shifted by
    k * (max seed + 1) so that no two cells share a seed.
    """
    seeds = [int(s) for s in seeds]
    if len(seeds) % cells == 0 and len(seeds) // cells >= 2:
        per_cell = len(seeds) // cells
        return [seeds[k * per_cell : (k + 1) * per_cell] for k in range(cells)]
    shift = max(seeds) + 1
    return [[seed + k * shift for seed in seeds] for k in range(cells)]


# ---------------------------------------------------------------- grids


def seed_grid_requests(base, seeds):
    """One request per seed, base's other settings kept."""
    import dataclasses

    return [dataclasses.replace(base, **{**_plain_latent(), "seeds": ((int(s), 1.0),)}) for s in seeds]


def style_mix_requests(base, row_seeds, col_seeds, layers):
    """The StyleGAN paper's style-mixing figure as requests: {(row, col): request}.

    Row 0 holds the column seeds' own pictures, column 0 the row seeds'; cell (i+1, j+1) is
    row seed i with column seed j's styles in `layers` (w indices: see renderer.request.mix_indices).
    (0, 0) stays blank.
    """
    import dataclasses

    plain = dict(_plain_latent(), mix_seed=None, mix_w=None, mix_layers=(), mix_strength=1.0)
    cells = {}
    for j, col_seed in enumerate(col_seeds):
        cells[(0, j + 1)] = dataclasses.replace(base, **{**plain, "seeds": ((int(col_seed), 1.0),)})
    for i, row_seed in enumerate(row_seeds):
        cells[(i + 1, 0)] = dataclasses.replace(base, **{**plain, "seeds": ((int(row_seed), 1.0),)})
        for j, col_seed in enumerate(col_seeds):
            cells[(i + 1, j + 1)] = dataclasses.replace(
                base, **{**plain, "seeds": ((int(row_seed), 1.0),), "mix_seed": int(col_seed), "mix_layers": layers}
            )
    return cells


def check_mixing(renderer, requests):
    """ValueError before anything is rendered when a request's mix_layers do not fit its network
    (e.g. 99-100 on a 10-w network), rather than after the first cells or frames."""
    from renderer.request import check_mix_layers

    checked = set()
    for request in requests:
        if not request.mixing or (request.pkl, request.mix_layers) in checked:
            continue
        checked.add((request.pkl, request.mix_layers))
        _, G = renderer.load(request)
        check_mix_layers(request.mix_layers, len(G.synthesis.ws_resolutions))


def render_grid(renderer, cells, rows, cols, padding=0, progress=None, cancel=None):
    """Render {(row, col): request} (or a row-major list) into one tiled picture."""
    if not isinstance(cells, dict):
        cells = {divmod(index, cols): request for index, request in enumerate(cells)}
    check_mixing(renderer, cells.values())
    images = [None] * (rows * cols)
    total = len(cells)
    for done, ((row, col), request) in enumerate(sorted(cells.items()), start=1):
        _check_cancel(cancel)
        images[row * cols + col] = render_image(renderer, request, cancel)
        if progress is not None:
            progress(done, total)
    return tile_grid(images, rows, cols, padding)


def tile_grid(images, rows, cols, padding=0):
    """A grid's picture from its cells' images (row-major, None for a blank cell)."""
    background = 255 if any(image is None for image in images) else 0  # the paper's white corner
    return tile_images(images, rows, cols, padding=padding, background=background)


def export_grid(renderer, cells, rows, cols, path, base, kind, padding=0, progress=None, cancel=None):
    """Render and write a grid PNG; its text chunks hold base's request and every cell's."""
    check_png_name(path)
    check_padding(padding)
    _fail_early_if_unwritable(path)
    image = render_grid(renderer, cells, rows, cols, padding, progress, cancel)
    save_grid(image, cells, rows, cols, path, base, kind, padding)
    return image


def save_grid(image, cells, rows, cols, path, base, kind, padding=0):
    """Write a grid's picture as PNG; its text chunks hold base's request and every cell's."""
    if not isinstance(cells, dict):
        cells = {divmod(index, cols): request for index, request in enumerate(cells)}
    layout = {
        "kind": kind,
        "rows": rows,
        "cols": cols,
        "padding": padding,
        "cells": [{"row": r, "col": c, "request": req.to_dict()} for (r, c), req in sorted(cells.items())],
    }
    model = model_path_of(base)
    save_png(image, base, path, model_path=model if model.is_file() else None, extra_text={"stylescope.grid": layout})


# ---------------------------------------------------------------- videos from requests


def video_frames(renderer, request_sequences, cols=1, cancel=None):
    """Rendered pictures; with several sequences (a grid video) each picture tiles one frame of each."""
    if len(request_sequences) == 1:
        for request in request_sequences[0]:
            yield render_image(renderer, request, cancel)
        return
    rows = -(-len(request_sequences) // cols)
    for requests in zip(*request_sequences):
        yield tile_images([render_image(renderer, r, cancel) for r in requests], rows, cols)


def export_video(renderer, request_sequences, path, fps=30, quality=8, cols=1, total=None, progress=None, cancel=None,
                 pixel_format="yuv444p"):
    """Render request sequences (one, or one per grid cell) into an MP4 or GIF, atomically."""
    _fail_early_if_unwritable(path)
    frames = video_frames(renderer, request_sequences, cols, cancel)
    return write_video(frames, path, fps=fps, quality=quality, total=total, progress=progress, cancel=cancel,
                       pixel_format=pixel_format)


def _fail_early_if_unwritable(path):
    problem = writable_or_error(path)
    if problem:
        raise ExportError(problem)


# ---------------------------------------------------------------- background jobs


class ExportJob:
    """Runs one export on a thread of its own, with progress and cancel, for the GUI.

    work(progress, cancel) does the export (it should use its own Renderer, so the
    interactive worker is never blocked). Read done/total/finished/error/result from any
    thread; cancel() asks it to stop and the partial file is removed.
    """

    def __init__(self, description, work):
        self.description = description
        self._work = work
        self.cancel_event = threading.Event()
        self.done = 0
        self.total = 0
        self.finished = False
        self.cancelled = False
        self.error = None
        self.result = None
        self._thread = threading.Thread(target=self._run, name=f"Export: {description}", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def cancel(self):
        self.cancel_event.set()

    def wait(self, timeout=None):
        self._thread.join(timeout)
        return self.finished

    @property
    def fraction(self):
        return self.done / self.total if self.total else 0.0

    def _progress(self, done, total):
        self.done, self.total = done, total

    def _run(self):
        try:
            self.result = self._work(self._progress, self.cancel_event)
        except ExportCancelled:
            self.cancelled = True
        except Exception as error:  # shown in the panel; the window stays up
            text = str(error).strip().splitlines()
            self.error = text[0] if text else type(error).__name__
        finally:
            self.finished = True
