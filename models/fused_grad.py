"""Differentiable StyleGAN2 layers with hand-written backwards: one pass over the activations each way.

A projection or drag step differentiates the unfused modulation (ops.modulated_conv2d with
fused_modconv=False): scale the input channels by the styles, convolve with the shared weight,
demodulate, add noise and bias, leaky ReLU with its gain, clamp. Recorded op by op, autograd makes
about six passes over the activations forward and seven back, where a frame makes one or two
(docs/projection.md). Two Functions do it in one numba pass each way:

    StyleScale   y = x s                                   dx = dy s,  ds = sum_hw(dy x)
    Epilogue     y = clamp(lrelu(g (x d + noise + b)))     m = dy g lrelu'(y) [|y| < clamp],
                                                           dx = m d,   dd = sum_hw(m x)

Backward needs only x (the conv output, which no other op keeps) and y: lrelu keeps the sign,
so y > 0 tells the slope, and |y| < clamp is hardtanh's own mask (a clamped value is +-clamp).
Noise, bias and weight get no gradient (a projection differentiates w only; `applies` checks).
Both memory layouts run as they come (the Winograd convolutions give channels-last).
"""

import numpy as np
import torch

from models import ops, winograd
from models.cpu_kernels import available, njit_inline, njit_loop, run_parallel, split
from models.differentiable import needs_graph

# ----------------------------------------------------------------------------
# Loops over flat arrays. Channels-last ([N, P, C]) runs over pixels with channels innermost (the
# per-channel sums are then separate lanes); contiguous ([N, C, P]) runs over channels.
# Indices are unsigned (numba's wrap-around check of signed indices stops vectorisation).


@njit_inline
def _each_row(row, a, batch, channels, pixels, channels_last, begin, end):
    """row(a, n, i, C, P, channels_last) for the rows (or pixels) i in begin..end of every sample n;
    each kernel passes its own row function and arguments a, inlined into one loop nest each."""
    C, P = np.uint64(channels), np.uint64(pixels)
    for n in range(np.uint64(batch)):
        for i in range(np.uint64(begin), np.uint64(end)):
            row(a, n, i, C, P, channels_last)


@njit_inline
def _scale_row(a, n, i, C, P, channels_last):
    """y = x * s[n, c] along one row."""
    y, x, s = a
    if channels_last:
        base = (n * P + i) * C
        for c in range(C):
            y[base + c] = x[base + c] * s[n * C + c]
    else:
        base = (n * C + i) * P
        si = s[n * C + i]
        for p in range(P):
            y[base + p] = x[base + p] * si


@njit_loop
def _scale_forward(y, x, s, batch, channels, pixels, channels_last, begin, end):
    """y = x * s[n, c]: the rows (or pixels) begin..end of every sample."""
    _each_row(_scale_row, (y, x, s), batch, channels, pixels, channels_last, begin, end)


@njit_inline
def _epilogue_row(a, n, i, C, P, channels_last):
    """y = clamp(lrelu(gain (x d[n, c] + noise[n, p] + b[c]), slope), +-clamp) along one row."""
    y, x, d, noise, step, b, gain, slope, clamp = a
    if channels_last:
        base = (n * P + i) * C
        nv = noise[n * step + i]
        for c in range(C):
            v = (x[base + c] * d[n * C + c] + nv + b[c]) * gain
            v = v if v > 0 else v * slope
            y[base + c] = min(max(v, -clamp), clamp)
    else:
        base = (n * C + i) * P
        di, bi = d[n * C + i], b[i]
        for p in range(P):
            v = (x[base + p] * di + noise[n * step + p] + bi) * gain
            v = v if v > 0 else v * slope
            y[base + p] = min(max(v, -clamp), clamp)


@njit_loop
def _epilogue_forward(y, x, d, noise, noise_step, b, batch, channels, pixels, channels_last, gain, slope, clamp,
                      begin, end):
    """y = clamp(lrelu(gain (x d[n, c] + noise[n, p] + b[c]), slope), +-clamp)."""
    a = (y, x, d, noise, np.uint64(noise_step), b, gain, slope, clamp)
    _each_row(_epilogue_row, a, batch, channels, pixels, channels_last, begin, end)


@njit_inline
def _masked(g, y, gain, slope_gain, clamp):
    """The gradient through clamp(lrelu(gain v)) read from its output y: lrelu keeps the sign of v."""
    m = g * (gain if y > 0 else slope_gain)
    return m if (y < clamp) & (y > -clamp) else gain - gain  # a typed 0, whatever m is


@njit_inline
def _unmasked(g, y, gain, slope_gain, clamp):
    """StyleScale's gradient at one element: gy itself (same dtype, so the sums see the same products)."""
    return g


@njit_inline
def _backward_row(a, n, i, C, P, channels_last):
    """Both backwards along one row: m = upstream(gy, y, ...) per element; gx = m k[n, c] (if want_gx);
    gk[n, c] += sum of m x (float64 sums)."""
    gx, gk, gy, y, x, k, want_gx, upstream, gain, slope_gain, clamp = a
    if channels_last:
        base = (n * P + i) * C
        for c in range(C):
            m = upstream(gy[base + c], y[base + c], gain, slope_gain, clamp)
            if want_gx:
                gx[base + c] = m * k[n * C + c]
            gk[n * C + c] += m * x[base + c]
    else:
        base = (n * C + i) * P
        ki = k[n * C + i]
        a0 = a1 = a2 = a3 = 0.0
        p = np.uint64(0)
        u1, u2, u3, u4 = np.uint64(1), np.uint64(2), np.uint64(3), np.uint64(4)
        while p + u4 <= P:  # four running sums: no chain of dependent adds
            m0 = upstream(gy[base + p], y[base + p], gain, slope_gain, clamp)
            m1 = upstream(gy[base + p + u1], y[base + p + u1], gain, slope_gain, clamp)
            m2 = upstream(gy[base + p + u2], y[base + p + u2], gain, slope_gain, clamp)
            m3 = upstream(gy[base + p + u3], y[base + p + u3], gain, slope_gain, clamp)
            if want_gx:
                gx[base + p], gx[base + p + u1] = m0 * ki, m1 * ki
                gx[base + p + u2], gx[base + p + u3] = m2 * ki, m3 * ki
            a0 += m0 * x[base + p]
            a1 += m1 * x[base + p + u1]
            a2 += m2 * x[base + p + u2]
            a3 += m3 * x[base + p + u3]
            p += u4
        while p < P:
            m0 = upstream(gy[base + p], y[base + p], gain, slope_gain, clamp)
            if want_gx:
                gx[base + p] = m0 * ki
            a0 += m0 * x[base + p]
            p += u1
        gk[n * C + i] += (a0 + a1) + (a2 + a3)


@njit_loop
def _scale_backward(gx, gs, gy, x, s, batch, channels, pixels, channels_last, want_gx, begin, end):
    """gx = gy * s; gs[n, c] += sum of gy * x over the rows (pixels) begin..end (float64 sums)."""
    a = (gx, gs, gy, gy, x, s, want_gx, _unmasked, 1.0, 1.0, 1.0)
    _each_row(_backward_row, a, batch, channels, pixels, channels_last, begin, end)


@njit_loop
def _epilogue_backward(gx, gd, gy, y, x, d, batch, channels, pixels, channels_last, gain, slope_gain, clamp,
                       begin, end):
    """m = the gradient through clamp and lrelu; gx = m d; gd[n, c] += sum of m x (float64 sums)."""
    a = (gx, gd, gy, y, x, d, True, _masked, gain, slope_gain, clamp)
    _each_row(_backward_row, a, batch, channels, pixels, channels_last, begin, end)


# ----------------------------------------------------------------------------
# Tensor plumbing.


def _layout(x):
    """(x as a dense tensor, channels_last): contiguous stays, channels-last stays, anything else is copied."""
    if x.is_contiguous():
        return x, False
    if x.is_contiguous(memory_format=torch.channels_last):
        return x, True
    return x.contiguous(), False


def _flat(t):
    """The tensor's memory as a flat numpy array (dense tensors only)."""
    t = t.detach()
    if t.is_contiguous():
        return t.reshape(-1).numpy()
    return t.permute(0, 2, 3, 1).reshape(-1).numpy()  # channels-last: a view in memory order


def _same_layout(t, channels_last):
    return t.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def _run(loop, outer, *args):
    """Run loop(*args, begin, end) over `outer` rows split among torch's threads."""
    run_parallel([lambda b=b, e=e: loop(*args, b, e) for b, e in split(outer, torch.get_num_threads())])


def _with_sums(loop, outer, size, gx, *args):
    """Like _run for loop(gx, sums, *args, begin, end), each thread adding into its own float64 row of
    `size` sums; returns their total."""
    parts = split(outer, torch.get_num_threads())
    sums = np.zeros((len(parts), size), np.float64)
    run_parallel([lambda k=k, b=b, e=e: loop(gx, sums[k], *args, b, e) for k, (b, e) in enumerate(parts)])
    return sums.sum(axis=0)


class StyleScale(torch.autograd.Function):
    """x [N, C, H, W] times styles s [N, C] per channel."""

    @staticmethod
    def forward(ctx, x, s):
        x, channels_last = _layout(x)
        n, c, h, w = x.shape
        s = s.detach().to(x.dtype).contiguous()
        y = torch.empty_like(x)
        outer = h * w if channels_last else c
        _run(_scale_forward, outer, _flat(y), _flat(x), s.reshape(-1).numpy(), n, c, h * w, channels_last)
        ctx.save_for_backward(x, s)
        ctx.channels_last = channels_last
        return y

    @staticmethod
    def backward(ctx, gy):
        x, s = ctx.saved_tensors
        channels_last = ctx.channels_last
        n, c, h, w = x.shape
        gy = _same_layout(gy, channels_last)
        want_gx = ctx.needs_input_grad[0]
        gx = torch.empty_like(x) if want_gx else torch.empty([1], dtype=x.dtype)
        outer = h * w if channels_last else c
        gs = _with_sums(_scale_backward, outer, n * c, _flat(gx) if want_gx else gx.numpy(), _flat(gy), _flat(x),
                        s.reshape(-1).numpy(), n, c, h * w, channels_last, want_gx)
        gs = torch.from_numpy(gs).to(x.dtype).reshape(n, c)
        return (gx if want_gx else None), gs


class Epilogue(torch.autograd.Function):
    """clamp(lrelu(gain (x d + noise + bias))) of a conv output x [N, C, H, W], demodulation d [N, C]."""

    @staticmethod
    def forward(ctx, x, d, noise, bias, gain, slope, clamp):
        x, channels_last = _layout(x)
        n, c, h, w = x.shape
        scalar = np.float32 if x.dtype == torch.float32 else np.float64
        d = d.detach().to(x.dtype).contiguous()
        b = bias.detach().to(x.dtype).contiguous() if bias is not None else torch.zeros(c, dtype=x.dtype)
        if noise is None:
            noise_flat, step = np.zeros(h * w, scalar), 0
        else:
            noise = noise.detach().to(x.dtype).expand(-1 if noise.ndim == 4 else 1, 1, h, w)
            noise_flat, step = noise.reshape(noise.shape[0], h * w).contiguous().reshape(-1).numpy(), h * w
            if noise.shape[0] == 1:
                step = 0
        y = torch.empty_like(x)
        limit = np.inf if clamp is None else clamp
        outer = h * w if channels_last else c
        _run(_epilogue_forward, outer, _flat(y), _flat(x), d.reshape(-1).numpy(), noise_flat, step,
             b.numpy(), n, c, h * w, channels_last, scalar(gain), scalar(slope), scalar(limit))
        ctx.save_for_backward(x, d, y)
        ctx.constants = channels_last, scalar(gain), scalar(gain * slope), scalar(limit)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, d, y = ctx.saved_tensors
        channels_last, gain, slope_gain, limit = ctx.constants
        n, c, h, w = x.shape
        gy = _same_layout(gy, channels_last)
        gx = torch.empty_like(x)
        outer = h * w if channels_last else c
        gd = _with_sums(_epilogue_backward, outer, n * c, _flat(gx), _flat(gy), _flat(y), _flat(x),
                        d.reshape(-1).numpy(), n, c, h * w, channels_last, gain, slope_gain, limit)
        gd = torch.from_numpy(gd).to(x.dtype).reshape(n, c)
        return gx, gd, None, None, None, None, None


def style_scale(x, styles):
    """x * styles[:, :, None, None], differentiable to both in one pass each way."""
    return StyleScale.apply(x, styles)


def epilogue(x, dcoefs, noise=None, bias=None, gain=1.0, slope=0.2, clamp=None):
    """clamp(lrelu(gain (x dcoefs + noise + bias), slope)): differentiable to x and dcoefs (not noise, bias)."""
    return Epilogue.apply(x, dcoefs, noise, bias, float(gain), float(slope), clamp)


# ----------------------------------------------------------------------------
# The StyleGAN2 layer.

_SLOPES = {"lrelu": 0.2, "relu": 0.0, "linear": 1.0}
# Below this many output values a layer's tensors fit in cache and autograd's own ops cost no more
# than the Functions' Python plumbing (the default model's 8-32 px layers): those stay op by op.
MIN_ELEMENTS = 1 << 17


def applies(layer, x, w, noise):
    """Whether synthesis_layer computes this SynthesisLayer's differentiable, unfused pass: autograd records,
    numba runs, the layer's activation is piecewise linear, and nothing but x and w wants a gradient."""
    return (available() and needs_graph(x, w) and layer.activation in _SLOPES and x.ndim == 4
            and x.shape[0] * layer.out_channels * layer.resolution ** 2 >= MIN_ELEMENTS
            and x.dtype in (torch.float32, torch.float64) and x.device.type == "cpu"
            and not layer.weight.requires_grad and not layer.bias.requires_grad
            and (noise is None or not noise.requires_grad))


def synthesis_layer(layer, x, w, noise, gain=1):
    """models.stylegan2.SynthesisLayer.forward(..., fused_modconv=False) through StyleScale and Epilogue."""
    styles = layer.affine(w)
    weight = layer.weight.to(x.dtype)
    x = style_scale(x, styles.to(x.dtype))
    if layer.up == 1 and winograd.differentiable_worthwhile(x, weight, layer.padding):
        x = winograd.conv3x3_fixed(x, weight)
    else:
        x = ops.conv2d_resample(x, weight, f=layer.resample_filter, up=layer.up, padding=layer.padding,
                                flip_weight=layer.up == 1)
    # Demodulation: 1 / |W s| per output channel = rsqrt((W^2 summed over taps) @ s^2).
    dcoefs = (styles.to(x.dtype).square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()
    clamp = layer.conv_clamp * gain if layer.conv_clamp is not None else None
    return epilogue(x, dcoefs, noise, layer.bias, gain=layer.act_gain * gain, slope=_SLOPES[layer.activation],
                    clamp=clamp)


def torgb_applies(layer, x, w):
    """Whether torgb computes this ToRGBLayer's differentiable pass: batch 1, 1x1, fixed weight and bias."""
    return (needs_graph(x, w) and x.shape[0] == 1 and w.shape[0] == 1 and tuple(layer.weight.shape[2:]) == (1, 1)
            and x.dtype in (torch.float32, torch.float64) and not layer.weight.requires_grad
            and not layer.bias.requires_grad)


def torgb(layer, x, w):
    """models.stylegan2.ToRGBLayer.forward for batch 1 with the styles in the (3 x C) weight: one matrix
    product each way (and one for the weight's gradient) instead of scaling the C-channel activations."""
    styles = layer.affine(w) * layer.weight_gain
    weight = layer.weight.to(x.dtype) * styles.to(x.dtype).reshape(1, -1, 1, 1)
    x = ops.conv1x1(x, weight, layer.bias.to(x.dtype))
    return x if layer.conv_clamp is None else torch.nn.functional.hardtanh(x, -layer.conv_clamp, layer.conv_clamp)
