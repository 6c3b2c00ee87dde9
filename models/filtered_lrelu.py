"""StyleGAN3's filtered leaky ReLU: a zero-stuffing reference and a lean polyphase version."""

import torch
import torch.nn.functional as F

# Values of the upsampled grid one band of output rows may hold in the fast path. Bounds its
# transient memory (a few copies of 32 MB) whatever the resolution and channel count.
BAND_ELEMENTS = 1 << 23


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


def temp_size(in_w, in_h, fu, up, padding):
    """(width, height) of the upsampled grid on which the nonlinearity runs."""
    px0, px1, py0, py1 = padding
    fu_w, fu_h = filter_size(fu)
    return in_w * up + px0 + px1 - fu_w + 1, in_h * up + py0 + py1 - fu_h + 1


def lrelu_clamp_(x, gain, slope, clamp):
    """In place: leaky ReLU, times gain, clamped to [-clamp, clamp] (bias_act's order)."""
    if slope != 1:
        F.leaky_relu_(x, slope)
    if gain != 1:
        x.mul_(gain)
    if clamp is not None:
        x.clamp_(-clamp, clamp)
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
    x = lrelu_clamp_(x, gain, slope, clamp)
    return upfirdn2d_reference(x, fd, down=down)


# ---------------------------------------------------------------------------
# Fast: polyphase upsampling and strided downsampling, never touching a stuffed zero.


def polyphase_taps(f, up, pad0):
    """Split a 1-D upsampling filter into its `up` phases.

    Output sample n = up*j + r of (zero-stuff by `up`, pad by pad0, convolve with f) equals
    sum_t taps[r, t] * x[j + first + t]. Returns (taps [up, T], first).
    """
    k = f.numel()
    g = f.flip(0)  # upfirdn2d convolves, i.e. correlates with the flipped filter
    first = -(pad0 // up)
    last = (k - 1 + up - 1 - pad0) // up
    t = torch.arange(last - first + 1, device=f.device)
    r = torch.arange(up, device=f.device)
    index = up * (first + t)[None, :] + pad0 - r[:, None]
    valid = (index >= 0) & (index < k)
    taps = torch.where(valid, g[index.clamp(0, k - 1)], torch.zeros((), dtype=g.dtype, device=g.device))
    return taps, first


def polyphase_conv(x, taps, axis):
    """Valid polyphase filtering of a channels-last [N, C, H, W] along axis 3 (W) or 2 (H).

    Phase sample j of phase r is sum_t taps[r, t] * x[j + t]; the result interleaves the phases
    (sample up*j + r), channels-last.
    """
    n, c = x.shape[:2]
    up, num_taps = taps.shape
    weight = taps.to(x.dtype).repeat(c, 1)  # [C*up, T]: output channel c*up + r = phase r of channel c
    # Depthwise convolutions run several times faster on channels-last tensors (oneDNN), and the
    # phase interleave is then one transposing copy of [.., C, up] blocks.
    if axis == 3:
        y = F.conv2d(x, weight.view(c * up, 1, 1, num_taps), groups=c)
        h, phases = y.shape[2:]
        y = y.permute(0, 2, 3, 1).reshape(n, h, phases, c, up).transpose(3, 4)
        return y.reshape(n, h, phases * up, c).permute(0, 3, 1, 2)
    y = F.conv2d(x, weight.view(c * up, 1, num_taps, 1), groups=c)
    phases, w = y.shape[2:]
    y = y.permute(0, 2, 3, 1).reshape(n, phases, w, c, up).permute(0, 1, 4, 2, 3)
    return y.reshape(n, phases * up, w, c).permute(0, 3, 1, 2)


def upsample_axis(x, f, up, pad0, pad1, gain, axis):
    """Upsample a channels-last [N, C, H, W] along axis 3 (W) or 2 (H) by `up` with the 1-D filter f.

    Returns, channels-last, at least the (n*up + pad0 + pad1 - len(f) + 1) samples NVIDIA's op keeps,
    starting at the same place; up to up-1 extra samples may follow (callers ignore them).
    """
    size_in = x.shape[axis]
    if f is None:
        f = torch.ones([1], dtype=torch.float32, device=x.device)
    size_out = size_in * up + pad0 + pad1 - f.numel() + 1
    phases = -(-size_out // up)
    taps, first = polyphase_taps(f.to(torch.float32) * gain, up, pad0)
    # Zero-pad (or crop) so that phase sample j reads x[j + first .. j + first + num_taps - 1].
    lo = -first
    hi = (phases - 1 + first + taps.shape[1] - 1) - (size_in - 1)
    x = F.pad(x, [lo, hi] if axis == 3 else [0, 0, lo, hi])
    return polyphase_conv(x, taps, axis)


def downsample(x, f, down):
    """FIR filter (1-D separable or 2-D) computing only every down-th output sample."""
    if f is None:
        return x[:, :, ::down, ::down] if down > 1 else x
    c = x.shape[1]
    f = f.to(x.dtype)
    if f.ndim == 1:
        k = f.numel()
        g = f.flip(0)
        x = F.conv2d(x, g.view(1, 1, 1, k).repeat(c, 1, 1, 1), stride=(1, down), groups=c)
        return F.conv2d(x, g.view(1, 1, k, 1).repeat(c, 1, 1, 1), stride=(down, 1), groups=c)
    g = f.flip([0, 1])
    return F.conv2d(x, g[None, None].repeat(c, 1, 1, 1), stride=down, groups=c)


def filtered_lrelu_fast(x, fu=None, fd=None, b=None, up=1, down=1, padding=(0, 0, 0, 0),
                        gain=2 ** 0.5, slope=0.2, clamp=None, band_elements=None, out=None):
    """Same result as filtered_lrelu_reference, computing only the samples that are kept.

    Works channels-last, all channels together (so depthwise filters vectorise over channels),
    one band of output rows at a time so that the upsampled grid of a band holds about
    band_elements (default BAND_ELEMENTS) values. Writes into `out` when given (saves a copy of
    the result), else returns a new channels-last tensor.
    """
    n, c, in_h, in_w = x.shape
    out_w, out_h = output_size(in_w, in_h, fu, fd, up, down, padding)
    if fu is not None and fu.ndim == 2:
        # StyleGAN3 never upsamples with a 2-D filter; stay correct (not lean) if someone does.
        y = x + b.to(x.dtype).view(1, -1, 1, 1) if b is not None else x.clone()
        y = lrelu_clamp_(upfirdn2d_reference(y, fu, up=up, padding=padding, gain=up ** 2), gain, slope, clamp)
        y = downsample(y, fd, down)[:, :, :out_h, :out_w].contiguous(memory_format=torch.channels_last)
        return y if out is None else out.copy_(y)
    tmp_w, _ = temp_size(in_w, in_h, fu, up, padding)
    fd_h = filter_size(fd)[1]
    budget = BAND_ELEMENTS if band_elements is None else band_elements
    tmp_rows = max(fd_h, budget // max(1, n * c * tmp_w))
    band = max(1, (tmp_rows - fd_h) // down + 1)
    if out is None:
        if band >= out_h:
            return filtered_band(x, 0, out_h, fu, fd, b, up, down, padding, gain, slope, clamp)[:, :, :, :out_w]
        out = torch.empty([n, c, out_h, out_w], dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    for top in range(0, out_h, band):
        bottom = min(top + band, out_h)
        out[:, :, top:bottom] = filtered_band(x, top, bottom, fu, fd, b, up, down, padding, gain, slope,
                                              clamp)[:, :, :, :out_w]
    return out


def biased(rows, b):
    """A channels-last copy of rows with the per-channel bias added."""
    y = torch.empty_like(rows, memory_format=torch.channels_last)
    if b is None:
        return y.copy_(rows)
    return torch.add(rows, b.to(rows.dtype).view(1, -1, 1, 1), out=y)


def filtered_band(x, top, bottom, fu, fd, b, up, down, padding, gain, slope, clamp):
    """Output rows top..bottom-1 of filtered_lrelu (maybe a few extra columns), channels-last.

    Reads only the input rows those outputs depend on. Along W the filters are depthwise
    convolutions; along H they are one matrix product over whole channels-last rows (dense band
    matrices waste some multiplies on zeros, yet beat depthwise convolutions several times on CPU).
    """
    px0, px1, py0, _ = padding
    n, c, in_h, _ = x.shape
    # The upsampled-grid rows [t0, t1) that the downsampling filter reads for these outputs.
    t0 = top * down
    t1 = (bottom - 1) * down + filter_size(fd)[1]
    if fu is None and up == 1:
        start, stop = t0 - py0, t1 - py0
        lo = min(max(start, 0), in_h)
        rows = x[:, :, lo: max(lo, min(stop, in_h))]
        y = biased(rows, b)
        # Zero rows beyond the input come after the bias, as in upfirdn2d's padding.
        y = F.pad(y, [px0, px1, max(0, min(stop, 0) - start), max(0, stop - max(start, in_h))])
    else:
        f = fu if fu is not None else torch.ones([1], device=x.device)
        up_rows, s0 = upsample_matrix(f, up, py0, t0, t1, in_h)
        if up_rows.shape[1] == 0:  # the band sees only padding: read one row, weigh it zero
            up_rows, s0 = up_rows.new_zeros([t1 - t0, 1]), min(s0, in_h - 1)
        rows = x[:, :, s0: s0 + up_rows.shape[1]]
        y = biased(rows, b)
        y = upsample_axis(y, fu, up, px0, px1, up, axis=3)
        width = y.shape[3]
        flat = y.permute(0, 2, 3, 1).reshape(n, y.shape[2], width * c)
        # Leaky ReLU commutes with a positive gain: fold the gain into the matrix (one pass less).
        y = torch.matmul((up_rows * gain).to(x.dtype), flat).view(n, t1 - t0, width, c).permute(0, 3, 1, 2)
        gain = 1
    y = lrelu_clamp_(y, gain, slope, clamp)
    if fd is None or fd.ndim == 2:
        return downsample(y, fd, down)
    k = fd.numel()
    y = F.conv2d(y, fd.flip(0).to(x.dtype).view(1, 1, 1, k).repeat(c, 1, 1, 1), stride=(1, down), groups=c)
    width = y.shape[3]
    flat = y.permute(0, 2, 3, 1).reshape(n, y.shape[2], width * c)
    down_rows = downsample_matrix(fd.flip(0).to(torch.float32), down, top, bottom).to(x.dtype)
    return torch.matmul(down_rows, flat).view(n, bottom - top, width, c).permute(0, 3, 1, 2)


def channel_chunks(num_channels, elements_per_channel, budget):
    """Slices over channels so that each chunk holds at most ~budget elements."""
    step = max(1, budget // max(1, elements_per_channel))
    return [slice(start, min(start + step, num_channels)) for start in range(0, num_channels, step)]


def filtered_lrelu(x, fu=None, fd=None, b=None, up=1, down=1, padding=(0, 0, 0, 0),
                   gain=2 ** 0.5, slope=0.2, clamp=None, reference=False):
    """NVIDIA's filtered_lrelu; reference=True uses the zero-stuffing definition."""
    if reference:
        return filtered_lrelu_reference(x, fu, fd, b, up, down, padding, gain, slope, clamp)
    return filtered_lrelu_fast(x, fu, fd, b, up, down, padding, gain, slope, clamp)


# ---------------------------------------------------------------------------
# Band matrices: filtering along H as one dense matrix product over whole channels-last rows.


def upsample_matrix(f, up, pad0, t0, t1, size_in):
    """Dense [t1-t0, s1-s0] matrix mapping inputs s0..s1-1 to upsampled samples t0..t1-1, and s0.

    Upsampled sample t = sum_k g[k] * stuffed[t + k - pad0] with g the flipped filter and gain `up`;
    input s sits at stuffed index up*s, so its coefficient is g[up*s + pad0 - t]. Inputs outside
    the signal are zeros and simply left out.
    """
    k = f.numel()
    s0 = max(0, -((pad0 - t0) // up))  # ceil((t0 - pad0) / up)
    s1 = min(size_in, (t1 - 1 + k - 1 - pad0) // up + 1)
    s1 = max(s1, s0)
    t = torch.arange(t0, t1, device=f.device)[:, None]
    s = torch.arange(s0, s1, device=f.device)[None, :]
    index = up * s + pad0 - t
    g = f.flip(0).to(torch.float32) * up
    valid = (index >= 0) & (index < k)
    return torch.where(valid, g[index.clamp(0, k - 1)], torch.zeros((), device=f.device)), s0


def downsample_matrix(taps, down, o0, o1):
    """Dense [o1-o0, span] matrix: output o = sum_k taps[k] * tmp[o*down + k], tmp from o0*down."""
    k = taps.numel()
    o = torch.arange(o0, o1, device=taps.device)[:, None]
    t = torch.arange(o0 * down, (o1 - 1) * down + k, device=taps.device)[None, :]
    index = t - o * down
    valid = (index >= 0) & (index < k)
    return torch.where(valid, taps[index.clamp(0, k - 1)], torch.zeros((), device=taps.device))
