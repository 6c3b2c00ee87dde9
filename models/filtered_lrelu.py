"""StyleGAN3's filtered leaky ReLU: a zero-stuffing reference and a lean polyphase version."""

import torch
import torch.nn.functional as F

# Largest number of elements one channel chunk may hold on the temporary (upsampled) grid.
# Bounds the transient memory of the fast path (a few copies of 32 MB) whatever the resolution.
CHUNK_ELEMENTS = 1 << 23


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


def upsample_axis(x, f, up, pad0, pad1, gain, axis):
    """Upsample a channels-last [N, C, H, W] along axis 3 (W) or 2 (H) by `up` with the 1-D filter f.

    Returns, channels-last, at least the (n*up + pad0 + pad1 - len(f) + 1) samples NVIDIA's op keeps,
    starting at the same place; up to up-1 extra samples may follow (callers ignore them).
    """
    n, c = x.shape[:2]
    size_in = x.shape[axis]
    if f is None:
        f = torch.ones([1], dtype=torch.float32, device=x.device)
    size_out = size_in * up + pad0 + pad1 - f.numel() + 1
    phases = -(-size_out // up)
    taps, first = polyphase_taps(f.to(torch.float32) * gain, up, pad0)
    num_taps = taps.shape[1]
    # Zero-pad (or crop) so that phase sample j reads x[j + first .. j + first + num_taps - 1].
    lo = -first
    hi = (phases - 1 + first + num_taps - 1) - (size_in - 1)
    weight = taps.to(x.dtype).repeat(c, 1)  # [C*up, T]: output channel c*up + r = phase r of channel c
    # Depthwise convolutions run several times faster on channels-last tensors (oneDNN), and the
    # phase interleave is then one transposing copy of [.., C, up] blocks.
    if axis == 3:
        y = F.conv2d(F.pad(x, [lo, hi]), weight.view(c * up, 1, 1, num_taps), groups=c)
        h = y.shape[2]
        y = y.permute(0, 2, 3, 1).reshape(n, h, phases, c, up).transpose(3, 4)
        return y.reshape(n, h, phases * up, c).permute(0, 3, 1, 2)
    y = F.conv2d(F.pad(x, [0, 0, lo, hi]), weight.view(c * up, 1, num_taps, 1), groups=c)
    w = y.shape[3]
    y = y.permute(0, 2, 3, 1).reshape(n, phases, w, c, up).permute(0, 1, 4, 2, 3)
    return y.reshape(n, phases * up, w, c).permute(0, 3, 1, 2)


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
                        gain=2 ** 0.5, slope=0.2, clamp=None):
    """Same result as filtered_lrelu_reference, computing only the samples that are kept.

    Works channels-last inside and returns a channels-last tensor. Callers bound memory by
    giving it a few channels at a time (see channel_chunks).
    """
    n, c, in_h, in_w = x.shape
    out_w, out_h = output_size(in_w, in_h, fu, fd, up, down, padding)
    px0, px1, py0, py1 = padding
    y = torch.empty_like(x, memory_format=torch.channels_last)
    if b is not None:
        torch.add(x, b.to(x.dtype).view(1, -1, 1, 1), out=y)
    else:
        y.copy_(x)
    if fu is None and up == 1:
        y = F.pad(y, [px0, px1, py0, py1])
    elif fu is not None and fu.ndim == 2:
        # StyleGAN3 never upsamples with a 2-D filter; stay correct if someone does.
        y = upfirdn2d_reference(y, fu, up=up, padding=padding, gain=up ** 2)
    else:
        # A separable filter carries the gain `up`**2 as `up` on each axis.
        y = upsample_axis(y, fu, up, px0, px1, up, axis=3)
        y = upsample_axis(y, fu, up, py0, py1, up, axis=2)
    y = lrelu_clamp_(y, gain, slope, clamp)
    y = downsample(y, fd, down)
    return y[:, :, :out_h, :out_w]


def channel_chunks(num_channels, elements_per_channel, budget=None):
    """Slices over channels so that each chunk holds at most ~budget elements per temporary."""
    budget = CHUNK_ELEMENTS if budget is None else budget
    step = max(1, budget // max(1, elements_per_channel))
    return [slice(start, min(start + step, num_channels)) for start in range(0, num_channels, step)]


def filtered_lrelu(x, fu=None, fd=None, b=None, up=1, down=1, padding=(0, 0, 0, 0),
                   gain=2 ** 0.5, slope=0.2, clamp=None, reference=False):
    """NVIDIA's filtered_lrelu; reference=True uses the zero-stuffing definition."""
    if reference:
        return filtered_lrelu_reference(x, fu, fd, b, up, down, padding, gain, slope, clamp)
    n, c, in_h, in_w = x.shape
    tmp_w, tmp_h = temp_size(in_w, in_h, fu, up, padding)
    out_w, out_h = output_size(in_w, in_h, fu, fd, up, down, padding)
    chunks = channel_chunks(c, n * tmp_w * tmp_h)
    if len(chunks) == 1:
        return filtered_lrelu_fast(x, fu, fd, b, up, down, padding, gain, slope, clamp)
    out = torch.empty([n, c, out_h, out_w], dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    for part in chunks:
        bias = None if b is None else b[part]
        out[:, part] = filtered_lrelu_fast(x[:, part], fu, fd, bias, up, down, padding, gain, slope, clamp)
    return out
