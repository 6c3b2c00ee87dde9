"""StyleGAN2 fast inference path (batch 1, float32): the same pixels as the reference with the overhead removed.

What makes it fast, each measured against the reference path in bench/speed.py:
- Modulation goes wherever it is cheaper: into the (small) weight at high resolutions, into the
  input activations at low ones, where the fixed weight is kept packed in oneDNN's own layout
  (no weight reorder per frame). The demodulation coefficients come from a per-weight table of
  squared sums, prepared once, so no per-sample weight tensor is squared and summed per frame.
- Stride-1 3x3 convolutions with enough channels and pixels (64 px and up at 1024) run as
  Winograd's F(4x4, 3x3) (models/winograd.py): a quarter of the multiplies, the demodulation
  and bias applied as the outputs are written.
- Gains fold into the weight and bias (lrelu is positively homogeneous), the bias rides in the
  convolution, so the epilogue is noise add, lrelu and clamp, in place: one numba pass on large
  CPU tensors (models/cpu_kernels.py), else torch passes band by band, each band still in cache
  for the next of the three.
- The 2x upsampling FIR (carrying the scale and bias) runs as separable numba taps on large CPU
  tensors, else as one depthwise pass; the skip image is upsampled by one small strided
  transposed convolution: no zero-stuffed grids.
- Activations and the skip image stay channels-last between layers (oneDNN's preferred layout
  on CPU); the image is made contiguous once, at the end.

Anything the fast path does not cover (batch > 1, half precision, odd filters) goes through the
reference code, so results never depend on which path ran beyond float rounding.
"""

import functools
import math

import torch
import torch.nn.functional as F

from models import cpu_kernels, ops, upfirdn2d, winograd
from models.differentiable import needs_graph


def usable(x, w, module):
    """The fast path handles batch 1 in float32 with nothing to differentiate (it works in place);
    everything else takes the reference path."""
    if x.shape[0] != 1 or w.shape[0] != 1 or x.dtype != torch.float32:
        return False
    return not needs_graph(x, w, *module.parameters())


class _PreparedSlot:
    """Holds a module's prepared values; copies and pickles of the module start without them
    (oneDNN-packed tensors cannot be deep-copied, and they are cheap to rebuild)."""

    def __init__(self):
        self.key = None
        self.values = None

    def __deepcopy__(self, memo):
        return _PreparedSlot()

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.__init__()


def _prepared(module, make):
    """Per-module values derived from the weights only, rebuilt when a weight changes (load_state_dict)."""
    weight = module.weight
    key = (weight.data_ptr(), weight._version, weight.device, weight.dtype)
    slot = module.__dict__.get("_fast_prepared")
    if slot is None:
        slot = module.__dict__["_fast_prepared"] = _PreparedSlot()  # a plain attribute: not in state_dict
    if slot.key != key:
        slot.key, slot.values = key, make(module)
    return slot.values


def _filter_2d(f):
    """A prepared FIR filter as a 2-D kernel (separable 1-D taps become their outer product)."""
    return torch.outer(f, f) if f.ndim == 1 else f


def _layer_tables(layer):
    """Per-layer constants: squared weight sums per (out, in) pair (demodulation becomes one matvec),
    the weight in the layouts the convolutions want, and the FIR taps."""
    weight = layer.weight.detach().to(torch.float32)
    tables = {"weight_square_sums": weight.square().sum(dim=[2, 3]), "packed": {}}
    if layer.up == 2:
        # upfirdn2d convolves (flips the filter); conv2d correlates, so flip it once here.
        tables["fir"] = _filter_2d(layer.resample_filter.to(torch.float32)).flip([0, 1])
        tables["fir_plans"] = {}  # (p0, p1) -> cpu_kernels.FirPlan
        # conv_transpose2d's layout [in, out, kh, kw], the FIR's gain of 4 included
        tables["weight_up"] = (weight * 4).transpose(0, 1).contiguous(memory_format=torch.channels_last)
    else:
        tables["weight_cl"] = weight.contiguous(memory_format=torch.channels_last)
    return tables


def layer_usable(layer):
    """Which SynthesisLayers the fast path covers: lrelu, 2x up or none, square odd kernels, square filter."""
    kernel = layer.weight.shape[-1]
    if layer.activation != "lrelu" or layer.up not in (1, 2) or kernel % 2 == 0 or layer.weight.shape[-2] != kernel:
        return False
    fir = _filter_2d(layer.resample_filter)
    return layer.up == 1 or fir.shape[0] == fir.shape[1]


def synthesis_layer(layer, x, w, noise, gain=1):
    """One SynthesisLayer forward (modulated conv, noise, bias, lrelu, clamp) for batch 1, float32."""
    return layer_epilogue(layer, layer_before_noise(layer, x, w, gain), noise, gain)


def layer_before_noise(layer, x, w, gain=1):
    """A SynthesisLayer's modulated convolution with its bias (and gain), before noise and
    activation: a new tensor the epilogue may work on in place."""
    tables = _prepared(layer, _layer_tables)
    styles = layer.affine(w)[0]  # [in] (through __call__: hooks on affine still fire)
    total_gain = float(layer.act_gain * gain)
    # lrelu(a * v) = a * lrelu(v) for a > 0: the output gain moves into the demodulation, bias and noise.
    out_scale = (tables["weight_square_sums"] @ styles.square() + 1e-8).rsqrt() * total_gain  # [out]
    bias = layer.bias * total_gain
    out_channels, in_channels, kernel, _ = layer.weight.shape
    pad = kernel // 2
    # Scale whichever is smaller per frame: the weight, or the input activations (low resolutions).
    modulate_input = x[0].numel() < layer.weight.numel()

    if layer.up == 1 and winograd.worthwhile(x, out_channels, kernel):
        # Winograd (a quarter of the multiplies): the fixed weight's transform kept, the styles on
        # the input, at low resolutions; the small modulated weight transformed per frame at high ones.
        if modulate_input:
            x = x * styles.reshape(1, -1, 1, 1)
            transformed = tables.get("winograd")
            if transformed is None:
                transformed = tables["winograd"] = winograd.transform_weight(layer.weight)
        else:
            transformed = winograd.transform_weight(layer.weight * styles.reshape(1, -1, 1, 1))
        x = x.contiguous(memory_format=torch.channels_last)
        y = torch.empty([1, out_channels, *x.shape[2:]], memory_format=torch.channels_last)
        winograd.conv3x3_rows(x[0].detach().permute(1, 2, 0).numpy(), transformed, -pad, x.shape[2], pad,
                              y[0].permute(1, 2, 0).numpy(), out_scale.detach().numpy(), bias.detach().numpy(),
                              workers=torch.get_num_threads())
    elif layer.up == 1 and modulate_input:
        y = _fixed_conv(tables, x * styles.reshape(1, -1, 1, 1), pad, transposed=False)
        y = torch.addcmul(bias.reshape(1, -1, 1, 1), y, out_scale.reshape(1, -1, 1, 1))
    elif layer.up == 1:
        weight = layer.weight * (out_scale.reshape(-1, 1, 1, 1) * styles.reshape(1, -1, 1, 1))
        y = F.conv2d(x, weight, bias=bias, padding=pad)
    else:
        if modulate_input:
            y = _fixed_conv(tables, x * styles.reshape(1, -1, 1, 1), 0, transposed=True)
        else:
            # Modulation and demodulation both go into the transposed-conv weight [in, out, k, k].
            weight_up = tables["weight_up"] * (styles.reshape(-1, 1, 1, 1) * out_scale.reshape(1, -1, 1, 1))
            y = F.conv_transpose2d(x, weight_up, stride=2)
            out_scale = None
        y = _fir_after_up2(y, tables, kernel, pad, out_scale, bias)
    return y


def layer_epilogue(layer, y, noise, gain=1, keep_input=False):
    """Noise, lrelu and clamp on a layer's convolution output (layer_before_noise), in place;
    keep_input: into a new tensor, leaving y as it was (the block cache keeps it)."""
    total_gain = float(layer.act_gain * gain)
    limit = float(layer.conv_clamp * gain) if layer.conv_clamp is not None else None
    out = torch.empty_like(y) if keep_input else y
    if _fused_cpu(y) and noise is not None and noise.numel() == y.shape[2] * y.shape[3]:
        # One pass (numba): noise add, lrelu, clamp per value while it is in a register.
        if keep_input:
            out.copy_(y)
        noise_rows = noise.detach().reshape(y.shape[2], y.shape[3]).to(torch.float32).contiguous().numpy()
        rows = out[0].permute(1, 2, 0).reshape(y.shape[2], -1).numpy()
        clamp = math.inf if limit is None else limit
        cpu_kernels.run_parallel([functools.partial(cpu_kernels.noise_lrelu_clamp, rows[first:stop],
                                                    noise_rows[first:stop], total_gain, 0.2, clamp)
                                  for first, stop in cpu_kernels.split(y.shape[2], torch.get_num_threads())])
        return out
    # Three passes over a tensor of up to 134 MB (1024 px) cost three trips to memory; band by
    # band (about 1 MB each) the second and third pass find their band still in a CPU core's
    # cache. (A GPU would only pay more kernel launches: whole tensors there.)
    rows = y.shape[2]
    row_bytes = y[0, :, 0].numel() * y.element_size()
    banded = y.device.type == "cpu" and y.is_contiguous(memory_format=torch.channels_last)
    band = max(1, _BAND_BYTES // row_bytes) if banded else rows
    for top in range(0, rows, band):
        part = out[:, :, top:top + band] if band < rows else out
        if keep_input:
            part.copy_(y[:, :, top:top + band] if band < rows else y)
        if noise is not None:  # the gain rides in the add (no scaled copy of the noise image)
            part.add_(noise[..., top:top + band, :] if band < rows else noise, alpha=total_gain)
        F.leaky_relu_(part, 0.2)
        if limit is not None:
            part.clamp_(-limit, limit)
    return out


_BAND_BYTES = 1 << 20  # one band of the epilogue: well inside a core's L2 cache


def _fixed_conv(tables, x, pad, transposed):
    """The layer's fixed weight (modulation already in x) on x: a 3x3 conv with padding `pad`, or
    the stride-2 transposed conv. On CPU with oneDNN the weight is packed once per input shape in
    oneDNN's own layout, so the per-frame weight reorder that a plain conv2d pays is gone."""
    key = (tuple(x.shape), transposed)
    if key not in tables["packed"]:
        tables["packed"][key] = _pack(tables, x, pad, transposed)
    packed = tables["packed"][key]
    if packed is not None:
        if transposed:
            return torch.ops.mkldnn._convolution_transpose_pointwise(
                x, packed, None, [0, 0], [0, 0], [2, 2], [1, 1], 1, "none", [], "")
        return torch.ops.mkldnn._convolution_pointwise(x, packed, None, [pad, pad], [1, 1], [1, 1], 1, "none", [], "")
    if transposed:
        return F.conv_transpose2d(x, tables["weight_up"], stride=2)
    return F.conv2d(x, tables["weight_cl"], padding=pad)


def _pack(tables, x, pad, transposed):
    """The weight in oneDNN's layout for this input shape, or None where that is not to be had
    (no oneDNN, not on CPU, channels-first input, an op this torch build lacks): plain convs then."""
    if (x.device.type != "cpu" or not torch.backends.mkldnn.is_available()
            or not x.is_contiguous(memory_format=torch.channels_last)):
        return None
    try:
        if transposed:
            weight = tables["weight_up"]
            packed = torch.ops.mkldnn._reorder_convolution_transpose_weight(
                weight, [0, 0], [0, 0], [2, 2], [1, 1], 1, list(x.shape))
            expected = F.conv_transpose2d(x, weight, stride=2)
            got = torch.ops.mkldnn._convolution_transpose_pointwise(
                x, packed, None, [0, 0], [0, 0], [2, 2], [1, 1], 1, "none", [], "")
        else:
            weight = tables["weight_cl"]
            packed = torch._C._nn.mkldnn_reorder_conv2d_weight(
                weight.to_mkldnn(), [pad, pad], [1, 1], [1, 1], 1, list(x.shape))
            expected = F.conv2d(x, weight, padding=pad)
            got = torch.ops.mkldnn._convolution_pointwise(x, packed, None, [pad, pad], [1, 1], [1, 1], 1, "none", [], "")
    except (AttributeError, RuntimeError, NotImplementedError):
        return None
    # These are torch's private oneDNN entry points: use them only where they give the plain conv's
    # result (within float rounding of sums over thousands of terms, relative to the output's scale).
    scale = float(expected.abs().max())
    if got.shape != expected.shape or float((got - expected).abs().max()) > 1e-5 * scale + 1e-6:
        return None
    return packed


# Tensors smaller than this stay on the torch passes: there the numba loops save microseconds,
# and compiling them (2-3 s, once per install) would only delay the small embedded default
# model's first frame. Tests set it to 0 to run the loops on small networks.
FUSED_MIN_VALUES = 1 << 20


def _fused_cpu(y):
    """Whether the numba loops take this tensor: batch 1, float32, channels-last on a CPU, large."""
    return (cpu_kernels.available() and y.device.type == "cpu" and y.dtype == torch.float32 and y.shape[0] == 1
            and y.numel() >= FUSED_MIN_VALUES and y.is_contiguous(memory_format=torch.channels_last)
            and not torch.is_grad_enabled())


def _fir_after_up2(y, tables, kernel, pad, out_scale, bias):
    """The 2x FIR after a stride-2 transposed conv, with the per-channel output scale and the bias:
    on a CPU one numba pass of separable taps (4 + 4 per value instead of 16), else one
    channels-last depthwise convolution."""
    fir = tables["fir"]
    fw = fir.shape[-1]
    # Padding as conv2d_resample computes it for up=2 with this kernel and filter size.
    p0 = pad + (fw + 1) // 2 - (kernel - 1)
    p1 = pad + (fw - 2) // 2 - (kernel - 2)
    channels = y.shape[1]
    if _fused_cpu(y) and p0 >= 0 and p1 >= 0 and fir.shape[0] == fw:
        plan = tables["fir_plans"].get((p0, p1))
        if plan is None:
            plan = tables["fir_plans"][(p0, p1)] = cpu_kernels.FirPlan(fir.flip([0, 1]).cpu().numpy(), p0, p1)
        out_h, out_w = y.shape[2] + p0 + p1 - fw + 1, y.shape[3] + p0 + p1 - fw + 1
        out = torch.empty([1, channels, out_h, out_w], memory_format=torch.channels_last)
        scale = torch.ones(channels) if out_scale is None else out_scale.detach().to(torch.float32)
        plan.run(y[0].permute(1, 2, 0).numpy(), out[0].permute(1, 2, 0).numpy(),
                 scale.contiguous().numpy(), bias.detach().to(torch.float32).contiguous().numpy(),
                 workers=torch.get_num_threads())
        return out
    taps = fir.to(y.dtype).reshape(1, 1, fw, fw)
    if out_scale is not None:
        taps = taps * out_scale.reshape(-1, 1, 1, 1)
    taps = taps.expand(channels, 1, fw, fw).contiguous()
    if p0 != p1 or p0 < 0:
        y = F.pad(y, [p0, p1, p0, p1])
        p0 = 0
    return F.conv2d(y, taps, bias=bias, padding=p0, groups=channels)


def torgb(layer, x, w):
    """One ToRGBLayer forward (modulated 1x1 conv without demodulation, bias, clamp) for batch 1, float32."""
    styles = layer.affine(w)[0] * layer.weight_gain
    weight = layer.weight * styles.reshape(1, -1, 1, 1)
    if layer.weight.shape[-1] == 1:
        y = ops.conv1x1(x, weight, layer.bias)  # the same bits at any thread count
    else:
        y = F.conv2d(x, weight, bias=layer.bias, padding=layer.weight.shape[-1] // 2)
    if layer.conv_clamp is not None:
        y.clamp_(-float(layer.conv_clamp), float(layer.conv_clamp))
    return y  # channels-last like the image it is added to (image_step)


def upsample_image(img, f):
    """2x FIR upsampling of the skip image as one small transposed conv (no zero-stuffed grid); a
    channels-last image stays channels-last (oneDNN is fastest on it: 4.8 vs 8 ms at 1024 px)."""
    if f.ndim == 1:
        f = torch.outer(f, f)
    fh, fw = f.shape
    if fw % 2 or fh % 2:
        return upfirdn2d.upsample2d(img, f)
    channels = img.shape[1]
    # upfirdn2d pads f/2 before and f/2 - 1 after the zero-stuffed image and convolves; a transposed
    # conv with the filter x4 (for the zeros) and padding f/2 - 1 is the same sum. A dense
    # channel-diagonal weight keeps it on oneDNN's fast path (grouped transposed convs are not).
    kernel = torch.zeros([channels, channels, fh, fw], dtype=img.dtype, device=img.device)
    for c in range(channels):
        kernel[c, c] = f.flip([0, 1]) * 4
    return F.conv_transpose2d(img, kernel, stride=2, padding=(fh // 2 - 1, fw // 2 - 1))


def to_fast_layout(x):
    """Channels-last activations: oneDNN's convolutions are fastest on them."""
    return x.contiguous(memory_format=torch.channels_last)

