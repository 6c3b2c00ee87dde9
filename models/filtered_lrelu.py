"""StyleGAN3's filtered leaky ReLU: a zero-stuffing reference and a lean polyphase version."""

import torch
import torch.nn.functional as F

from models.differentiable import needs_graph

# Values of the upsampled grid one tile of the fast path holds (all its channels): small enough
# that the passes over it (upsample along H, leaky ReLU, clamp, downsample along H) find it in
# the CPU's caches, large enough that the filters' overlap between tiles stays a small extra.
TILE_ELEMENTS = 1 << 20
# Upsampled / output rows per block of the row-filter matrix products (see up_block_matrix).
UP_BLOCK = 2
DOWN_BLOCK = 4


def filter_size(f):
    """(width, height) of a 1-D (separable) or 2-D filter; None is the 1x1 identity."""
    if f is None:
        return 1, 1
    return int(f.shape[-1]), int(f.shape[0])


def output_size(in_w, in_h, fu, fd, up, down, padding):
    """(width, height) of filtered_lrelu's result, as NVIDIA's op defines it."""
    px0, px1, py0, py1 = padding
    fu_w, fu_h = filter_size(fu)
    fd_w, fd_h = filter_size(fd)
    out_w = (in_w * up + px0 + px1 - (fu_w - 1) - (fd_w - 1) + (down - 1)) // down
    out_h = (in_h * up + py0 + py1 - (fu_h - 1) - (fd_h - 1) + (down - 1)) // down
    return out_w, out_h


def lrelu_clamp_(x, gain, slope, clamp):
    """In place: leaky ReLU, times gain, clamped to [-clamp, clamp] (bias_act's order)."""
    if slope != 1:
        F.leaky_relu_(x, slope)
    if gain != 1:
        x.mul_(gain)
    if clamp is not None:
        x.clamp_(-clamp, clamp)
    return x


def lrelu_clamp(x, gain, slope, clamp):
    """lrelu_clamp_ out of place, for a tensor autograd follows."""
    if slope != 1:
        x = F.leaky_relu(x, slope)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


# ---------------------------------------------------------------------------
# Reference: literally zero-stuff, pad, convolve, throw samples away.


def upfirdn2d_reference(x, f, up=1, down=1, padding=(0, 0, 0, 0), gain=1.0):
    """Upsample by zero insertion, pad/crop, FIR filter (true convolution), keep every down-th sample."""
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    n, c, h, w = x.shape
    px0, px1, py0, py1 = padding
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
    x = x.reshape(n, c, h * up, w * up)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    # A separable filter carries the gain half on each axis.
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype).flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = F.conv2d(x, f[None, None].repeat(c, 1, 1, 1), groups=c)
    else:
        x = F.conv2d(x, f.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
        x = F.conv2d(x, f.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    return x[:, :, ::down, ::down]


def filtered_lrelu_reference(x, fu=None, fd=None, b=None, up=1, down=1, padding=(0, 0, 0, 0),
                             gain=2 ** 0.5, slope=0.2, clamp=None):
    """bias -> upsample(fu) -> leaky ReLU * gain, clamp -> downsample(fd), the memory-hungry way."""
    if b is not None:
        x = x + b.to(x.dtype).view(1, -1, 1, 1)
    x = upfirdn2d_reference(x, fu, up=up, padding=padding, gain=up ** 2)
    x = (lrelu_clamp if needs_graph(x) else lrelu_clamp_)(x, gain, slope, clamp)
    return upfirdn2d_reference(x, fd, down=down)


# ---------------------------------------------------------------------------
# Fast: tiles of the output, polyphase filters, never touching a stuffed zero.
#
# For each output tile: add the bias to the input samples it depends on, upsample along W (one
# depthwise transposed convolution: it computes only the polyphase sums), upsample along H (a
# matrix product over whole channels-last rows), leaky ReLU and clamp in place, downsample along
# W (depthwise strided convolution) and along H (matrix product), or with a 2-D filter both at
# once (depthwise strided convolution). The upsampled tile stays in the CPU's caches between
# these passes; only the input and the output travel through memory.


def filtered_lrelu_fast(x, fu=None, fd=None, b=None, up=1, down=1, padding=(0, 0, 0, 0),
                        gain=2 ** 0.5, slope=0.2, clamp=None, tile_elements=None, out=None):
    """Same result as filtered_lrelu_reference, computing only the samples that are kept.

    Channels-last, one output tile at a time (its upsampled grid holds about tile_elements values,
    default TILE_ELEMENTS). Writes into `out` when given (any view of the right shape, e.g. a
    channel slice of a larger channels-last tensor), else returns a new channels-last tensor.
    """
    n, c, in_h, in_w = x.shape
    out_w, out_h = output_size(in_w, in_h, fu, fd, up, down, padding)
    if out is None:
        out = torch.empty([n, c, out_h, out_w], dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    if fu is not None and fu.ndim == 2:
        # StyleGAN3 never upsamples with a 2-D filter; stay correct (not lean) if someone does.
        y = x + b.to(x.dtype).view(1, -1, 1, 1) if b is not None else x.clone()
        y = lrelu_clamp_(upfirdn2d_reference(y, fu, up=up, padding=padding, gain=up ** 2), gain, slope, clamp)
        return out.copy_(upfirdn2d_reference(y, fd, down=down))
    if fu is None and fd is None and up == 1 and down == 1 and not any(padding):
        # ToRGB: bias, activation, clamp, nothing to filter.
        y = out.copy_(x) if b is None else torch.add(x, b.to(x.dtype).view(1, -1, 1, 1), out=out)
        return lrelu_clamp_(y, gain, slope, clamp)
    plan = TilePlan(x.shape, x.dtype, x.device, fu, fd, up, down, padding, gain, tile_elements)
    for rows in plan.row_tiles:
        plan.fill_rows(out, x, b, rows, slope, clamp)
    return out


class RowTile:
    """Output rows o0..o1-1 and how to get them: input rows i0..i1-1 (unclipped: outside is zero),
    the block matrices of the H-upsampling (up_matrix, up_blocks) and H-downsampling (down_blocks)."""

    def __init__(self, o0, o1, i0, i1, up_matrix, up_blocks, tmp_rows, down_blocks):
        self.o0, self.o1, self.i0, self.i1 = o0, o1, i0, i1
        self.up_matrix, self.up_blocks, self.tmp_rows, self.down_blocks = up_matrix, up_blocks, tmp_rows, down_blocks


class ColTile:
    """Output columns o0..o1-1: input columns i0..i1-1 (unclipped), the symmetric crop `crop` of the
    transposed convolution and the number of leading outputs `skip` of the W-downsampling to drop."""

    def __init__(self, o0, o1, i0, i1, crop, skip):
        self.o0, self.o1, self.i0, self.i1, self.crop, self.skip = o0, o1, i0, i1, crop, skip


class TilePlan:
    """Filters as per-channel weights and block matrices, and the tiling of one filtered_lrelu call."""

    def __init__(self, shape, dtype, device, fu, fd, up, down, padding, gain, tile_elements=None):
        n, c, in_h, in_w = shape
        px0, _, py0, _ = padding
        tile_elements = tile_elements or TILE_ELEMENTS
        self.c, self.up, self.down, self.in_h, self.in_w = c, up, down, in_h, in_w
        out_w, out_h = output_size(in_w, in_h, fu, fd, up, down, padding)
        # A missing filter is a single tap; the reference's separable gain is `up` per axis.
        fu = torch.ones([1], device=device) if fu is None else fu
        fu = fu.to(device, torch.float32) * up
        self.radial = fd is not None and fd.ndim == 2
        fd = torch.ones([1], device=device) if fd is None else fd.to(device, torch.float32)
        self.fd_size = int(fd.shape[-1])
        # Leaky ReLU commutes with a positive gain: it rides in the H-upsampling matrices.
        self.fu_h = fu * gain
        self.py0 = py0
        self.up_w_weight = fu.to(dtype).view(1, 1, 1, -1).repeat(c, 1, 1, 1)
        if self.radial:
            self.down_weight = fd.flip([0, 1]).to(dtype)[None, None].repeat(c, 1, 1, 1)
        else:
            g = fd.flip(0)  # upfirdn2d convolves: correlate with the flipped filter
            self.down_matrix = down_block_matrix(g, down, DOWN_BLOCK).to(dtype)
            self.down_weight = g.to(dtype).view(1, 1, 1, -1).repeat(c, 1, 1, 1)
        # Square tiles on the upsampled grid, sized to tile_elements, as even as the image allows.
        side = max(1, int((tile_elements / max(1, n * c)) ** 0.5))
        per_tile = max(1, (side - self.fd_size) // down + 1)
        self.row_tiles = [self.row_tile(o0, o1) for o0, o1 in even_splits(out_h, per_tile)]
        self.col_tiles = [col_tile(o0, o1, fu.numel(), up, px0, self.fd_size, down)
                          for o0, o1 in even_splits(out_w, per_tile)]

    def row_tile(self, o0, o1):
        """Output rows o0..o1-1: the upsampled rows they read, in whole blocks, and their input rows."""
        down, up = self.down, self.up
        if self.radial:
            down_blocks = None
            tmp_rows = (o1 - o0 - 1) * down + self.fd_size
        else:
            down_blocks = -(-(o1 - o0) // DOWN_BLOCK)
            tmp_rows = (down_blocks * DOWN_BLOCK - 1) * down + self.fd_size
        up_matrix, i0 = up_block_matrix(self.fu_h, up, self.py0, o0 * down, UP_BLOCK)
        up_blocks = -(-tmp_rows // (up * UP_BLOCK))
        i1 = i0 + (up_blocks - 1) * UP_BLOCK + up_matrix.shape[1]
        return RowTile(o0, o1, i0, i1, up_matrix.to(self.up_w_weight.dtype), up_blocks, tmp_rows, down_blocks)

    def input_rows(self, rows):
        """The input rows [start, stop) that output rows `rows` read (clipped to the input)."""
        return max(rows.i0, 0), max(min(rows.i1, self.in_h), max(rows.i0, 0))

    def fill_rows(self, out, x, b, rows, slope, clamp, x_top=0):
        """Write output rows `rows` (a RowTile of this plan) into `out`, all column tiles.

        x holds full-width input rows from x_top on (the whole input when x_top is 0), at least
        the rows rows.i0..rows.i1-1 that exist; of its channels, the first out.shape[1] are kept.
        """
        bias = None if b is None else b.to(x.dtype).view(1, -1, 1, 1)
        channels = out.shape[1]  # x may carry extra (zero) channels that `out` leaves out
        for cols in self.col_tiles:
            tile = self.tile(x, bias, rows, cols, slope, clamp, x_top)
            out[:, :, rows.o0:rows.o1, cols.o0:cols.o1] = tile[:, :channels]

    def tile(self, x, bias, rows, cols, slope, clamp, x_top=0):
        """The output tile rows x cols, channels-last (a few extra columns at both ends may be left
        over from the strided W-downsampling; the caller's slice drops them)."""
        n, c = x.shape[:2]
        in_h, in_w = self.in_h, self.in_w
        up, down = self.up, self.down
        # Input samples with the bias; zeros (not bias) beyond the input, as upfirdn2d pads.
        y = x[:, :, max(rows.i0, 0) - x_top:min(rows.i1, in_h) - x_top, max(cols.i0, 0):min(cols.i1, in_w)]
        y = y + bias if bias is not None else y.contiguous(memory_format=torch.channels_last)
        if rows.i0 < 0 or rows.i1 > in_h or cols.i0 < 0 or cols.i1 > in_w:
            y = F.pad(y, [max(0, -cols.i0), max(0, cols.i1 - in_w), max(0, -rows.i0), max(0, rows.i1 - in_h)])
        y = F.conv_transpose2d(y.contiguous(memory_format=torch.channels_last), self.up_w_weight,
                               stride=(1, up), padding=(0, cols.crop), groups=c)
        width = y.shape[3]
        # Whole channels-last rows [n, rows, width * c]: filtering along H is a matrix product.
        flat = y.permute(0, 2, 3, 1).reshape(n, y.shape[2], width * c)
        tmp = self.upsampled_rows(flat, rows, slope, clamp)
        if self.radial:
            tmp = tmp.view(n, rows.tmp_rows, width, c).permute(0, 3, 1, 2)
            z = F.conv2d(tmp, self.down_weight, stride=down, groups=c)
        else:
            # Along W first (a strided depthwise convolution halves the width), then along H on the
            # narrower rows: fewer multiplies in the matrix product than the other order.
            z = F.conv2d(tmp.view(n, rows.tmp_rows, width, c).permute(0, 3, 1, 2), self.down_weight,
                         stride=(1, down), groups=c)
            width = z.shape[3]
            flat = z.permute(0, 2, 3, 1).reshape(n, rows.tmp_rows, width * c)
            span = self.down_matrix.shape[1]
            blocks = flat.as_strided((n, rows.down_blocks, span, width * c),
                                     (flat.stride(0), DOWN_BLOCK * down * width * c, width * c, 1))
            z = torch.matmul(self.down_matrix, blocks).view(n, -1, width, c).permute(0, 3, 1, 2)
        return z[:, :, :rows.o1 - rows.o0, cols.skip:cols.skip + cols.o1 - cols.o0]

    def upsampled_rows(self, flat, rows, slope, clamp):
        """Rows [n, rows, width * c] upsampled along H, leaky ReLU'd and clamped: [n, tmp_rows, width * c].

        One matrix product per block of upsampled rows, the blocks reading overlapping windows of
        the same input rows (a strided view, no copy).
        """
        n, _, size = flat.shape
        window = rows.up_matrix.shape[1]
        blocks = flat.as_strided((n, rows.up_blocks, window, size), (flat.stride(0), UP_BLOCK * size, size, 1))
        tmp = torch.matmul(rows.up_matrix, blocks).view(n, -1, size)[:, :rows.tmp_rows]
        if slope != 1:
            F.leaky_relu_(tmp, slope)
        if clamp is not None:
            tmp.clamp_(-clamp, clamp)
        return tmp


def even_splits(length, most):
    """[start, stop) pieces covering range(length), at most `most` long, as equal as possible."""
    count = -(-length // most)
    bounds = [length * i // count for i in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def col_tile(o0, o1, up_taps, up, pad0, fd_size, down):
    """Where output columns o0..o1-1 come from along W (see ColTile).

    Upsampled column s (0 = the first NVIDIA's op keeps) is sum_k fu[k] * stuffed[s + K-1-pad0-k],
    input i sitting at stuffed index up*i. A transposed convolution of inputs i0..i1-1 gives, at
    its full output index m, upsampled column s = m - (K-1-pad0) + up*i0.
    """
    s0, s1 = o0 * down, (o1 - 1) * down + fd_size  # upsampled columns the outputs read
    i0 = -((pad0 - s0) // up)  # the first input any of them sees: ceil((s0 - pad0) / up)
    i1 = (s1 - 1 + up_taps - 1 - pad0) // up + 1
    first = s0 + up_taps - 1 - pad0 - up * i0  # full-output index of column s0
    while True:
        tail = (i1 - i0 - 1) * up + up_taps - first - (s1 - s0)
        # Crop as much as both ends allow, keeping column s0 on the downsampling's stride.
        crop = first - down * -(-(first - min(first, tail)) // down)
        if crop >= 0:
            return ColTile(o0, o1, i0, i1, crop, (first - crop) // down)
        i1 += 1  # one more (zero) input at the end widens the tail


def up_block_matrix(f, up, pad0, t0, block):
    """Upsampled rows t0..t0+up*block-1 from a window of input rows: (matrix [up*block, window], first row).

    Upsampled row t = sum_k f[k] * stuffed[t + K-1-pad0-k] with input i at stuffed index up*i, so
    input i weighs f[t + K-1-pad0 - up*i]. The next block of up*block rows reads the window `block`
    input rows further with the same matrix.
    """
    k = f.numel()
    first = -((pad0 - t0) // up)  # ceil((t0 - pad0) / up)
    last = (t0 + up * block - 1 + k - 1 - pad0) // up
    t = torch.arange(t0, t0 + up * block, device=f.device)[:, None]
    i = torch.arange(first, last + 1, device=f.device)[None, :]
    index = t + k - 1 - pad0 - up * i
    valid = (index >= 0) & (index < k)
    return torch.where(valid, f[index.clamp(0, k - 1)], torch.zeros((), device=f.device)), first


def down_block_matrix(taps, down, block):
    """[block, span] matrix: output o = sum_k taps[k] * tmp[o*down + k] for o in 0..block-1."""
    k = taps.numel()
    o = torch.arange(block, device=taps.device)[:, None]
    t = torch.arange((block - 1) * down + k, device=taps.device)[None, :]
    index = t - o * down
    valid = (index >= 0) & (index < k)
    return torch.where(valid, taps[index.clamp(0, k - 1)], torch.zeros((), device=taps.device))


def filtered_lrelu(x, fu=None, fd=None, b=None, up=1, down=1, padding=(0, 0, 0, 0),
                   gain=2 ** 0.5, slope=0.2, clamp=None, reference=False):
    """NVIDIA's filtered_lrelu; reference=True uses the zero-stuffing definition."""
    if reference:
        return filtered_lrelu_reference(x, fu, fd, b, up, down, padding, gain, slope, clamp)
    return filtered_lrelu_fast(x, fu, fd, b, up, down, padding, gain, slope, clamp)
