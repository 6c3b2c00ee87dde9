"""Grids: seed lists and grid shapes, tiling pictures, seed grids and the style-mixing figure as PNGs."""

import numpy as np

from renderer.export_jobs import check_cancel, fail_if_unwritable, model_path_of, render_image
from renderer.latent_files import plain_latent
from renderer.png_metadata import check_png_name, save_png


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


# ---------------------------------------------------------------- grids of requests


def seed_grid_requests(base, seeds):
    """One request per seed, base's other settings kept."""
    import dataclasses

    return [dataclasses.replace(base, **{**plain_latent(), "seeds": ((int(s), 1.0),)}) for s in seeds]


def style_mix_requests(base, row_seeds, col_seeds, layers):
    """The StyleGAN paper's style-mixing figure as requests: {(row, col): request}.

    Row 0 holds the column seeds' own pictures, column 0 the row seeds'; cell (i+1, j+1) is
    row seed i with column seed j's styles in `layers` (w indices: see renderer.request.mix_indices).
    (0, 0) stays blank.
    """
    import dataclasses

    plain = dict(plain_latent(), mix_seed=None, mix_w=None, mix_layers=(), mix_strength=1.0)
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
        check_cancel(cancel)
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
    fail_if_unwritable(path)
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
