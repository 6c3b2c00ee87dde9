"""3x3 convolutions on the CPU by Winograd's minimal filtering F(4x4, 3x3): a quarter of the multiplies.

A direct 3x3 convolution makes 9 multiply-adds per output and input channel. Winograd's
algorithm (Lavin & Gray 2016, "Fast Algorithms for Convolutional Neural Networks") cuts the
input into overlapping 6x6 tiles, each giving 4x4 outputs: the tiles and the weights are
transformed (B^T d B, G g G^T), multiplied element by element, which over the channels is 36
matrix products (tiles x in) @ (in x out), and transformed back (A^T M A): 36 multiply-adds per
16 outputs, 2.25 instead of 9. The matrix products run in oneDNN (ops.rows_times_weight); the
transforms are numba loops over channels-last rows.

Exact in exact arithmetic. In float32 the transforms add rounding: with the points chosen here
the error is about ten times a direct convolution's (~3e-5 on outputs of magnitude 10), far below
what anyone sees, and what the tests bound.
"""

import functools
from fractions import Fraction

import numpy as np
import torch

from models import cpu_kernels, ops
from models.cpu_kernels import njit_loop

TILE = 4  # outputs per tile side (m of F(m, 3))
# Interpolation points of the Toom-Cook construction (with infinity). 0, +-1, 1/2, -2 keep the
# transforms' entries small and their float32 error ~3x below the textbook 0, +-1, +-2.
POINTS = (0, 1, -1, Fraction(1, 2), -2)
# Transformed input values per band of tile rows (16 MB): bounded memory. 4 to 32 MB measured the same.
BAND_VALUES = 1 << 22
MIN_BAND_TILES = 512
# Below these the direct convolution is as fast (measured on 36 px and on 32 channels).
MIN_CHANNELS = 48
MIN_PIXELS = 64 * 64


def _solve_exact(rows, rhs):
    """x with rows @ x == rhs exactly (Fractions): Gauss-Jordan on a consistent, overdetermined system."""
    n = len(rows[0])
    system = [list(r) + [b] for r, b in zip(rows, rhs)]
    pivot_rows = []
    for col in range(n):
        pivot = next(i for i in range(len(system)) if i not in pivot_rows and system[i][col] != 0)
        pivot_rows.append(pivot)
        scale = system[pivot][col]
        system[pivot] = [v / scale for v in system[pivot]]
        for i in range(len(system)):
            if i != pivot and system[i][col] != 0:
                factor = system[i][col]
                system[i] = [a - factor * b for a, b in zip(system[i], system[pivot])]
    if any(system[i][n] != 0 for i in range(len(system)) if i not in pivot_rows):
        raise ValueError("inconsistent Winograd system")
    solution = [Fraction(0)] * n
    for col, i in enumerate(pivot_rows):
        solution[col] = system[i][n]
    return solution


def transforms(m=TILE, r=3, points=POINTS):
    """A^T [m, n], G [n, r], B^T [n, n] (n = m + r - 1) of F(m, r) by Toom-Cook interpolation at
    `points` and infinity, exact (Fractions): correlation(d, g) == A^T ((G g) * (B^T d)) for d of
    length n and g of length r.

    A^T evaluates the product polynomial's coefficients back from its values at the points; G
    evaluates the filter polynomial there (divided by the Lagrange denominators), and B^T is what
    makes the identity hold, solved for exactly.
    """
    n = m + r - 1
    points = [Fraction(p) for p in points]
    if len(points) != n - 1 or len(set(points)) != n - 1:
        raise ValueError(f"F({m}, {r}) needs {n - 1} distinct points")
    a_t = [[p ** i for p in points] + [Fraction(int(i == m - 1))] for i in range(m)]
    g = []
    for p in points:
        denominator = np.prod([p - q for q in points if q != p])
        g.append([p ** k / denominator for k in range(r)])
    g.append([Fraction(int(k == r - 1)) for k in range(r)])
    # sum_j A^T[i, j] G[j, k] B^T[j, s] == [s == i + k] for every i, k: one exact system per column s.
    rows = [[a_t[i][j] * g[j][k] for j in range(n)] for i in range(m) for k in range(r)]
    b_t = np.array([_solve_exact(rows, [Fraction(int(s == i + k)) for i in range(m) for k in range(r)])
                    for s in range(n)], dtype=object).T
    return np.array(a_t, dtype=object), np.array(g, dtype=object), b_t


_A_T, _G, _B_T = (np.asarray(t, dtype=np.float64).astype(np.float32) for t in transforms())


def available():
    """True when this path can run here (numba for the transforms)."""
    return cpu_kernels.available()


def warm_up():
    """Compile the transforms into numba's disk cache on a tiny convolution (see cpu_kernels.warm_up)."""
    if available():
        x = np.ones([6, 7, 3], np.float32)
        conv3x3_rows(x, transform_weight(torch.ones([2, 3, 3, 3])), -1, 6, 1, scale=np.ones(2), bias=np.zeros(2))


def transform_weight(weight):
    """[36, O, I] transformed weights (G g G^T per output and input channel) of weight [O, I, 3, 3]."""
    # (G g G^T)[a, b] = sum_pq G[a, p] G[b, q] g[p, q]: one matrix product with kron(G, G) [36, 9].
    g = torch.as_tensor(np.kron(_G, _G))
    flat = weight.detach().to(torch.float32).reshape(-1, 9)
    return torch.matmul(g, flat.T).reshape(len(g), *weight.shape[:2])


def worthwhile(x, out_channels, kernel):
    """Whether a convolution of x [N, I, H, W] to out_channels runs faster here than directly: a 3x3
    kernel, float32 on the CPU without autograd, and enough channels and pixels that the
    transforms (memory-bound) and the weights' transform do not outweigh the saved multiplies."""
    return (kernel == 3 and available() and x.dtype == torch.float32 and x.device.type == "cpu"
            and not torch.is_grad_enabled() and min(x.shape[1], out_channels) >= MIN_CHANNELS
            and x.shape[2] * x.shape[3] >= MIN_PIXELS)


def conv3x3_rows(x, u, row_offset, out_rows, pad_w, out=None, scale=None, bias=None, workers=1):
    """out [out_rows, Wo, O] (numpy, float32) = a 3x3 stride-1 correlation of x [H, W, I] with weights
    u [36, O, I] (transform_weight's), where output row o reads input rows row_offset + o + (0, 1, 2) and
    output column q reads input columns q - pad_w + (0, 1, 2), zero outside the input; Wo = W +
    2 pad_w - 2. x is a C-contiguous channels-last numpy array. scale, bias [O] (optional): each
    output channel times scale plus bias, applied as the values are written. workers: threads to
    split the transforms over (the matrix products use torch's own).
    """
    in_h, in_w, in_channels = x.shape
    out_channels = u.shape[1]
    out_w = in_w + 2 * pad_w - 2
    if out is None:
        out = np.empty([out_rows, out_w, out_channels], np.float32)
    n = len(_B_T)
    tiles_x = -(-out_w // TILE)
    tiles_y = -(-out_rows // TILE)
    # Bands of tile rows: the matrix products want a few hundred rows at least to run at speed.
    band = min(tiles_y, max(-(-MIN_BAND_TILES // tiles_x), BAND_VALUES // (n * n * tiles_x * in_channels)))
    v = np.empty([n * n, band * tiles_x * in_channels], np.float32)
    plane = (tiles_x + 1) * in_channels  # one phase of a padded row: columns 4 p + phase
    workers = max(1, min(workers, band))
    rows_in = [np.zeros([2 * n, TILE * plane], np.float32) for _ in range(workers)]
    q = [np.empty([n * TILE, tiles_x * out_channels], np.float32) for _ in range(workers)]
    scale = np.ones(out_channels, np.float32) if scale is None else np.ascontiguousarray(scale, np.float32)
    bias = np.zeros(out_channels, np.float32) if bias is None else np.ascontiguousarray(bias, np.float32)
    flat_x = x.reshape(in_h, in_w * in_channels)
    flat_out = out.reshape(out_rows, out_w * out_channels)
    for ty0 in range(0, tiles_y, band):
        count = min(band, tiles_y - ty0)
        parts = cpu_kernels.split(count, workers)
        cpu_kernels.run_parallel([functools.partial(_input_tiles, flat_x, in_channels, row_offset + TILE * ty0, pad_w,
                                                    first, stop, tiles_x, _B_T, v, rows_in[i])
                                  for i, (first, stop) in enumerate(parts)])
        tiles = count * tiles_x
        products = tuple(ops.rows_times_weight(torch.from_numpy(v[k, :tiles * in_channels]).view(tiles, in_channels),
                                               u[k]).numpy().reshape(-1) for k in range(n * n))
        cpu_kernels.run_parallel([functools.partial(_output_tiles, products, out_channels, flat_out, TILE * ty0,
                                                    first, stop, tiles_x, _A_T, q[i], scale, bias)
                                  for i, (first, stop) in enumerate(parts)])
    return out



def differentiable_worthwhile(x, weight, padding):
    """Whether conv3x3_fixed takes a padding-1 correlation of x [1, I, H, W] with weight [O, I, 3, 3] while
    autograd records: batch 1, float32 on the CPU, a weight nobody differentiates, enough channels and pixels."""
    return (available() and x.shape[0] == 1 and tuple(weight.shape[2:]) == (3, 3) and padding == 1
            and x.dtype == weight.dtype == torch.float32 and x.device.type == "cpu" and not weight.requires_grad
            and min(weight.shape[0], weight.shape[1]) >= MIN_CHANNELS and x.shape[2] * x.shape[3] >= MIN_PIXELS)


def _conv3x3_padded(x, weight):
    """The padding-1 correlation of x [1, I, H, W] with weight [O, I, 3, 3], channels-last out, no graph."""
    x = x.detach().contiguous(memory_format=torch.channels_last)
    y = torch.empty([1, weight.shape[0], *x.shape[2:]], memory_format=torch.channels_last)
    conv3x3_rows(x[0].permute(1, 2, 0).numpy(), transform_weight(weight), -1, x.shape[2], 1,
                 y[0].permute(1, 2, 0).numpy(), workers=torch.get_num_threads())
    return y


class _FixedConv3x3(torch.autograd.Function):
    """Winograd both ways: the gradient of a padding-1 correlation with respect to its input is the
    padding-1 correlation of the output gradient with the weight flipped and its in/out swapped."""

    @staticmethod
    def forward(ctx, x, weight):
        ctx.save_for_backward(weight)
        return _conv3x3_padded(x, weight)

    @staticmethod
    def backward(ctx, grad):
        (weight,) = ctx.saved_tensors
        return _conv3x3_padded(grad, weight.flip([2, 3]).transpose(0, 1)), None


def conv3x3_fixed(x, weight):
    """F.conv2d(x, weight, padding=1) that autograd follows to x (not to weight), by Winograd forward
    and backward; for what differentiable_worthwhile accepts (the projection's unfused modulation)."""
    return _FixedConv3x3.apply(x, weight)

# The transforms' loops below are written for F(4, 3) (6 points in, 4 out), over long runs of
# contiguous values so that they vectorise: rows are kept phase-planar (column 4 p + phase is
# element p of plane `phase`), so that each tap of a tile is a shifted run over all tiles at once.


@njit_loop
def _mix6(dst, d_offsets, s0, s1, s2, s3, s4, s5, s_offsets, coef, outputs, count):
    """dst[d_offsets[j] + e] = sum_k coef[j, k] * s_k[s_offsets[k] + e], k < 6, j < outputs (4 or 6):
    six sources (the same array or six), each read once per e for every output."""
    o0, o1, o2 = np.uint64(s_offsets[0]), np.uint64(s_offsets[1]), np.uint64(s_offsets[2])
    o3, o4, o5 = np.uint64(s_offsets[3]), np.uint64(s_offsets[4]), np.uint64(s_offsets[5])
    for j in range(outputs):
        d = np.uint64(d_offsets[j])
        c0, c1, c2, c3, c4, c5 = coef[j, 0], coef[j, 1], coef[j, 2], coef[j, 3], coef[j, 4], coef[j, 5]
        for e in range(np.uint64(count)):
            dst[d + e] = (c0 * s0[o0 + e] + c1 * s1[o1 + e] + c2 * s2[o2 + e]
                          + c3 * s3[o3 + e] + c4 * s4[o4 + e] + c5 * s5[o5 + e])


@njit_loop
def _input_tiles(x, c, row0, pad_w, ty_begin, ty_end, tiles_x, b_t, v, rows_in):
    """v[i*6 + j, t*c + ch] = (B^T d B)[i, j] of channel ch of tile t = ty * tiles_x + tx (tile rows
    ty_begin..ty_end-1 of the band), which reads input rows row0 + 4 ty + (0..5) and columns
    4 tx - pad_w + (0..5) (zero outside the input).

    Per tile row: the 6 input rows go zero-padded and phase-planar into rows_in[6:], are combined
    along H into rows_in[:6], and each of those along W into the tiles' 6 values."""
    in_h = x.shape[0]
    in_w = x.shape[1] // c
    plane = rows_in.shape[1] // 4
    flat = rows_in.reshape(-1)
    d_offsets = np.zeros(6, np.int64)
    s_offsets = np.zeros(6, np.int64)
    for ty in range(ty_begin, ty_end):
        for a in range(6):
            row = row0 + 4 * ty + a
            padded = rows_in[6 + a]
            padded[:] = 0.0
            if 0 <= row < in_h:
                src = x[row]
                for col in range(max(0, -pad_w), min(in_w, 4 * tiles_x + 2 - pad_w)):
                    at = np.uint64(((col + pad_w) % 4) * plane + ((col + pad_w) // 4) * c)
                    frm = np.uint64(col * c)
                    for ch in range(np.uint64(c)):
                        padded[at + ch] = src[frm + ch]
        for i in range(6):  # along H: whole padded rows at once
            d_offsets[i] = i * rows_in.shape[1]
            s_offsets[i] = (6 + i) * rows_in.shape[1]
        _mix6(flat, d_offsets, flat, flat, flat, flat, flat, flat, s_offsets, b_t, 6, rows_in.shape[1])
        for i in range(6):  # along W: column 4 tx + b is plane b % 4, element tx + b // 4
            for b in range(6):
                s_offsets[b] = i * rows_in.shape[1] + (b % 4) * plane + (b // 4) * c
            for j in range(6):
                d_offsets[j] = (i * 6 + j) * v.shape[1] + ty * tiles_x * c
            _mix6(v.reshape(-1), d_offsets, flat, flat, flat, flat, flat, flat, s_offsets, b_t, 6, tiles_x * c)


@njit_loop
def _output_tiles(products, c, out, out_row0, ty_begin, ty_end, tiles_x, a_t, q, scale, bias):
    """out rows out_row0 + 4 ty + i (tile rows ty_begin..ty_end-1 of the band), columns 4 tx + j =
    (A^T M A)[i, j] of the tiles' 36 products
    (products[a*6 + b][t*c + ch], t = ty * tiles_x + tx), times scale[ch] plus bias[ch]; what falls
    beyond the output is dropped.

    Per tile row: combined along W into q[a*4 + j] (runs over all tiles), then along H straight
    into the output rows."""
    out_h = out.shape[0]
    out_w = out.shape[1] // c
    width = tiles_x * c
    flat_q = q.reshape(-1)
    d_offsets = np.zeros(6, np.int64)
    s_offsets = np.zeros(6, np.int64)
    uc = np.uint64(c)
    for ty in range(ty_begin, ty_end):
        start = ty * width
        for a in range(6):
            for j in range(4):
                d_offsets[j] = (a * 4 + j) * width
            for b in range(6):
                s_offsets[b] = start
            p0, p1, p2 = products[a * 6], products[a * 6 + 1], products[a * 6 + 2]
            p3, p4, p5 = products[a * 6 + 3], products[a * 6 + 4], products[a * 6 + 5]
            _mix6(flat_q, d_offsets, p0, p1, p2, p3, p4, p5, s_offsets, a_t, 4, width)
        rows = min(4, out_h - (out_row0 + 4 * ty))
        for i in range(rows):
            dst = out[out_row0 + 4 * ty + i]
            c0, c1, c2, c3, c4, c5 = a_t[i, 0], a_t[i, 1], a_t[i, 2], a_t[i, 3], a_t[i, 4], a_t[i, 5]
            for j in range(4):
                for tx in range(tiles_x):
                    col = 4 * tx + j
                    if col >= out_w:
                        break
                    at = np.uint64(col) * uc
                    frm = np.uint64(tx) * uc
                    for ch in range(uc):
                        v = (c0 * q[j, frm + ch] + c1 * q[4 + j, frm + ch] + c2 * q[8 + j, frm + ch]
                             + c3 * q[12 + j, frm + ch] + c4 * q[16 + j, frm + ch] + c5 * q[20 + j, frm + ch])
                        dst[at + ch] = v * scale[ch] + bias[ch]
