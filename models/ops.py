"""Shared generator math in plain PyTorch: bias+activation, convolution with FIR resampling (upfirdn2d.py), modulated conv, FC layers."""

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F

from models import upfirdn2d
from models.differentiable import needs_graph


def _onednn_linear():
    """torch's oneDNN matrix product on plain tensors, or None where this build lacks it."""
    try:
        op = torch.ops.mkldnn._linear_pointwise
        op(torch.ones(2, 2), torch.ones(2, 2), None, "none", [], "")
        return op
    except (AttributeError, RuntimeError):
        return None


_ONEDNN_LINEAR = _onednn_linear() if torch.backends.mkldnn.is_available() else None


def rows_times_weight(rows, weight):
    """rows [M, K] @ weight [N, K]^T -> [M, N] in float32 on the CPU, without autograd.

    torch.matmul goes to MKL, whose sgemm runs ~85 GFLOP/s on this AMD CPU (its AVX2 path);
    oneDNN's matmul, the library behind torch's convolutions, runs ~200 there and is used when
    torch has it (a private op: anything else falls back to F.linear).
    """
    if (_ONEDNN_LINEAR is not None and rows.dtype == torch.float32 and rows.device.type == "cpu"
            and not needs_graph(rows, weight)):
        return _ONEDNN_LINEAR(rows.contiguous(), weight.contiguous(), None, "none", [], "")
    return F.linear(rows, weight)


def conv1x1(x, weight, bias=None):
    """A 1x1 convolution (x [N, C, H, W], weight [O, C, 1, 1]) as one matrix product.

    oneDNN's convolution sums the C products in another order on one thread than on several
    (a ToRGB's pixels moved by 1/255 between 1 and 2 threads), so a frame would depend on the
    machine's core count; the matrix product gives the same bits at any thread count. A
    channels-last x stays channels-last (no copy either way).
    """
    n, c, h, w = x.shape
    matrix = weight.reshape(weight.shape[0], c)
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        pixels = x.permute(0, 2, 3, 1).reshape(-1, c)
        y = pixels @ matrix.t() if bias is None else torch.addmm(bias, pixels, matrix.t())
        return y.reshape(n, h, w, -1).permute(0, 3, 1, 2)
    y = torch.matmul(matrix, x.reshape(n, c, h * w))
    if bias is not None:
        y = y + bias.reshape(1, -1, 1)
    return y.reshape(n, -1, h, w)


# ----------------------------------------------------------------------------
# Activations: name -> (function(x, alpha), default alpha, default gain).
# The gains keep the signal's second moment unchanged for a unit-Gaussian input.

ACTIVATIONS = {
    "linear": (lambda x, alpha: x, 0.0, 1.0),
    "relu": (lambda x, alpha: F.relu(x), 0.0, math.sqrt(2)),
    "lrelu": (lambda x, alpha: F.leaky_relu(x, alpha), 0.2, math.sqrt(2)),
    "tanh": (lambda x, alpha: torch.tanh(x), 0.0, 1.0),
    "sigmoid": (lambda x, alpha: torch.sigmoid(x), 0.0, 1.0),
    "elu": (lambda x, alpha: F.elu(x), 0.0, 1.0),
    "selu": (lambda x, alpha: F.selu(x), 0.0, 1.0),
    "softplus": (lambda x, alpha: F.softplus(x), 0.0, 1.0),
    "swish": (lambda x, alpha: torch.sigmoid(x) * x, 0.0, math.sqrt(2)),
}


def activation_gain(act):
    """The default output gain of an activation (sqrt(2) for relu/lrelu/swish, else 1)."""
    return ACTIVATIONS[act][2]


def bias_act(x, b=None, dim=1, act="linear", alpha=None, gain=None, clamp=None):
    """Add bias b along `dim`, apply activation `act`, scale by `gain`, clamp to +-clamp (None = no clamp)."""
    func, default_alpha, default_gain = ACTIVATIONS[act]
    alpha = float(default_alpha if alpha is None else alpha)
    gain = float(default_gain if gain is None else gain)
    if b is not None and gain > 0 and act in ("linear", "relu", "lrelu"):
        # act(g (x + b)) = g act(x + b) for g > 0: one pass scales and adds the bias (and one less
        # in the backward of a differentiable pass).
        x = func(torch.add(b.reshape([-1 if i == dim else 1 for i in range(x.ndim)]) * gain, x, alpha=gain), alpha)
        gain = 1.0
    elif b is not None:
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
        x = func(x, alpha)
    else:
        x = func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        # The same values as clamp(), but one fused pass in the backward instead of four.
        x = F.hardtanh(x, -clamp, clamp)
    return x


def normalize_2nd_moment(x, dim=1, eps=1e-8):
    """Scale x to unit mean square along `dim`."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


# ----------------------------------------------------------------------------
# Convolution with resampling.


def _conv2d(x, w, stride=1, padding=0, groups=1, transpose=False, flip_weight=True):
    """conv2d / conv_transpose2d; flip_weight=False flips the kernel (true convolution)."""
    kh, kw = w.shape[2], w.shape[3]
    if not flip_weight and (kw > 1 or kh > 1):
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(x, w, f=None, up=1, down=1, padding=0, groups=1, flip_weight=True, flip_filter=False):
    """2-D convolution with optional FIR upsampling (before) and downsampling (after), done the cheap way."""
    out_channels, in_channels_per_group, kh, kw = w.shape
    fw, fh = upfirdn2d.filter_size(f)
    px0, px1, py0, py1 = upfirdn2d.padding4(padding)

    # Extra padding that keeps the resampled image centred.
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    # 1x1 kernel: resample on the side with fewer channels.
    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d.upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv2d(x, w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv2d(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d.upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up ** 2, flip_filter=flip_filter)

    # Downsampling only: filter, then strided convolution.
    if down > 1 and up == 1:
        x = upfirdn2d.upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv2d(x, w, stride=down, groups=groups, flip_weight=flip_weight)

    # Upsampling: strided transposed convolution, then the FIR filter.
    if up > 1:
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_channels_per_group, kh, kw)
            w = w.transpose(1, 2)
            w = w.reshape(groups * in_channels_per_group, out_channels // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv2d(x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight)
        x = upfirdn2d.upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up ** 2, flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d.upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x

    # No resampling and symmetric padding: a plain convolution.
    if up == 1 and down == 1 and px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv2d(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)

    # General case.
    x = upfirdn2d.upfirdn2d(x, f if up > 1 else None, up=up, padding=[px0, px1, py0, py1], gain=up ** 2, flip_filter=flip_filter)
    x = _conv2d(x, w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        x = upfirdn2d.upfirdn2d(x, f, down=down, flip_filter=flip_filter)
    return x


def modulated_conv2d(x, weight, styles, noise=None, up=1, down=1, padding=0, resample_filter=None,
                     demodulate=True, flip_weight=True, fused_modconv=True):
    """StyleGAN2 modulated convolution: scale input channels by styles, optionally demodulate, add noise."""
    batch_size = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape

    # In fp16, bring weights and styles to about unit magnitude first so nothing overflows.
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (1 / np.sqrt(in_channels * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    w = None
    dcoefs = None
    if demodulate or fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
    if demodulate and fused_modconv:
        w = w * dcoefs.reshape(batch_size, -1, 1, 1, 1)

    # Not fused: scale the activations before and after a shared-weight convolution.
    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch_size, -1, 1, 1)
        from models import winograd  # imports ops: here, not at the top

        if up == 1 and down == 1 and flip_weight and winograd.differentiable_worthwhile(x, weight, padding):
            # The shared weight makes this a fixed 3x3 conv: Winograd's quarter of the multiplies, both ways.
            x = winograd.conv3x3_fixed(x, weight)
        else:
            x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
                                flip_weight=flip_weight)
        if demodulate and noise is not None:
            x = torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1))
        elif demodulate:
            x = x * dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1)
        elif noise is not None:
            x = x.add_(noise.to(x.dtype))
        return x

    # Fused: one grouped convolution with a per-sample weight.
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
                        groups=batch_size, flip_weight=flip_weight)
    x = x.reshape(batch_size, -1, *x.shape[2:])
    if noise is not None:
        x = x.add_(noise)
    return x


def grouped_conv(x, w, padding):
    """Convolve each sample with its own weights [N, O, I, k, k] (one grouped convolution)."""
    batch, out_channels, in_channels, kh, kw = w.shape
    y = F.conv2d(x.reshape(1, -1, *x.shape[2:]), w.reshape(-1, in_channels, kh, kw).to(x.dtype),
                 padding=padding, groups=batch)
    return y.reshape(batch, out_channels, *y.shape[2:])


# ----------------------------------------------------------------------------
# Layers with equalized learning rate.


class FullyConnectedLayer(torch.nn.Module):
    """Dense layer with equalized learning rate: weights scaled by lr_multiplier / sqrt(in_features) at run time."""

    output_offset = None  # tensor [out_features] added to the output (set by models.style_space)

    def __init__(self, in_features, out_features, bias=True, activation="linear", lr_multiplier=1.0,
                 bias_init=0.0, weight_init=1.0):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) * (weight_init / lr_multiplier))
        if bias:
            bias_init = np.broadcast_to(np.asarray(bias_init, dtype=np.float32), [out_features])
            self.bias = torch.nn.Parameter(torch.from_numpy(bias_init / lr_multiplier))
        else:
            self.bias = None
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def _scaled(self, dtype):
        """(weight * weight_gain, bias * bias_gain) in dtype; kept between calls at inference, where
        recomputing them for every frame's affine layers is pure overhead."""
        key = (self.weight._version, self.weight.data_ptr(), self.weight.device, dtype, self.weight_gain,
               self.bias_gain, None if self.bias is None else (self.bias._version, self.bias.data_ptr()))
        cached = self.__dict__.get("_scaled_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        w = self.weight.to(dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if not torch.is_grad_enabled():
            self.__dict__["_scaled_cache"] = (key, (w, b))
        return w, b

    def forward(self, x):
        if torch.is_grad_enabled() and (self.weight.requires_grad or x.requires_grad):
            self.__dict__.pop("_scaled_cache", None)
        w, b = self._scaled(x.dtype)
        if self.activation == "linear" and b is not None:
            out = torch.addmm(b.unsqueeze(0), x, w.t())
        else:
            out = bias_act(x.matmul(w.t()), b, act=self.activation)
        # A style layer's affine: StyleSpace edits add to its outputs (models/style_space.py).
        return out if self.output_offset is None else out + self.output_offset.to(out.dtype)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class Conv2dLayer(torch.nn.Module):
    """Convolution with equalized learning rate, optional FIR up/downsampling, bias, activation and clamp."""

    def __init__(self, in_channels, out_channels, kernel_size, bias=True, activation="linear", up=1, down=1,
                 resample_filter=(1, 3, 3, 1), conv_clamp=None, channels_last=False):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size ** 2))
        self.act_gain = activation_gain(activation)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        self.weight = torch.nn.Parameter(weight)
        self.bias = torch.nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(self, x, gain=1):
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        flip_weight = self.up == 1  # correlation is the cheaper path when not upsampling
        x = conv2d_resample(x, w.to(x.dtype), f=self.resample_filter, up=self.up, down=self.down,
                            padding=self.padding, flip_weight=flip_weight)
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=act_gain, clamp=act_clamp)

    def extra_repr(self):
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"activation={self.activation}, up={self.up}, down={self.down}")


def plain_values(value):
    """A deep copy of init kwargs with numpy scalars/arrays and tuples turned into JSON types."""
    if isinstance(value, dict):
        return {str(k): plain_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_values(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return copy.deepcopy(value)


class GeneratorBase(torch.nn.Module):
    """NVIDIA's Generator shell, shared by the StyleGAN2 and StyleGAN3 families: a synthesis network
    (built first, so parameters keep NVIDIA's order) and a mapping network that feeds all its ws."""

    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, synthesis, mapping_class, mapping_kwargs):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = synthesis
        self.num_ws = synthesis.num_ws
        self.mapping = mapping_class(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def forward(self, z, c=None, truncation_psi=1, truncation_cutoff=None, update_emas=False, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)
