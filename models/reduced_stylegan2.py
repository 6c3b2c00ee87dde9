"""StyleGAN2's reduced preview pass, block by block: a block above the preview's resolution run on
its input's grid (no 2x upsampling). models/stylegan2.py's reduced_synthesis runs the network's one
block loop with it."""

import numpy as np
import torch

from models import ops


def reduced_block(block, x, img, cur_ws, noise_mode, noise_strength, noise_generator):
    """A block above the preview's resolution on its input's grid: conv0 (and the resnet skip)
    without upsampling, the skip image added on the same grid."""
    noise_args = (noise_mode, noise_strength, noise_generator)
    if block.architecture == "resnet":
        y = _reduced_skip(block.skip, x, gain=np.sqrt(0.5))
        x = _reduced_layer(block.conv0, x, cur_ws[:, 0], *noise_args, flip_weight=False)
        x = _reduced_layer(block.conv1, x, cur_ws[:, 1], *noise_args, gain=np.sqrt(0.5))
        x = y.add_(x)
    else:
        x = _reduced_layer(block.conv0, x, cur_ws[:, 0], *noise_args, flip_weight=False)
        x = _reduced_layer(block.conv1, x, cur_ws[:, 1], *noise_args)
    if block.is_last or block.architecture == "skip":
        y = block.torgb(x, cur_ws[:, 2]).to(torch.float32, memory_format=torch.contiguous_format)
        img = y if img is None else img.add_(y)  # a skip image stays on this grid: no upsampling
    return x, img


def _reduced_noise(layer, x, noise_mode, noise_strength, noise_generator):
    """The layer's noise drawn at its own resolution, then averaged down to x's grid."""
    if not layer.use_noise or noise_mode == "none":
        return None
    multiplier = layer.noise_multiplier(noise_strength)
    if multiplier == 0:
        return None
    if noise_mode == "const":
        noise = layer.noise_const.reshape(1, 1, layer.resolution, layer.resolution)
    elif noise_generator is not None:  # the same draw as the full pass makes
        noise = torch.randn([x.shape[0], 1, layer.resolution, layer.resolution], generator=noise_generator,
                            device=noise_generator.device).to(x.device)
    else:
        noise = torch.randn([x.shape[0], 1, layer.resolution, layer.resolution], device=x.device)
    noise = torch.nn.functional.adaptive_avg_pool2d(noise, x.shape[-2:])
    return noise * (layer.noise_strength * multiplier)


def _reduced_layer(layer, x, w, noise_mode, noise_strength, noise_generator, gain=1, flip_weight=True):
    """A SynthesisLayer without its upsampling, on x's grid. flip_weight=False for a conv0: its
    transposed convolution applies the kernel flipped, which a plain convolution must copy."""
    noise = _reduced_noise(layer, x, noise_mode, noise_strength, noise_generator)
    styles = layer.affine(w)
    x = ops.modulated_conv2d(x.contiguous(), layer.weight, styles, noise=noise, padding=layer.padding,
                             flip_weight=flip_weight, fused_modconv=True)
    clamp = layer.conv_clamp * gain if layer.conv_clamp is not None else None
    return ops.bias_act(x, layer.bias, act=layer.activation, gain=layer.act_gain * gain, clamp=clamp)


def _reduced_skip(skip, x, gain):
    """The resnet skip's 1x1 convolution without its upsampling."""
    x = torch.nn.functional.conv2d(x.contiguous(), skip.weight * skip.weight_gain)
    clamp = skip.conv_clamp * gain if skip.conv_clamp is not None else None
    return ops.bias_act(x, skip.bias, act=skip.activation, gain=skip.act_gain * gain, clamp=clamp)
