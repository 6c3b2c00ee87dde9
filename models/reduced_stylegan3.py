"""StyleGAN3's reduced preview pass, layer by layer: the modulated convolution, then bias, leaky ReLU
and a bilinear resample instead of the alias-free filters. models/stylegan3.py's reduced_synthesis
runs the layers through it."""

import numpy as np
import torch
import torch.nn.functional as F

from models import fast_stylegan3, ops
from models import filtered_lrelu as flrelu

# Gaussian sigma, in output samples per (out_rate / out_cutoff): 1.5 x sqrt(ln 2) / (2 pi), see reduced_layer.
REDUCED_BLUR = 1.5 * np.sqrt(np.log(2)) / (2 * np.pi)


def center_crop(x, size):
    """The middle size x size samples of x (as many dropped on each side: the grid's centre stays)."""
    crop = max(0, (x.shape[-1] - size) // 2)
    return x[..., crop:x.shape[-2] - crop, crop:x.shape[-1] - crop] if crop else x


def reduced_layer(layer, x, w, in_rate, out_rate, out_size):
    """Modulated conv, bias + leaky ReLU (+ clamp) unfiltered, bilinear onto the output grid."""
    styles = layer.styles(w)
    in_size = x.shape[-1]
    if fast_stylegan3.fixed_weight_pays(layer, x):
        x = fast_stylegan3.fixed_conv(layer, x, styles)
    else:
        x = ops.grouped_conv(x, layer.modulated_weights(styles), layer.conv_kernel - 1)
    x = x + layer.bias.reshape(1, -1, 1, 1)
    if layer.is_torgb:
        x = flrelu.lrelu_clamp_(x, gain=1, slope=1, clamp=layer.conv_clamp)
    else:
        x = flrelu.lrelu_clamp_(x, gain=np.sqrt(2), slope=0.2, clamp=layer.conv_clamp)
    # Output sample j lies at (j + 0.5 - S_o/2) / r_o image units; input sample i of the layer at
    # (i + 0.5 - S_i/2) / r_i, and the 'full' convolution's output m at input index m - (k-1)/2.
    j = torch.arange(out_size, dtype=torch.float64)
    position = (j + 0.5 - out_size / 2) / out_rate * in_rate + in_size / 2 - 0.5 + (layer.conv_kernel - 1) / 2
    x = _resample_linear(_resample_linear(x, position, dim=2), position, dim=3)
    if layer.is_torgb:
        return x
    # The real layer low-passes at out_cutoff; without it the unfiltered ReLU's harmonics pile up
    # layer after layer (image std 1.5x too high). A Gaussian standing in for that filter keeps the
    # picture: 1.5x the width whose -3 dB point is the cutoff measured best (PSNR 27-31 dB against
    # the downscaled full frame, random StyleGAN3-T 64 and 256 px; 11-15 dB without it).
    sigma = REDUCED_BLUR * out_rate / float(layer.out_cutoff)
    return _gaussian_blur(x, sigma)


def _resample_linear(x, position, dim):
    """x [N, C, H, W] sampled at fractional indices `position` along `dim` (2 or 3; linear, clamped
    to the edge samples)."""
    length = x.shape[dim]
    position = position.clamp(0, length - 1)
    lower = position.floor().long().clamp(max=length - 1)
    upper = (lower + 1).clamp(max=length - 1)
    start = int(lower[0])
    if torch.equal(position, torch.arange(start, start + position.numel(), dtype=position.dtype)):
        return x.narrow(dim, start, position.numel())  # whole samples in a row (same rate in and out)
    # Gathered in the [N, H, W, C] view: whole rows or whole pixels of a channels-last tensor
    # (the reduced pass's layout), 3-4x faster than gathering in NCHW order, which also handed
    # the next convolution a tensor to copy back to channels-last. Same values either way.
    pixels = x.permute(0, 2, 3, 1)
    axis = dim - 1  # H and W are axes 1 and 2 there
    shape = [1] * x.ndim
    shape[axis] = -1
    frac = (position - lower).to(x.dtype).reshape(shape)
    low = pixels.index_select(axis, lower)
    return low.add_((pixels.index_select(axis, upper) - low).mul_(frac)).permute(0, 3, 1, 2)


def _gaussian_blur(x, sigma):
    """Separable Gaussian blur of sigma samples, edges replicated."""
    radius = max(1, int(np.ceil(3 * sigma)))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-taps.square() / (2 * sigma * sigma))
    kernel = (kernel / kernel.sum()).to(x.dtype)
    channels = x.shape[1]
    x = F.conv2d(F.pad(x, [radius, radius, 0, 0], mode="replicate"),
                 kernel.reshape(1, 1, 1, -1).expand(channels, 1, 1, -1).contiguous(), groups=channels)
    return F.conv2d(F.pad(x, [0, 0, radius, radius], mode="replicate"),
                    kernel.reshape(1, 1, -1, 1).expand(channels, 1, -1, 1).contiguous(), groups=channels)
