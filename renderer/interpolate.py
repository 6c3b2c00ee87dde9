"""Latent interpolation math for videos: seeds' z, slerp, lerp, a C1 spline, easing, looping."""

import math

import numpy as np

INTERPOLATIONS = ("slerp-z", "lerp-w", "cubic-w")
EASINGS = ("linear", "ease-in-out", "cosine", "ease-in", "ease-out")


def seed_z(seed, z_dim):
    """The z NVIDIA's gen_images.py uses for a seed: RandomState(seed).randn(1, z_dim), float64."""
    return np.random.RandomState(int(seed)).randn(1, int(z_dim))


def lerp(a, b, t):
    """Straight line from a (t=0) to b (t=1)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return a + (b - a) * t


def slerp(a, b, t):
    """Spherical interpolation along the great circle from a to b, the last axis being the vector.

    z is Gaussian, so its mass sits near a sphere; a straight line between two z cuts
    through the low-density inside and the pictures go flat halfway. Slerp keeps the
    angle moving evenly; the norm is lerped so both ends are hit exactly.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    norm_a = np.linalg.norm(a, axis=-1, keepdims=True)
    norm_b = np.linalg.norm(b, axis=-1, keepdims=True)
    unit_a = a / np.maximum(norm_a, 1e-12)
    unit_b = b / np.maximum(norm_b, 1e-12)
    cos_omega = np.clip(np.sum(unit_a * unit_b, axis=-1, keepdims=True), -1.0, 1.0)
    omega = np.arccos(cos_omega)
    sin_omega = np.sin(omega)
    # Nearly parallel vectors: the slerp weights become 0/0, and a lerp is the same curve.
    nearly_parallel = sin_omega < 1e-6
    safe_sin = np.where(nearly_parallel, 1.0, sin_omega)
    weight_a = np.where(nearly_parallel, 1.0 - t, np.sin((1.0 - t) * omega) / safe_sin)
    weight_b = np.where(nearly_parallel, t, np.sin(t * omega) / safe_sin)
    direction = weight_a * unit_a + weight_b * unit_b
    direction /= np.maximum(np.linalg.norm(direction, axis=-1, keepdims=True), 1e-12)
    return direction * (norm_a + (norm_b - norm_a) * t)


def catmull_rom(p0, p1, p2, p3, t):
    """Uniform Catmull-Rom segment from p1 (t=0) to p2 (t=1); C1 across segments, through every key."""
    p0, p1, p2, p3 = (np.asarray(p, dtype=np.float64) for p in (p0, p1, p2, p3))
    t2 = t * t
    t3 = t2 * t
    return 0.5 * (
        2.0 * p1
        + (p2 - p0) * t
        + (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3) * t2
        + (3.0 * p1 - p0 - 3.0 * p2 + p3) * t3
    )


def ease(t, easing="linear"):
    """Map the linear time t in [0, 1] of one transition to eased time, ends fixed."""
    if easing == "linear":
        return t
    if easing == "ease-in-out":  # smoothstep: zero speed at both keyframes
        return t * t * (3.0 - 2.0 * t)
    if easing == "cosine":
        return 0.5 - 0.5 * math.cos(math.pi * t)
    if easing == "ease-in":
        return t * t
    if easing == "ease-out":
        return 1.0 - (1.0 - t) * (1.0 - t)
    raise ValueError(f"unknown easing {easing!r}; choose one of {', '.join(EASINGS)}")


def transition_count(num_keys, loop):
    """How many transitions a keyframe sequence has (a loop adds the way back to the first)."""
    if num_keys < 1:
        raise ValueError("at least one keyframe is needed")
    if num_keys == 1:
        return 0
    return num_keys if loop else num_keys - 1


def frame_count(num_keys, frames_per_transition, loop):
    """Frames of an interpolation video.

    A loop has num_keys * frames_per_transition frames and stops one step before its first
    frame, so playing it on repeat never shows a frame twice. An open path has
    (num_keys - 1) * frames_per_transition + 1 frames and ends on its last keyframe.
    """
    if frames_per_transition < 1:
        raise ValueError("frames per transition must be at least 1")
    transitions = transition_count(num_keys, loop)
    if transitions == 0:
        return 1
    return transitions * frames_per_transition + (0 if loop else 1)


def frame_positions(num_keys, frames_per_transition, loop):
    """(segment index, linear t in [0, 1]) of every frame; segment i goes from key i to key i+1."""
    total = frame_count(num_keys, frames_per_transition, loop)
    if transition_count(num_keys, loop) == 0:
        return [(0, 0.0)] * total
    positions = []
    for index in range(total):
        segment, step = divmod(index, frames_per_transition)
        if not loop and segment == num_keys - 1:  # the closing frame of an open path
            segment, step = num_keys - 2, frames_per_transition
        positions.append((segment, step / frames_per_transition))
    return positions


def interpolate_keys(keys, frames_per_transition, method="lerp-w", loop=False, easing="linear"):
    """All in-between vectors of a keyframe path, as a list (see iter_interpolation)."""
    return list(iter_interpolation(keys, frames_per_transition, method, loop, easing))


def iter_interpolation(keys, frames_per_transition, method="lerp-w", loop=False, easing="linear"):
    """The in-between vectors of a keyframe path, one float64 array per frame, shaped like a key.

    keys: a list of arrays of one shape (z [1, z_dim] for slerp-z, ws [1, num_ws, w_dim] for
    lerp-w and cubic-w). The first frame is exactly keys[0]. A generator, so a long
    video of large ws never holds every frame's latent at once.
    """
    if method not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {method!r}; choose one of {', '.join(INTERPOLATIONS)}")
    keys = [np.asarray(k, dtype=np.float64) for k in keys]
    if any(k.shape != keys[0].shape for k in keys):
        raise ValueError("keyframes must all have the same shape")
    num_keys = len(keys)
    for segment, t in frame_positions(num_keys, frames_per_transition, loop):
        if num_keys == 1:
            yield keys[0].copy()
            continue
        s = ease(t, easing)
        start = keys[segment]
        end = keys[(segment + 1) % num_keys]
        if s == 0.0 or s == 1.0:  # on a keyframe: exactly it, not a rounded recomputation
            yield (start if s == 0.0 else end).copy()
        elif method == "slerp-z":
            yield slerp(start, end, s)
        elif method == "lerp-w":
            yield lerp(start, end, s)
        else:
            before, after = _spline_neighbours(keys, segment, loop)
            yield catmull_rom(before, start, end, after, s)


def _spline_neighbours(keys, segment, loop):
    """The control points outside segment i: wrapped in a loop, the end keys repeated otherwise."""
    n = len(keys)
    if loop:
        return keys[(segment - 1) % n], keys[(segment + 2) % n]
    return keys[max(segment - 1, 0)], keys[min(segment + 2, n - 1)]
