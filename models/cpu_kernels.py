"""Fused CPU loops compiled by numba: StyleGAN3's filtered leaky ReLU, StyleGAN2's FIR and epilogue.

Filtered leaky ReLU (polyphase up, lrelu, clamp, down): the torch path in filtered_lrelu runs
each step as a separate operation over a tile; this runs them row by row over a column tile, so
the intermediate rows never leave the core's cache. Rows are kept phase-planar: upsampled
column s = s0 + up*m + a is element (a, m) of its row, so that every filter tap, along W as
along H, is one long multiply-add over contiguous memory (what the compiler vectorises), never
a short loop over one pixel's channels. The same module holds the loops' thread pool
(run_parallel, split): callers split their rows or tiles over torch's thread count, and each
worker has its own scratch. Winograd's transforms (models/winograd.py) are built on njit_loop too.
"""

import functools
import math
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

try:  # numba is a requirement; without it (an exotic platform) the torch path in filtered_lrelu runs
    import numba
except ImportError:  # pragma: no cover - exercised only where numba cannot be installed
    numba = None

# Output columns per column tile, times channels: a tile's rows (upsampled input rows, filtered
# rows) then fit the core's L2 cache together.
TILE_VALUES = 8192
# Output rows downsampled along H together (12-tap 2x filters): they share most of the rows they read.
OUTPUT_GROUP = 4
# A 2-D (radial) down filter is split into separable terms (SVD) until what is left sums, in
# absolute value, to this fraction of the filter (StyleGAN3-R's radial filters: 2-3 terms instead
# of 144 taps; the terms left out have singular values below 2e-5 of the first). An R-256 frame
# then stays 1.9e-6 from the full filters' (5.4e-7 with terms down to 1e-6, one more for the
# largest layers at ~10% more filter time): the order of Winograd's float32 rounding.
RANK_TOLERANCE = 1e-4
# What is left of any other 2-D filter split this way (StyleGAN2's FIR, which may be anything):
# below float32 rounding of the result.
EXACT_RANK_TOLERANCE = 1e-6


def available():
    """True when the fused kernel can run here."""
    return numba is not None


_pool, _pool_size = None, 0


def run_parallel(jobs):
    """Run the callables at once on a shared pool of threads (the loops release the GIL) and return
    when all are done; a failure in any is raised here. One job runs on the calling thread."""
    global _pool, _pool_size
    if len(jobs) == 1:
        jobs[0]()
        return
    if _pool_size < len(jobs) - 1:
        _pool, _pool_size = ThreadPoolExecutor(len(jobs) - 1, thread_name_prefix="cpu-loops"), len(jobs) - 1
    futures = [_pool.submit(job) for job in jobs[1:]]
    try:
        jobs[0]()
    finally:
        wait(futures)  # all finish before the caller may reuse the buffers they write
    for future in futures:
        future.result()


def split(count, parts):
    """[(begin, end)] of at most `parts` nearly equal, non-empty runs covering range(count)."""
    parts = max(1, min(parts, count))
    return [(count * i // parts, count * (i + 1) // parts) for i in range(parts)]


def warm_up():
    """Compile every loop here into numba's disk cache, on tiny inputs of the types real calls pass
    (the install step runs this: cold, the first StyleGAN3 frame would wait ~10 s for the compiler)."""
    if not available():
        return
    rng = np.random.default_rng(0)
    x = rng.standard_normal([13, 21, 4]).astype(np.float32)
    bias = np.zeros(4, np.float32)
    half = rng.random([3, 6])
    mirrored = np.concatenate([half, half[:, ::-1]], axis=1)
    down_filters = (None, rng.random(12), mirrored.T @ mirrored,  # none, separable, radial-like
                    np.einsum("ri,rj->ij", mirrored[:2], mirrored[:2]), rng.random([12, 12]))
    for up in (2, 4):
        for fd in down_filters:
            plan = Plan(13, 21, rng.random(6 * up), fd, up, 2 if fd is not None else 1, [8, 7, 9, 6], 1.4)
            out = np.zeros([plan.out_h, plan.out_w, 4], np.float32)
            plan.run(x, bias, out, 0, plan.out_h, 0, 0.2, 256.0)
    fir_out = np.zeros([13, 21, 4], np.float32)
    FirPlan(np.outer([1, 3, 3, 1], [1, 3, 3, 1]), 1, 2).run(x, fir_out, np.ones(4, np.float32), bias)
    noise_lrelu_clamp(x.reshape(13, -1), np.zeros([13, 21], np.float32), 1.0, 0.2, 256.0)


def supports(fu, up, down):
    """Whether the kernel takes this resampling: a separable up filter, down dividing up."""
    return available() and (fu is None or fu.ndim == 1) and up % down == 0


def phase_table(taps, up, pad0):
    """Per phase a of the upsampled line: (first input offset base[a], weights [up, P]).

    NVIDIA's upfirdn2d puts input i at index up*i + pad0 of a zero-stuffed line and convolves it
    with `taps` (K of them), so upsampled sample s = up*m + a reads inputs m + base[a] + p, p < P,
    with weight taps[K-1 - (up*(m + base[a] + p) + pad0 - s)], which depends on a and p only.
    """
    k = len(taps)
    width = -(-k // up)
    base = np.zeros(up, np.int64)
    weight = np.zeros((up, width), np.float32)
    for a in range(up):
        base[a] = -((pad0 - a) // up)  # ceil((a - pad0) / up)
        for p in range(width):
            index = k - 1 - (up * (base[a] + p) + pad0 - a)
            if 0 <= index < k:
                weight[a, p] = taps[index]
    return base, weight


def down_terms(fd, tolerance=None):
    """Separable terms (taps along W [T, K], taps along H [T, K]) whose sum is correlation with fd,
    up to `tolerance` (RANK_TOLERANCE when None) of the filter's absolute sum.

    upfirdn2d convolves, so the kept output o reads tmp[o*down + k] with the flipped filter. A 1-D
    filter is one term (the same taps along both axes); a 2-D one is split by SVD.
    """
    if fd is None:
        one = np.ones((1, 1), np.float32)
        return one, one
    f = np.asarray(fd, np.float64)
    if f.ndim == 1:
        g = f[::-1].astype(np.float32)[None]
        return g, g.copy()
    g = f[::-1, ::-1]
    tolerance = RANK_TOLERANCE if tolerance is None else tolerance
    u, s, vt = np.linalg.svd(g)
    total = np.abs(g).sum()
    rank = len(s)
    for r in range(1, len(s) + 1):
        if np.abs(g - (u[:, :r] * s[:r]) @ vt[:r]).sum() <= tolerance * total:
            rank = r
            break
    along_h = (u[:, :rank] * np.sqrt(s[:rank])).T
    along_w = vt[:rank] * np.sqrt(s[:rank])[:, None]
    # C order both (one compiled variant of the loops, not one per memory order).
    return np.ascontiguousarray(along_w, np.float32), np.ascontiguousarray(along_h, np.float32)


class Plan:
    """Everything about one filtered_lrelu shape that does not depend on the data."""

    def __init__(self, in_h, in_w, fu, fd, up, down, padding, gain):
        px0, px1, py0, py1 = padding
        fu = np.ones(1) if fu is None else np.asarray(fu, np.float64)
        fd = None if fd is None else np.asarray(fd, np.float64)
        if fu.ndim != 1 or up % down:
            raise ValueError("the fused kernel takes a separable up filter and a down factor dividing up")
        self.fd_size = 1 if fd is None else int(fd.shape[-1])
        self.in_h, self.in_w, self.up, self.down = in_h, in_w, up, down
        self.tmp_w = in_w * up + px0 + px1 - len(fu) + 1
        self.tmp_h = in_h * up + py0 + py1 - len(fu) + 1
        self.out_w = (self.tmp_w - self.fd_size) // down + 1
        self.out_h = (self.tmp_h - self.fd_size) // down + 1
        # The reference's separable gain is `up` per axis; the activation's gain (> 0) commutes
        # with the leaky ReLU and rides in the vertical weights.
        self.w_base, self.w_weight = phase_table(fu * up, up, px0)
        self.h_base, self.h_weight = phase_table(fu * up * gain, up, py0)
        self.down_w, self.down_h = down_terms(fd)
        # StyleGAN3-R's radial filters: 2-4 terms of 12 symmetric taps, which _down12_mirrored runs
        # together from one read of the row (6 sums of mirrored taps, then 6 multiply-adds a term).
        terms = len(self.down_w)
        self.mirrored_terms = (self.down_w.shape[1] == 12 and 2 <= terms <= 4
                     and np.array_equal(self.down_w, self.down_w[:, ::-1]))

    def input_rows(self, o0, o1):
        """Input rows [first, stop) that output rows o0..o1-1 read (clipped to the input)."""
        t0, t1 = o0 * self.down, (o1 - 1) * self.down + self.fd_size - 1
        first = t0 // self.up + int(self.h_base.min())
        last = t1 // self.up + int(self.h_base.max()) + self.h_weight.shape[1] - 1
        first, stop = max(first, 0), min(last + 1, self.in_h)
        return first, max(stop, first)

    def run(self, x, bias, out, o0, o1, x_top, slope, clamp, more=None, more_top=None, workers=1):
        """Output rows o0..o1-1 into out [out_h, out_w, C] from x [rows, in_w, C] holding input rows
        x_top.. (at least input_rows(o0, o1)); float32, C-contiguous numpy arrays (channels last).

        The rows may come in two pieces: x for rows x_top..more_top-1, `more` from more_top on (the
        caller's previous band and its new rows, without copying them into one array). workers:
        threads to split the column tiles over, each with its own scratch.
        """
        if more is None:
            more, more_top = x, x_top + x.shape[0]
        if not (x.flags.c_contiguous and more.flags.c_contiguous and out.flags.c_contiguous):
            raise ValueError("the fused kernel needs C-contiguous (channels-last) rows")
        channels = x.shape[2]
        ratio = self.up // self.down
        tile = max(ratio, (TILE_VALUES // max(channels, 1)) // ratio * ratio)
        out_w = out.shape[1]
        jobs = []
        for worker, (first, stop) in enumerate(split(-(-out_w // tile), workers)):
            jobs.append(functools.partial(
                _filtered_lrelu_rows, x.reshape(x.shape[0], -1), more.reshape(more.shape[0], -1), bias,
                out.reshape(out.shape[0], -1), channels, self.in_h, self.in_w, o0, o1, x_top, more_top,
                self.up, self.down, tile, first * tile, min(stop * tile, out_w),
                self.w_base, self.w_weight, self.h_base, self.h_weight, self.down_w, self.down_h,
                self.mirrored_terms, np.float32(slope), np.float32(math.inf if clamp is None else clamp),
                *self.scratch(channels, tile, worker)))
        run_parallel(jobs)

    def scratch(self, channels, tile, worker=0):
        """The kernel's buffers for this many channels and tile width (one set per worker thread),
        made once and kept: allocated per tile, between the frame's big tensors, they would
        fragment the heap."""
        key = (channels, tile)
        if getattr(self, "_scratch_key", None) != key:
            self._scratch_key, self._scratch = key, {}
        if worker not in self._scratch:
            up, down, c = self.up, self.down, channels
            taps = self.w_weight.shape[1]
            terms, fd = self.down_w.shape
            planes_n, m_count, j_count = _tile_geometry(tile, up, down, fd, taps,
                                                        int(self.w_base.max() - self.w_base.min()))
            row_len = up * m_count * c
            down_len = (up // down) * planes_n * c
            up_ring = taps + 4  # upsampled input rows kept: a pair of filtered rows reads 7
            self._scratch[worker] = (np.zeros(j_count * c, np.float32),  # biased input row
                             np.zeros((up_ring + 1) * row_len, np.float32),  # ring of upsampled rows + a zero row
                             np.zeros(up_ring, np.int64),  # which input row each ring slot holds
                             np.zeros(row_len, np.float32), np.zeros(row_len, np.float32),  # filtered rows
                             # ring of W-downsampled rows, and a row where _down12_mirrored's unused terms go
                             np.zeros((terms * _down_ring(fd, down) + 1) * down_len, np.float32),
                             np.zeros((OUTPUT_GROUP, down_len), np.float32),  # output rows, planar
                             np.zeros(max(taps + 1, terms * fd, _down_ring(fd, down)), np.int64),
                             np.zeros(max(taps + 1, terms * fd, _down_ring(fd, down)), np.float32),
                             np.zeros(taps + 1, np.float32),
                             np.zeros(taps, np.int64), np.zeros(taps, np.float32))
        return self._scratch[worker]


def njit_loop(fn):
    """numba.njit with FMA contraction allowed (only that: no reordering of sums), cached on disk
    (beside this file, else in the user's cache directory); nogil, so the UI thread runs meanwhile."""
    if numba is None:
        return fn
    try:
        return numba.njit(cache=True, nogil=True, fastmath={"contract"})(fn)
    except RuntimeError:  # no writable cache location (read-only install, no home): compile per process
        return numba.njit(nogil=True, fastmath={"contract"})(fn)


def njit_inline(fn):
    """A small numba helper the loops calling it take in whole (inlined in numba's IR, then
    vectorised with them as if written there)."""
    if numba is None:
        return fn
    return numba.njit(inline="always", nogil=True, fastmath={"contract"})(fn)


# Indices in the loops below are unsigned: numba wraps negative (signed) indices around, and that
# check in every access keeps LLVM from vectorising the loop (3 against 30 GFLOP/s measured).


@njit_loop
def _mac(dst, d0, src, offsets, weights, count, n, add):
    """dst[d0 + e] (+)= sum_p weights[p] * src[offsets[p] + e] for e < n: twelve, six or one taps a pass."""
    d0 = np.uint64(d0)
    n = np.uint64(n)
    p = 0
    while p < count:
        accumulate = add or p > 0
        if count - p >= 12:
            w0, w1, w2, w3 = weights[p], weights[p + 1], weights[p + 2], weights[p + 3]
            w4, w5, w6, w7 = weights[p + 4], weights[p + 5], weights[p + 6], weights[p + 7]
            w8, w9, w10, w11 = weights[p + 8], weights[p + 9], weights[p + 10], weights[p + 11]
            s0, s1, s2 = np.uint64(offsets[p]), np.uint64(offsets[p + 1]), np.uint64(offsets[p + 2])
            s3, s4, s5 = np.uint64(offsets[p + 3]), np.uint64(offsets[p + 4]), np.uint64(offsets[p + 5])
            s6, s7, s8 = np.uint64(offsets[p + 6]), np.uint64(offsets[p + 7]), np.uint64(offsets[p + 8])
            s9, s10, s11 = np.uint64(offsets[p + 9]), np.uint64(offsets[p + 10]), np.uint64(offsets[p + 11])
            for e in range(n):
                v = (w0 * src[s0 + e] + w1 * src[s1 + e] + w2 * src[s2 + e] + w3 * src[s3 + e]
                     + w4 * src[s4 + e] + w5 * src[s5 + e] + w6 * src[s6 + e] + w7 * src[s7 + e]
                     + w8 * src[s8 + e] + w9 * src[s9 + e] + w10 * src[s10 + e] + w11 * src[s11 + e])
                dst[d0 + e] = dst[d0 + e] + v if accumulate else v
            p += 12
        elif count - p >= 6:
            w0, w1, w2 = weights[p], weights[p + 1], weights[p + 2]
            w3, w4, w5 = weights[p + 3], weights[p + 4], weights[p + 5]
            s0, s1, s2 = np.uint64(offsets[p]), np.uint64(offsets[p + 1]), np.uint64(offsets[p + 2])
            s3, s4, s5 = np.uint64(offsets[p + 3]), np.uint64(offsets[p + 4]), np.uint64(offsets[p + 5])
            for e in range(n):
                v = (w0 * src[s0 + e] + w1 * src[s1 + e] + w2 * src[s2 + e]
                     + w3 * src[s3 + e] + w4 * src[s4 + e] + w5 * src[s5 + e])
                dst[d0 + e] = dst[d0 + e] + v if accumulate else v
            p += 6
        else:
            w0 = weights[p]
            s0 = np.uint64(offsets[p])
            for e in range(n):
                v = w0 * src[s0 + e]
                dst[d0 + e] = dst[d0 + e] + v if accumulate else v
            p += 1
    if count == 0 and not add:
        for e in range(n):
            dst[d0 + e] = 0.0


@njit_loop
def _mac6_lrelu(dst, src, offsets, weights, n, slope, clamp):
    """dst[e] = clamp(lrelu(sum of six taps)): the vertical upsampling and the activation in one pass."""
    n = np.uint64(n)
    w0, w1, w2 = weights[0], weights[1], weights[2]
    w3, w4, w5 = weights[3], weights[4], weights[5]
    s0, s1, s2 = np.uint64(offsets[0]), np.uint64(offsets[1]), np.uint64(offsets[2])
    s3, s4, s5 = np.uint64(offsets[3]), np.uint64(offsets[4]), np.uint64(offsets[5])
    for e in range(n):
        v = (w0 * src[s0 + e] + w1 * src[s1 + e] + w2 * src[s2 + e]
             + w3 * src[s3 + e] + w4 * src[s4 + e] + w5 * src[s5 + e])
        v = v * slope if v < 0.0 else v
        dst[e] = min(max(v, -clamp), clamp)


@njit_loop
def _mac7x2_lrelu(dst, dst2, src, offsets, weights, weights2, n, slope, clamp):
    """Two rows from the same seven source rows: dst = clamp(lrelu(sum weights * src)), dst2 likewise."""
    n = np.uint64(n)
    s0, s1, s2 = np.uint64(offsets[0]), np.uint64(offsets[1]), np.uint64(offsets[2])
    s3, s4, s5, s6 = np.uint64(offsets[3]), np.uint64(offsets[4]), np.uint64(offsets[5]), np.uint64(offsets[6])
    a0, a1, a2, a3, a4, a5, a6 = (weights[0], weights[1], weights[2], weights[3], weights[4], weights[5],
                                  weights[6])
    b0, b1, b2, b3, b4, b5, b6 = (weights2[0], weights2[1], weights2[2], weights2[3], weights2[4], weights2[5],
                                  weights2[6])
    for e in range(n):
        x0, x1, x2, x3 = src[s0 + e], src[s1 + e], src[s2 + e], src[s3 + e]
        x4, x5, x6 = src[s4 + e], src[s5 + e], src[s6 + e]
        v = a0 * x0 + a1 * x1 + a2 * x2 + a3 * x3 + a4 * x4 + a5 * x5 + a6 * x6
        v = v * slope if v < 0.0 else v
        dst[e] = min(max(v, -clamp), clamp)
        v = b0 * x0 + b1 * x1 + b2 * x2 + b3 * x3 + b4 * x4 + b5 * x5 + b6 * x6
        v = v * slope if v < 0.0 else v
        dst2[e] = min(max(v, -clamp), clamp)


@njit_inline
def _six_offsets(offsets, at):
    """offsets[at..at+5] as unsigned indices."""
    return (np.uint64(offsets[at]), np.uint64(offsets[at + 1]), np.uint64(offsets[at + 2]),
            np.uint64(offsets[at + 3]), np.uint64(offsets[at + 4]), np.uint64(offsets[at + 5]))


@njit_inline
def _twelve(weights):
    """The 12 taps as a tuple the loop keeps in registers."""
    return (weights[0], weights[1], weights[2], weights[3], weights[4], weights[5],
            weights[6], weights[7], weights[8], weights[9], weights[10], weights[11])


@njit_inline
def _dot12(w, x):
    """sum_k w[k] x[k] over 12 taps, added left to right."""
    return (w[0] * x[0] + w[1] * x[1] + w[2] * x[2] + w[3] * x[3] + w[4] * x[4] + w[5] * x[5]
            + w[6] * x[6] + w[7] * x[7] + w[8] * x[8] + w[9] * x[9] + w[10] * x[10] + w[11] * x[11])


@njit_loop
def _mac12_pair(dst, dst2, d0, src, offsets, weights, n, add):
    """dst[d0+e] (+)= sum_k weights[k] * src[offsets[k] + e] and dst2 the same over offsets[k + 2],
    k < 12: two output rows of a 2x downsampling from the 14 rows they read, each loaded once."""
    n = np.uint64(n)
    d0 = np.uint64(d0)
    w = _twelve(weights)
    s0, s1, s2, s3, s4, s5 = _six_offsets(offsets, 0)
    s6, s7, s8, s9, s10, s11 = _six_offsets(offsets, 6)
    s12, s13 = np.uint64(offsets[12]), np.uint64(offsets[13])
    for e in range(n):
        x = (src[s0 + e], src[s1 + e], src[s2 + e], src[s3 + e], src[s4 + e], src[s5 + e], src[s6 + e],
             src[s7 + e], src[s8 + e], src[s9 + e], src[s10 + e], src[s11 + e], src[s12 + e], src[s13 + e])
        v = _dot12(w, x[0:12])
        v2 = _dot12(w, x[2:14])
        dst[d0 + e] = dst[d0 + e] + v if add else v
        dst2[d0 + e] = dst2[d0 + e] + v2 if add else v2


@njit_loop
def _mac12_quad(d0, d1, d2, d3, at, src, offsets, weights, n, add):
    """d_j[at+e] (+)= sum_k weights[k] * src[offsets[2j + k] + e], k < 12, j < 4: four output rows of a
    2x downsampling from the 18 rows they read, each loaded once (4.5 loads an output, not 7)."""
    n = np.uint64(n)
    at = np.uint64(at)
    w = _twelve(weights)
    s0, s1, s2, s3, s4, s5 = _six_offsets(offsets, 0)
    s6, s7, s8, s9, s10, s11 = _six_offsets(offsets, 6)
    s12, s13, s14, s15, s16, s17 = _six_offsets(offsets, 12)
    for e in range(n):
        x = (src[s0 + e], src[s1 + e], src[s2 + e], src[s3 + e], src[s4 + e], src[s5 + e], src[s6 + e],
             src[s7 + e], src[s8 + e], src[s9 + e], src[s10 + e], src[s11 + e], src[s12 + e], src[s13 + e],
             src[s14 + e], src[s15 + e], src[s16 + e], src[s17 + e])
        v0 = _dot12(w, x[0:12])
        v1 = _dot12(w, x[2:14])
        v2 = _dot12(w, x[4:16])
        v3 = _dot12(w, x[6:18])
        d0[at + e] = d0[at + e] + v0 if add else v0
        d1[at + e] = d1[at + e] + v1 if add else v1
        d2[at + e] = d2[at + e] + v2 if add else v2
        d3[at + e] = d3[at + e] + v3 if add else v3


@njit_loop
def _down_ring(fd, down):
    """W-downsampled rows kept per term: what a group of OUTPUT_GROUP output rows reads."""
    return fd + down * (OUTPUT_GROUP - 1)


@njit_inline
def _mirrored_pairs(src, s, e):
    """The six sums of mirrored samples (k and 11 - k) at position e."""
    return (src[s[0] + e] + src[s[11] + e], src[s[1] + e] + src[s[10] + e], src[s[2] + e] + src[s[9] + e],
            src[s[3] + e] + src[s[8] + e], src[s[4] + e] + src[s[7] + e], src[s[5] + e] + src[s[6] + e])


@njit_inline
def _dot6(w, p):
    """One term's six taps times the mirrored sums."""
    return w[0] * p[0] + w[1] * p[1] + w[2] * p[2] + w[3] * p[3] + w[4] * p[4] + w[5] * p[5]


@njit_loop
def _down12_mirrored(dst, d0, stride, dummy, src, offsets, taps, n):
    """dst[d0 + r*stride + e] = sum_k taps[r, k] * src[offsets[k] + e] for every term r (2 to 4) of
    12 mirrored taps (taps[r, k] == taps[r, 11 - k]): the source read once for all terms."""
    n = np.uint64(n)
    terms = taps.shape[0]
    # Terms past the last one get zero taps and the dummy row; each term count has its own loop
    # (two terms writing the same row would make LLVM's overlap check fall back to scalar code).
    d = [np.uint64(d0 + r * stride if r < terms else dummy) for r in range(4)]
    w = [[taps[r, k] if r < terms else np.float32(0.0) for k in range(6)] for r in range(4)]
    da, db, dc, dd = d[0], d[1], d[2], d[3]
    wa = (w[0][0], w[0][1], w[0][2], w[0][3], w[0][4], w[0][5])
    wb = (w[1][0], w[1][1], w[1][2], w[1][3], w[1][4], w[1][5])
    wc = (w[2][0], w[2][1], w[2][2], w[2][3], w[2][4], w[2][5])
    wd = (w[3][0], w[3][1], w[3][2], w[3][3], w[3][4], w[3][5])
    s = (np.uint64(offsets[0]), np.uint64(offsets[1]), np.uint64(offsets[2]), np.uint64(offsets[3]),
         np.uint64(offsets[4]), np.uint64(offsets[5]), np.uint64(offsets[6]), np.uint64(offsets[7]),
         np.uint64(offsets[8]), np.uint64(offsets[9]), np.uint64(offsets[10]), np.uint64(offsets[11]))
    if terms == 2:
        for e in range(n):
            p = _mirrored_pairs(src, s, e)
            dst[da + e] = _dot6(wa, p)
            dst[db + e] = _dot6(wb, p)
        return
    if terms == 3:  # most of R's layers: the same loop without the fourth term's work
        for e in range(n):
            p = _mirrored_pairs(src, s, e)
            dst[da + e] = _dot6(wa, p)
            dst[db + e] = _dot6(wb, p)
            dst[dc + e] = _dot6(wc, p)
        return
    for e in range(n):
        p = _mirrored_pairs(src, s, e)
        dst[da + e] = _dot6(wa, p)
        dst[db + e] = _dot6(wb, p)
        dst[dc + e] = _dot6(wc, p)
        dst[dd + e] = _dot6(wd, p)


@njit_loop
def _bias_row(biased, src, bias, j_lo, j_count, in_w, c):
    """biased[j*c + ch] = src[(j_lo + j)*c + ch] + bias[ch]; zero for columns outside 0..in_w-1."""
    c = np.uint64(c)
    for j in range(j_count):
        col = j_lo + j
        at = np.uint64(j) * c
        if 0 <= col < in_w:
            frm = np.uint64(col) * c
            for ch in range(c):
                biased[at + ch] = src[frm + ch] + bias[ch]
        else:
            for ch in range(c):
                biased[at + ch] = 0.0


@njit_loop
def _interleave(dst, plane, q0, q1, ratio, planes_n, c):
    """Output columns q0..q1-1 of dst from the planes: q = q0 + ratio*n + b is plane b's n-th pixel."""
    c = np.uint64(c)
    for b in range(ratio):
        for n in range(planes_n):
            q = q0 + ratio * n + b
            if q < q1:
                at = np.uint64(q) * c
                frm = np.uint64(b * planes_n + n) * c
                for ch in range(c):
                    dst[at + ch] = plane[frm + ch]


@njit_loop
def _tile_geometry(width, up, down, fd, taps, base_span):
    """For a column tile of `width` outputs: (outputs per output plane, upsampled columns per
    phase plane, input columns read). base_span: how far apart the phases' first inputs are."""
    ratio = up // down
    planes_n = -(-width // ratio)
    # Upsampled columns s0 .. s0 + (width-1)*down + fd - 1, and what the planes' shifted reads reach.
    m_count = max(-(-((width - 1) * down + fd) // up), planes_n + (down * (ratio - 1) + fd - 1) // up)
    return planes_n, m_count, m_count + base_span + taps - 1


@njit_loop
def _filtered_lrelu_rows(x, more, bias, out, channels, in_h, in_w, o0, o1, x_top, more_top, up, down, tile,
                         q_begin, q_end,
                         w_base, w_weight, h_base, h_weight, down_w, down_h, mirrored_terms, slope, clamp,
                         biased, rings, ring_row, tmp, tmp2, downs, planes, offsets, weights, weights2,
                         w_offsets, w_weights):
    """Per column tile of output columns q_begin..q_end-1, stream output rows o0..o1-1, keeping the
    few upsampled input rows and
    filtered rows they need in ring buffers (each computed once per tile); the buffers come from
    Plan.scratch, sized for the widest tile.

    x [rows, in_w * channels] (input rows x_top..more_top-1), more (input rows more_top..), out
    [out_h, out_w * channels]: rows of
    channels-last pixels. tile: output columns per tile, a multiple of up // down.
    """
    c = channels
    ratio = up // down
    taps = w_weight.shape[1]
    terms, fd = down_w.shape
    up_ring = ring_row.shape[0]
    down_ring = _down_ring(fd, down)
    base_span = w_base.max() - w_base.min()
    for q0 in range(q_begin, q_end, tile):
        q1 = min(q0 + tile, q_end)
        # planes_n outputs per output plane b (q = q0 + ratio*n + b)
        planes_n, m_count, j_count = _tile_geometry(q1 - q0, up, down, fd, taps, base_span)
        s0 = down * q0  # a multiple of up: phase a of upsampled column s is (s - s0) % up
        j_lo = s0 // up + w_base.min()  # the first input column this tile reads
        row_len = up * m_count * c
        down_len = ratio * planes_n * c
        zero_row = up_ring * row_len  # ring slot up_ring: never written, stays zero
        for e in range(row_len):
            rings[zero_row + e] = 0.0
        ring_row[:] = -1
        t_next = down * o0
        o = o0
        while o < o1:
            # Four (or two) output rows at once where the shapes allow: they read 18 (14) rows, 12 each.
            group = 1
            if fd == 12 and down == 2:
                group = OUTPUT_GROUP if o + OUTPUT_GROUP - 1 < o1 else (2 if o + 1 < o1 else 1)
            last_t = down * (o + group - 1) + fd
            while t_next < last_t:
                t = t_next
                # Two upsampled rows at once where both are due: they read 6 of the same 7 ring rows,
                # and the ring rows come from L2, so one pass over 7 instead of two over 6.
                pair = taps == 6 and t + 1 < last_t
                a_t, m_t = t % up, t // up
                first = m_t + h_base[a_t]
                lo = first
                span = taps
                if pair:
                    first2 = (t + 1) // up + h_base[(t + 1) % up]
                    lo = min(first, first2)
                    span = max(first, first2) + taps - lo
                    pair = span <= 7
                    if not pair:
                        lo, span = first, taps
                for u in range(span):
                    i = lo + u
                    weights[u] = h_weight[a_t, i - first] if 0 <= i - first < taps else 0.0
                    if pair:
                        weights2[u] = h_weight[(t + 1) % up, i - first2] if 0 <= i - first2 < taps else 0.0
                    if i < 0 or i >= in_h:
                        offsets[u] = zero_row
                        continue
                    slot = i % up_ring
                    if ring_row[slot] != i:
                        # Input row i plus bias, zero beyond the image, upsampled along W.
                        src = x[i - x_top] if i < more_top else more[i - more_top]
                        _bias_row(biased, src, bias, j_lo, j_count, in_w, c)
                        for a in range(up):
                            for k in range(taps):
                                w_offsets[k] = (s0 // up + w_base[a] + k - j_lo) * c
                                w_weights[k] = w_weight[a, k]
                            _mac(rings, slot * row_len + a * m_count * c, biased, w_offsets, w_weights,
                                 taps, m_count * c, False)
                        ring_row[slot] = i
                    offsets[u] = slot * row_len
                # Upsample along H; leaky ReLU (its gain is in the weights) and clamp.
                if pair:
                    if span == 6:
                        offsets[6] = zero_row
                        weights[6] = 0.0
                        weights2[6] = 0.0
                    _mac7x2_lrelu(tmp, tmp2, rings, offsets, weights, weights2, row_len, slope, clamp)
                elif taps == 6:
                    _mac6_lrelu(tmp, rings, offsets, weights, row_len, slope, clamp)
                else:
                    _mac(tmp, 0, rings, offsets, weights, taps, row_len, False)
                    for e in range(np.uint64(row_len)):
                        v = tmp[e]
                        v = v * slope if v < 0.0 else v
                        tmp[e] = min(max(v, -clamp), clamp)
                # Downsample along W into output plane b: q = q0 + ratio*n + b reads s = down*q + k,
                # i.e. phase (down*b + k) % up, m = n + (down*b + k) // up.
                for row_t in range(t, t + 2 if pair else t + 1):
                    source = tmp2 if row_t != t else tmp
                    slot = row_t % down_ring
                    if mirrored_terms:
                        for b in range(ratio):
                            for k in range(fd):
                                shift = down * b + k
                                offsets[k] = ((shift % up) * m_count + shift // up) * c
                            _down12_mirrored(downs, slot * down_len + b * planes_n * c, down_ring * down_len,
                                         terms * down_ring * down_len, source, offsets, down_w, planes_n * c)
                        continue
                    for r in range(terms):
                        for b in range(ratio):
                            for k in range(fd):
                                shift = down * b + k
                                offsets[k] = ((shift % up) * m_count + shift // up) * c
                                weights[k] = down_w[r, k]
                            _mac(downs, (r * down_ring + slot) * down_len + b * planes_n * c, source, offsets, weights,
                                 fd, planes_n * c, False)
                t_next += 2 if pair else 1
            # Downsample along H, then back from planes to interleaved columns in the output row.
            if group > 1:
                for r in range(terms):  # one pass per separable term, summed
                    for k in range(fd + down * (group - 1)):
                        offsets[k] = (r * down_ring + (down * o + k) % down_ring) * down_len
                    for k in range(fd):
                        weights[k] = down_h[r, k]
                    if ratio == 1:  # one plane: already the output's layout
                        if group == 4:
                            _mac12_quad(out[o], out[o + 1], out[o + 2], out[o + 3], q0 * c, downs, offsets, weights,
                                        (q1 - q0) * c, r > 0)
                        else:
                            _mac12_pair(out[o], out[o + 1], q0 * c, downs, offsets, weights, (q1 - q0) * c, r > 0)
                    elif group == 4:
                        _mac12_quad(planes[0], planes[1], planes[2], planes[3], 0, downs, offsets, weights, down_len,
                                    r > 0)
                    else:
                        _mac12_pair(planes[0], planes[1], 0, downs, offsets, weights, down_len, r > 0)
                if ratio != 1:
                    for g in range(group):
                        _interleave(out[o + g], planes[g], q0, q1, ratio, planes_n, c)
                o += group
                continue
            count = 0
            for r in range(terms):
                for k in range(fd):
                    offsets[count] = (r * down_ring + (down * o + k) % down_ring) * down_len
                    weights[count] = down_h[r, k]
                    count += 1
            if ratio == 1:
                _mac(out[o], q0 * c, downs, offsets, weights, count, (q1 - q0) * c, False)
            else:
                _mac(planes[0], 0, downs, offsets, weights, count, down_len, False)
                _interleave(out[o], planes[0], q0, q1, ratio, planes_n, c)
            o += 1


# ---------------------------------------------------------------------------
# StyleGAN2: the FIR after a stride-2 transposed convolution, and the noise / lrelu / clamp epilogue.


class FirPlan:
    """A 2-D FIR (convolution, zero padding p0/p1 on both axes) as separable terms, for _fir_rows."""

    def __init__(self, fir, p0, p1):
        # down_terms splits the correlation form of a filter; FIR convolution flips it.
        self.along_w, self.along_h = down_terms(np.asarray(fir, np.float64), EXACT_RANK_TOLERANCE)
        self.p0, self.p1, self.taps = p0, p1, self.along_w.shape[1]
        self._scratch_key = None

    def run(self, y, out, scale, bias, workers=1):
        """out [H, W, C] = scale[c] * FIR(y [H1, W1, C]) + bias[c]; C-contiguous float32 arrays.
        workers: threads to split the output rows over, each with its own scratch."""
        if not (y.flags.c_contiguous and out.flags.c_contiguous):
            raise ValueError("the FIR kernel needs C-contiguous (channels-last) rows")
        c = y.shape[2]
        key = (y.shape[1], c)
        if self._scratch_key != key:
            self._scratch_key, self._scratch = key, {}
        parts = split(out.shape[0], workers)
        for worker in range(len(parts)):
            if worker not in self._scratch:
                row = (y.shape[1] + self.p0 + self.p1) * c
                terms_taps = self.taps * len(self.along_w)
                self._scratch[worker] = (
                    np.zeros(row, np.float32),  # one input row, zero-padded
                    np.zeros(len(self.along_w) * (self.taps + 1) * out.shape[1] * c, np.float32),
                    np.zeros(out.shape[1] * c, np.float32), np.zeros(terms_taps, np.int64),
                    np.zeros(terms_taps, np.float32))
        run_parallel([functools.partial(_fir_rows, y.reshape(y.shape[0], -1), out.reshape(out.shape[0], -1), c,
                                        self.p0, first, stop, self.along_w, self.along_h, scale, bias,
                                        *self._scratch[worker])
                      for worker, (first, stop) in enumerate(parts)])


@njit_loop
def _fir_rows(y, out, c, p0, o_begin, o_end, along_w, along_h, scale, bias, padded, filtered, row, offsets,
              weights):
    """Output rows o_begin..o_end-1, row by row: each input row zero-padded, filtered along W (one ring
    row per term and input row), then the output row is the H-filtered sum of the ring rows, times
    scale, plus bias."""
    terms, taps = along_w.shape
    in_h = y.shape[0]
    in_w = y.shape[1] // c
    out_w = out.shape[1] // c
    ring = taps + 1
    row_len = out_w * c
    done = o_begin - p0 - 1  # the last input row filtered into the ring
    uc = np.uint64(c)
    start = np.uint64(p0) * uc  # where each row's values go in `padded`; the margins stay zero
    for e in range(np.uint64(len(padded))):
        padded[e] = 0.0
    for o in range(o_begin, o_end):
        # Output row o reads padded rows o..o+taps-1, i.e. input rows o - p0 + k.
        last = min(o - p0 + taps - 1, in_h - 1)
        while done < last:
            done += 1
            if done < 0:
                continue
            src = y[done]
            for e in range(np.uint64(in_w) * uc):
                padded[start + e] = src[e]
            for r in range(terms):
                for k in range(taps):
                    offsets[k] = k * c
                    weights[k] = along_w[r, k]
                _mac(filtered, (r * ring + done % ring) * row_len, padded, offsets, weights, taps, row_len, False)
        count = 0
        for r in range(terms):
            for k in range(taps):
                i = o - p0 + k
                if 0 <= i < in_h:
                    offsets[count] = (r * ring + i % ring) * row_len
                    weights[count] = along_h[r, k]
                    count += 1
        _mac(row, 0, filtered, offsets, weights, count, row_len, False)
        dst = out[o]
        for q in range(out_w):
            at = np.uint64(q) * uc
            for ch in range(uc):
                dst[at + ch] = row[at + ch] * scale[ch] + bias[ch]


@njit_loop
def noise_lrelu_clamp(y, noise, gain, slope, clamp):
    """In place on y [H, W*C] (channels-last rows): add noise [H, W] * gain, leaky ReLU, clamp: one pass."""
    h_count = y.shape[0]
    w_count = noise.shape[1]
    c = np.uint64(y.shape[1] // w_count)
    for h in range(h_count):
        row = y[h]
        nrow = noise[h]
        for q in range(w_count):
            add = nrow[q] * gain
            at = np.uint64(q) * c
            for ch in range(c):
                v = row[at + ch] + add
                v = v * slope if v < 0.0 else v
                row[at + ch] = min(max(v, -clamp), clamp)
