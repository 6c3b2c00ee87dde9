"""Latent helpers shared by the request's users: the seed plane's blend and sums of directions in W."""

import math

import numpy as np

from renderer.request.fields import MAX_SEED

# NVIDIA's visualizer lays seeds out on a plane: seed = x + y * SEED_STEP_Y (mod 2**32).
SEED_STEP_Y = 100

def ws_rows(array):
    """An array meant as ws (a w, a direction) as float64 rows [N, w_dim]: a batch of 1 is dropped
    and a single vector becomes one row, which stands for every layer."""
    array = np.asarray(array, dtype=np.float64)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    return array[None] if array.ndim == 1 else array


def direction_sum(terms):
    """The sum of strength x rows over (strength, rows) terms, zero strengths left out: a request's
    w_offset, or None when nothing is added. One row broadcasts over num_ws rows; shapes that do not
    add up raise ValueError."""
    total = None
    for strength, rows in terms:
        if float(strength) == 0.0:
            continue
        term = float(strength) * ws_rows(rows)
        if total is not None and (term.ndim != 2 or term.shape[1] != total.shape[1]
                                  or term.shape[0] not in (1, total.shape[0]) and total.shape[0] != 1):
            raise ValueError(f"directions of shapes {list(total.shape)} and {list(term.shape)} do not add up")
        total = term if total is None else total + term
    return total


def seed_xy_blend(x, y):
    """The four seeds around (x, y) and their bilinear weights, as NVIDIA's visualizer does.

    Corners are (floor(x)+dx, floor(y)+dy), seed = (cx + cy * SEED_STEP_Y) mod 2**32, weight
    (1-|x-cx|)(1-|y-cy|); zero weights are dropped. The renderer blends them in W, after
    mapping and truncation, relative to w_avg (as the visualizer does).
    """
    blend = []
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        cx = math.floor(x) + dx
        cy = math.floor(y) + dy
        weight = (1 - abs(x - cx)) * (1 - abs(y - cy))
        if weight > 0:
            blend.append(((cx + cy * SEED_STEP_Y) & MAX_SEED, float(weight)))
    return tuple(blend)
