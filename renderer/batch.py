"""Batch jobs: one picture per seed in a folder (NVIDIA's naming), resumable, with a manifest and
contact sheets; video frames and grid cells rendered in shards by render workers and put back in order."""

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from models.atomic_write import describe_os_error
from renderer import export_jobs, grids, png_metadata, sequences

FORMATS = ("png", "jpg")
MANIFEST = "manifest.json"
# JPEG at quality 95 without chroma subsampling: near the PNG's pixels at a quarter of its size.
JPEG_QUALITY = 95
MAX_BATCH_SEEDS = 1_000_000  # a 50k-image FID set fits many times; a typo like 0-10**12 fails at once
# Items per shard: at least a few shards per worker (so a slow or restarted one delays little),
# at most this many (so progress moves and a retried shard loses little).
MAX_SHARD = 16
SHARDS_PER_WORKER = 4


@dataclass
class BatchResult:
    written: list = field(default_factory=list)  # seeds rendered by this run
    skipped: list = field(default_factory=list)  # seeds whose file was already there
    sheets: list = field(default_factory=list)  # contact sheets written by this run


def seed_file(out_dir, seed, fmt="png"):
    """DIR/seed0042.png: the name NVIDIA's gen_images.py gives."""
    return Path(out_dir) / f"seed{int(seed):04d}.{fmt}"


def sheet_file(out_dir, seeds):
    """DIR/grid_seed0000-0011.png: the contact sheet of these seeds."""
    return Path(out_dir) / f"grid_seed{int(seeds[0]):04d}-{int(seeds[-1]):04d}.png"


def parse_batch_seeds(text):
    """The job's seeds ('0-49999', '1,5,9-12'), each once, in the order given."""
    return list(dict.fromkeys(grids.parse_seeds(text, limit=MAX_BATCH_SEEDS)))


def check_format(fmt):
    if fmt not in FORMATS:
        raise ValueError(f"--format: use one of {', '.join(FORMATS)}, got {fmt!r}")
    return fmt


def seed_request(base, seed):
    """base with one seed as its latent: what `frame --seed S` with the same flags renders."""
    return dataclasses.replace(base, seeds=int(seed), seed_xy=None, z=None, w=None)


def encode_image(image, request, fmt="png"):
    """A picture's file bytes, carrying its request and network (PNG text chunks, JPEG comment).

    The PNG is byte for byte what `frame` writes for the same request.
    """
    model = export_jobs.model_path_of(request)
    model_path = model if model.is_file() else None
    if fmt == "png":
        return png_metadata.encode_png(image, request, model_path=model_path)
    import io

    from PIL import Image

    note = {png_metadata.PNG_KEY_REQUEST: request.to_dict(), png_metadata.PNG_KEY_MODEL: model.name,
            png_metadata.PNG_KEY_MODEL_SHA256: png_metadata.file_sha256(model) if model_path else ""}
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0,
                                comment=json.dumps(note).encode())
    return buffer.getvalue()


def write_file(path, data):
    """Write bytes atomically: the file appears only when complete."""
    with export_jobs.atomic_output(path) as temp_name:
        Path(temp_name).write_bytes(data)


def split_shards(items, workers):
    """Consecutive runs of items, a few per worker, none longer than MAX_SHARD."""
    items = list(items)
    size = max(1, min(MAX_SHARD, math.ceil(len(items) / (max(1, workers) * SHARDS_PER_WORKER))))
    return [items[first:first + size] for first in range(0, len(items), size)]


# ---------------------------------------------------------------- the manifest


def manifest_data(base, seeds_text, fmt, grid):
    """What the folder holds: the request every file shares, its network's sha256, the naming."""
    model = export_jobs.model_path_of(base)
    return {
        "software": "StyleScope batch",
        "request": json.loads(base.to_json()),
        "model": str(base.pkl) if base.pkl else "default model",
        "model_sha256": png_metadata.file_sha256(model),
        "seeds": seeds_text,
        "format": fmt,
        "files": f"seed{{seed:04d}}.{fmt}",
        "grid": f"{grid[0]}x{grid[1]}" if grid else None,
    }


def write_manifest(out_dir, data):
    """Write DIR/manifest.json; refuse a folder that holds another job's files (other request,
    network or format), whose missing files would not match the ones there."""
    path = Path(out_dir) / MANIFEST
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = None
        if not isinstance(old, dict):
            raise export_jobs.ExportError(f"{path}: not a readable batch manifest; use another --out folder")
        for key, what in (("request", "request"), ("model_sha256", "network"), ("format", "format")):
            if old.get(key) != data[key]:
                raise export_jobs.ExportError(f"{out_dir} holds a batch made with another {what}; "
                                              f"use another --out folder (or delete {path})")
    write_file(path, (json.dumps(data, indent=2) + "\n").encode())


# ---------------------------------------------------------------- the batch


def prepare_folder(base, seeds, out_dir, fmt="png", grid=None, seeds_text=None):
    """Make the folder and its manifest (refusing another job's folder); before any rendering."""
    check_format(fmt)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise export_jobs.ExportError(describe_os_error(error, out_dir)) from None
    write_manifest(out_dir, manifest_data(base, seeds_text or ",".join(map(str, seeds)), fmt, grid))
    return out_dir


def run_batch(pool, base, seeds, out_dir, fmt="png", grid=None, seeds_text=None, progress=None):
    """Render the seeds whose files are missing in out_dir, with the pool's workers; the files
    already there are kept. grid (rows, cols): also a contact sheet per rows*cols seeds."""
    out_dir = prepare_folder(base, seeds, out_dir, fmt, grid, seeds_text)
    result = BatchResult()
    missing = []
    for seed in seeds:
        (result.skipped if seed_file(out_dir, seed, fmt).is_file() else missing).append(seed)
    done, total = len(result.skipped), len(seeds)
    if progress is not None:
        progress(done, total)
    shards = split_shards([(seed, seed_request(base, seed)) for seed in missing], pool.workers)
    for _, files in pool.run("files", shards, fmt):
        for seed, data in files:
            write_file(seed_file(out_dir, seed, fmt), data)
            result.written.append(seed)
            done += 1
            if progress is not None:
                progress(done, total)
    if grid:
        result.sheets = write_sheets(base, seeds, out_dir, fmt, grid)
    return result


def write_sheets(base, seeds, out_dir, fmt, grid):
    """A contact sheet per rows*cols consecutive seeds (the last one may be part empty), made from
    the seed files; each is what `grid --seeds <its seeds> --grid RxC` writes. Existing ones are kept."""
    rows, cols = grid
    written = []
    for first in range(0, len(seeds), rows * cols):
        group = seeds[first:first + rows * cols]
        path = sheet_file(out_dir, group)
        if path.is_file():
            continue
        images = [png_metadata.read_png_image(seed_file(out_dir, seed, fmt)) for seed in group]
        image = grids.tile_grid(images + [None] * (rows * cols - len(group)), rows, cols)
        grids.save_grid(image, grids.seed_grid_requests(base, group), rows, cols, path, base, "seeds")
        written.append(path)
        # A part-filled sheet of an earlier, shorter run starts at the same seed: this one replaces it.
        for older in out_dir.glob(f"grid_seed{int(group[0]):04d}-*.png"):
            if older != path:
                older.unlink(missing_ok=True)
    return written


# ---------------------------------------------------------------- videos and grids in shards


def video_frames(pool, request_sequences, cols=1):
    """A video's pictures, in order, rendered in shards by the pool's workers; the same pictures
    as sequences.video_frames (with several sequences, each picture tiles one frame of each)."""
    sequences = [list(requests) for requests in request_sequences]
    cells = len(sequences)
    rows = -(-cells // cols)
    items = [((index, cell), request) for index, frame in enumerate(zip(*sequences))
             for cell, request in enumerate(frame)]
    waiting = {}  # frame index -> {cell: image}, for frames that came back before earlier ones
    next_index = 0
    for _, images in pool.run("images", split_shards(items, pool.workers)):
        for (index, cell), image in images:
            waiting.setdefault(index, {})[cell] = image
        while len(waiting.get(next_index, ())) == cells:
            parts = waiting.pop(next_index)
            yield parts[0] if cells == 1 else grids.tile_images([parts[c] for c in range(cells)], rows, cols)
            next_index += 1


def export_video(pool, request_sequences, path, fps=30, quality=8, cols=1, total=None, progress=None,
                 pixel_format="yuv444p"):
    """sequences.export_video with the frames rendered by the pool's workers; this process writes."""
    problem = export_jobs.writable_or_error(path)
    if problem:
        raise export_jobs.ExportError(problem)
    frames = video_frames(pool, request_sequences, cols)
    return sequences.write_video(frames, path, fps=fps, quality=quality, total=total, progress=progress,
                                 pixel_format=pixel_format)


def export_grid(pool, cells, rows, cols, path, base, kind, padding=0, progress=None):
    """grids.export_grid with the cells rendered by the pool's workers; this process writes."""
    png_metadata.check_png_name(path)
    grids.check_padding(padding)
    problem = export_jobs.writable_or_error(path)
    if problem:
        raise export_jobs.ExportError(problem)
    if not isinstance(cells, dict):
        cells = {divmod(index, cols): request for index, request in enumerate(cells)}
    images = [None] * (rows * cols)
    done = 0
    for _, results in pool.run("images", split_shards(sorted(cells.items()), pool.workers)):
        for (row, col), image in results:
            images[row * cols + col] = image
            done += 1
            if progress is not None:
                progress(done, len(cells))
    image = grids.tile_grid(images, rows, cols, padding)
    grids.save_grid(image, cells, rows, cols, path, base, kind, padding)
    return image
