"""Sequences: keyframes, interpolation and sweep requests, and the videos rendered from them (MP4 / GIF)."""

import errno
from pathlib import Path

import numpy as np

from models.atomic_write import describe_os_error
from renderer.export_jobs import (ExportCancelled, ExportError, atomic_output, check_cancel, fail_if_unwritable,
                                  render_image)
from renderer.grids import tile_images
from renderer.latent_files import load_latent, plain_latent, request_z
from renderer.png_metadata import image_of, read_png_metadata


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
                check_cancel(cancel)
                writer.append(image_of(image))
                done += 1
                if progress is not None:
                    progress(done, total if total is not None else done)
            check_cancel(cancel)
            writer.close()
        except BaseException as error:
            writer.abort()
            explained = _explain_writer_error(error, path)
            if explained is error:
                raise
            raise explained from error
    return Path(path)


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


# ---------------------------------------------------------------- keyframes


def keyframe_request(base, item):
    """One keyframe as a full RenderRequest built on `base`.

    item: a seed (int, or text of digits); a latent file (.npy / .npz holding a z or a w);
    a saved request or session (.json, RenderRequest JSON); an exported PNG (its request).
    Seeds and latent files take every other setting from base; saved requests and PNGs
    bring their own (their own psi, mixing, ...), only the network comes from base.
    """
    import dataclasses

    if isinstance(item, (int, np.integer)) or (isinstance(item, str) and item.strip().isdigit()):
        return dataclasses.replace(base, **{**plain_latent(), "seeds": ((int(item), 1.0),)})
    path = Path(item)
    if not path.is_file():
        raise ExportError(f"keyframe {item}: no such file (give seeds, .npy/.npz latents, .json sessions or .png exports)")
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        kind, latent = load_latent(path)
        return dataclasses.replace(base, **{**plain_latent(), kind: latent})
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


# ---------------------------------------------------------------- request sequences


def cell_interpolations(renderer, base, cells, frames_per_transition, method="slerp-z", loop=False, easing="linear"):
    """One interpolation_requests sequence per grid cell, each through that cell's keyframe items
    (seeds, latent files, sessions, exported PNGs: keyframe_request)."""
    return [interpolation_requests(renderer, base, [keyframe_request(base, item) for item in cell],
                                   frames_per_transition, method, loop, easing) for cell in cells]


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
        first = dataclasses.replace(base, **plain_latent())
        for z in interpolate.iter_interpolation(keys, frames_per_transition, method, loop, easing):
            yield dataclasses.replace(first, z=z[0])
        return
    keys = [renderer.compute_ws(key).detach().cpu().numpy().astype(np.float64) for key in keyframes]
    unmixed = dataclasses.replace(
        keyframes[0], **plain_latent(), mix_seed=None, mix_w=None, mix_layers=(), w_offset=None
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
    fail_if_unwritable(path)
    frames = video_frames(renderer, request_sequences, cols, cancel)
    return write_video(frames, path, fps=fps, quality=quality, total=total, progress=progress, cancel=cancel,
                       pixel_format=pixel_format)
