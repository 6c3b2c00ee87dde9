"""StyleGAN3's lean CPU path: the same pixels as the reference layer with a fraction of its memory.

- A layer's convolution runs in bands of rows, all output channels together, channels-last, and
  each band is filtered (upsample FIR, lrelu, clamp, downsample FIR) as soon as it exists, by one
  numba pass (models/cpu_kernels.py) or the torch tiled path (models/filtered_lrelu.py): the whole
  convolution output is never held. 3x3 convolutions run as Winograd's F(4x4, 3x3) where it pays.
- Layer outputs alternate between two buffers kept between frames (no heap growth per frame).
- The reduced (preview) pass convolves with the fixed weight, styles on the input.

models/stylegan3.py calls layer_forward from SynthesisLayer.forward on CPUs without autograd.
"""

import numpy as np
import torch
import torch.nn.functional as F

from models import cpu_kernels, ops, winograd
from models import filtered_lrelu as flrelu

# Channels per vector register of the CPU's widest float32 vectors (AVX-512); see layer_forward.
CHANNEL_VECTOR = 16
# Attribute of a lean layer's output view naming its channel-padded buffer (see layer_forward).
PADDED_ATTRIBUTE = "channel_padded"
# Values of convolution output per band of rows that the fused filter takes at once: large bands
# keep the convolutions efficient and the filter's overlap between bands small, at ~16 MB (8 M values
# were as fast and put R-1024 at 2.0 GB).
FUSED_BAND_VALUES = 1 << 22


def layer_forward(layer, x, weights, bias, options, allocate=None):
    """Channels-last, all output channels together: the convolution in bands of rows, each band
    filtered by the fused kernel (or the torch tiled path) as soon as it exists; rows shared
    with the previous band are kept, not redone.

    Never holds the whole convolution output, only one band's rows (~tens of MB at 1024 px).
    """
    batch, _, in_h, in_w = x.shape
    padded = getattr(x, PADDED_ATTRIBUTE, None)
    if padded is not None and padded.shape[2:] == x.shape[2:]:
        # The previous lean layer's output with its zero channels up to a whole vector: convolve
        # that (zero weights for the extra channels) instead of copying the narrower view.
        weights = F.pad(weights, [0, 0, 0, 0, 0, padded.shape[1] - x.shape[1]])
        x = padded
    x = x.contiguous(memory_format=torch.channels_last)
    conv_h, conv_w = in_h + layer.conv_kernel - 1, in_w + layer.conv_kernel - 1
    out_w, out_h = flrelu.output_size(conv_w, conv_h, layer.up_filter, layer.down_filter,
                                      layer.up_factor, layer.down_factor, layer.padding)
    if layer.is_torgb:
        return flrelu.filtered_lrelu_fast(_row_convolution(layer, x, weights)(0, conv_h), b=bias, **options)
    # The fused kernel works on numpy views: no autograd through it.
    fused = x.dtype == torch.float32 and not torch.is_grad_enabled() and cpu_kernels.supports(
        options["fu"], options["up"], options["down"])
    channels = layer.out_channels
    if not fused:
        # Whole vectors of channels: oneDNN's depthwise convolutions in the tiled filter run up
        # to 1.4x faster on 16k channels than on 16k+1, so compute zero channels up to that; the
        # tiles are then copied into `out` as whole pixels, not as 51 of every 64 values (3x
        # slower). The fused kernel's loops do not care, and the convolutions skip the zeros.
        channels = -(-layer.out_channels // CHANNEL_VECTOR) * CHANNEL_VECTOR
    if allocate is not None and x.dtype == torch.float32:
        out = allocate([batch, channels, out_h, out_w])
    else:
        out = torch.empty([batch, channels, out_h, out_w], dtype=x.dtype, device=x.device,
                          memory_format=torch.channels_last)
    if channels != layer.out_channels:
        weights = F.pad(weights, [0, 0, 0, 0, 0, 0, 0, channels - layer.out_channels])
        bias = F.pad(bias, [0, channels - layer.out_channels])
    if fused:
        _fused_filter(layer, x, weights, bias, out, options)
    else:
        _tiled_filter(layer, x, weights, bias, out, options)
    if channels == layer.out_channels:
        return out
    # Callers (hooks, the layer view) see out_channels; the next lean layer takes the whole
    # buffer, whose extra channels are exactly zero (zero weights and bias, lrelu(0) = 0).
    result = out[:, :layer.out_channels]
    setattr(result, PADDED_ATTRIBUTE, out)
    return result

def _fused_filter(layer, x, weights, bias, out, options):
    """The convolution in bands of rows, each filtered by the fused kernel straight into `out`."""
    conv_h, conv_w = x.shape[2] + layer.conv_kernel - 1, x.shape[3] + layer.conv_kernel - 1
    plans = layer.__dict__.setdefault("_kernel_plans", {})
    plan = plans.get((conv_h, conv_w))
    if plan is None:
        fu, fd = (None if f is None else f.cpu().numpy() for f in (options["fu"], options["fd"]))
        plan = cpu_kernels.Plan(conv_h, conv_w, fu, fd, options["up"], options["down"], options["padding"],
                                options["gain"])
        plans[(conv_h, conv_w)] = plan
    channels = out.shape[1]
    out_rows = out.permute(0, 2, 3, 1).numpy()  # [N, H, W, C] view of the channels-last output
    bias = bias.detach().contiguous().numpy()
    conv_rows = _row_convolution(layer, x, weights)
    band = max(16, FUSED_BAND_VALUES // max(1, conv_w * channels * plan.up // plan.down))
    kept, kept_top = None, 0  # the previous band's new convolution rows, from row kept_top
    for o0, o1 in flrelu.even_splits(plan.out_h, band):
        top, bottom = plan.input_rows(o0, o1)
        if kept is None or top < kept_top:
            fresh_top, fresh = top, conv_rows(top, bottom)
            pieces = [(fresh, fresh_top)]
        else:
            # Rows the previous band convolved are read from there, not convolved or copied again.
            fresh_top = kept_top + kept.shape[2]
            fresh = conv_rows(fresh_top, bottom) if bottom > fresh_top else None
            pieces = [(kept, kept_top)] + ([(fresh, fresh_top)] if fresh is not None else [])
        arrays = [(piece.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1).numpy(), row)
                  for piece, row in pieces]
        for n in range(out.shape[0]):
            first, first_top = arrays[0][0][n], arrays[0][1]
            more, more_top = (arrays[1][0][n], arrays[1][1]) if len(arrays) > 1 else (None, None)
            # The loops' threads follow torch's (what the renderer set for this machine).
            plan.run(first, bias, out_rows[n], o0, o1, first_top, options["slope"], options["clamp"],
                     more, more_top, workers=torch.get_num_threads())
        if fresh is not None:
            kept, kept_top = fresh, fresh_top

def _conv_band(conv_rows, top, bottom, kept, kept_top):
    """Convolution rows top..bottom-1 (channels-last), reusing the rows of `kept` (from kept_top)."""
    done = max(kept_top + kept.shape[2] if kept is not None else top, top)
    if kept is not None and done >= bottom:
        return kept[:, :, top - kept_top:bottom - kept_top]
    fresh = conv_rows(done, bottom)
    if kept is not None and done > top:
        fresh = torch.cat([kept[:, :, top - kept_top:done - kept_top], fresh], dim=2)
    return fresh.contiguous(memory_format=torch.channels_last)

def _tiled_filter(layer, x, weights, bias, out, options):
    """The torch path (no numba, autograd, half precision, or resampling the kernel does not take):
    row tiles of TilePlan, convolving the rows each reads."""
    batch, _, in_h, in_w = x.shape
    channels = out.shape[1]
    conv_h, conv_w = in_h + layer.conv_kernel - 1, in_w + layer.conv_kernel - 1
    plan = flrelu.TilePlan([batch, channels, conv_h, conv_w], x.dtype, x.device, options["fu"],
                           options["fd"], options["up"], options["down"], options["padding"], options["gain"])
    conv_rows = _row_convolution(layer, x, weights)
    kept, kept_top = None, 0  # convolution rows kept_top.. of the previous tile
    for rows in plan.row_tiles:
        top, bottom = plan.input_rows(rows)
        fresh = _conv_band(conv_rows, top, bottom, kept, kept_top)
        plan.fill_rows(out, fresh, bias, rows, options["slope"], options["clamp"], x_top=top)
        kept, kept_top = fresh, top

def _row_convolution(layer, x, weights):
    """A function (top, bottom) -> rows top..bottom-1 of the padded (k-1) convolution's output, all
    channels, channels-last: a matrix product for 1x1 kernels, Winograd's F(4x4, 3x3) for 3x3
    ones where it pays (float32 without autograd, enough channels and pixels), else oneDNN's
    direct convolution. The weights are prepared once here, not per band of rows."""
    batch, in_channels, in_h, in_w = x.shape  # in_channels may include zero padding (_lean_forward)
    weights = weights.to(x.dtype)
    pad = layer.conv_kernel - 1
    if layer.conv_kernel == 1:
        def matrix_product(top, bottom):  # over the channels-last pixels, without copying them
            pixels = x[:, :, top:bottom].permute(0, 2, 3, 1).reshape(batch, (bottom - top) * in_w, in_channels)
            y = torch.stack([ops.rows_times_weight(pixels[n], weights[n].reshape(-1, in_channels))
                             for n in range(batch)])
            return y.view(batch, bottom - top, in_w, -1).permute(0, 3, 1, 2)
        return matrix_product
    if winograd.worthwhile(x, weights.shape[1], layer.conv_kernel):
        prepared = [winograd.transform_weight(weights[n]) for n in range(batch)]
        pixels = x.detach().permute(0, 2, 3, 1).numpy()

        def winograd_rows(top, bottom):
            out = torch.empty([batch, weights.shape[1], bottom - top, in_w + pad],
                              memory_format=torch.channels_last)
            rows = out.permute(0, 2, 3, 1).numpy()
            for n in range(batch):
                winograd.conv3x3_rows(pixels[n], prepared[n], top - pad, bottom - top, pad, rows[n],
                                      workers=torch.get_num_threads())
            return out
        return winograd_rows
    per_sample = [weights[n].contiguous(memory_format=torch.channels_last) for n in range(batch)]

    def direct(top, bottom):
        first_in, stop_in = max(top - pad, 0), min(bottom, in_h)
        # Rows at the image's top or bottom edge read zeros: let the convolution pad both ends then
        # (and drop the rows it computes at the other end) rather than copying the band padded.
        pad_h = pad if top < pad or bottom > in_h else 0
        first = top - first_in - (pad - pad_h)  # output row of conv row `top`
        band = x[:, :, first_in:stop_in]
        rows = [F.conv2d(band[n:n + 1], per_sample[n], padding=(pad_h, pad))[:, :, first:first + bottom - top]
                for n in range(batch)]
        return rows[0] if batch == 1 else torch.cat(rows)
    return direct


# ---------------------------------------------------------------------------
# Layer outputs kept between frames


def reserve_kept(synthesis, batch, device):
    """Make both kept buffers as large as their layers need before the first layer runs: grown
    layer by layer instead, the outgrown ones would be left behind as holes in the heap."""
    kept = synthesis.__dict__.setdefault("_kept", [None, None])
    for slot in (0, 1):
        layers = [getattr(synthesis, name) for name in synthesis.layer_names[slot::2]]
        numel = max([batch * -(-layer.out_channels // CHANNEL_VECTOR) * CHANNEL_VECTOR
                     * int(layer.out_size[0]) * int(layer.out_size[1]) for layer in layers if not layer.is_torgb]
                    or [0])
        buffer = kept[slot]
        if buffer is None or buffer.numel() < numel or buffer.device != device:
            kept[slot] = None  # freed before the new one is made
            kept[slot] = torch.empty(numel, dtype=torch.float32, device=device)

def kept_buffer(synthesis, slot, device, shape):
    """A channels-last float32 [N, C, H, W] tensor in one of two buffers kept between frames.

    Layer outputs at 1024 px are 0.2-0.7 GB each. Fresh ones every frame fragment the heap
    (R-1024 grew from 2.0 to 3.1 GB of resident memory) or, if mmap'd, fault in their pages
    anew. Layers alternate between the two buffers, each as large as its largest layer: the
    frame needs exactly that. A buffer anyone else still holds a view of (a hook that kept a
    layer's output, the layer view) is left to them and replaced by a new one.
    """
    kept = synthesis.__dict__.setdefault("_kept", [None, None])
    numel = int(np.prod(shape))
    buffer = kept[slot]
    if buffer is None or buffer.numel() < numel or buffer.device != device or _storage_shared(buffer):
        buffer = torch.empty(numel, dtype=torch.float32, device=device)
        kept[slot] = buffer
    n, c, h, w = shape
    return buffer[:numel].view(n, h, w, c).permute(0, 3, 1, 2)


def _storage_shared(tensor):
    """Whether any tensor besides `tensor` uses its memory (views, numpy arrays, detached copies)."""
    try:
        # One count for `tensor` itself, one for the storage object made by this call.
        return torch._C._storage_Use_Count(tensor.untyped_storage()._cdata) > 2
    except AttributeError:  # not in this torch: never reuse
        return True


# ---------------------------------------------------------------------------
# The reduced (preview) pass's convolutions with the fixed weight


def fixed_weight_pays(layer, x):
    """Whether the reduced pass convolves this layer with its fixed weight (styles on the input, the
    demodulation on the output): batch 1 on the CPU without autograd, a demodulated layer, and a 1x1
    kernel (one matrix product) or a 3x3 one with enough channels for Winograd (previews' grids are
    20-70 px, so from 16 px up)."""
    if layer.is_torgb or x.shape[0] != 1 or x.dtype != torch.float32 or x.device.type != "cpu" \
            or torch.is_grad_enabled():
        return False
    return layer.conv_kernel == 1 or (
        layer.conv_kernel == 3 and winograd.available() and x.shape[2] * x.shape[3] >= 256
        and min(x.shape[1], layer.out_channels) >= winograd.MIN_CHANNELS)


def fixed_conv(layer, x, styles):
    """modulated_weight's convolution ('full' padding) with the layer's fixed weight: conv(x * s, W) * d
    equals conv(x, W * s * d) for per-input-channel s and per-output-channel d. The pre-normalised
    weight (1x1: as a matrix; 3x3: its Winograd transform, 4x its size) and its squared sums are
    made once per weight version and kept on the layer, for previews only."""
    version = (layer.weight._version, layer.weight.data_ptr())
    kept = layer.__dict__.get("_reduced_fixed")
    if kept is None or kept[0] != version:
        weight = layer.weight.detach().to(torch.float32)
        weight = weight * weight.square().mean([1, 2, 3], keepdim=True).rsqrt()
        fixed = weight[:, :, 0, 0].contiguous() if layer.conv_kernel == 1 else winograd.transform_weight(weight)
        kept = layer.__dict__["_reduced_fixed"] = (version, fixed, weight.square().sum([2, 3]))
    _, fixed, square_sums = kept
    styles = styles[0] * styles[0].square().mean().rsqrt()  # as modulated_weight normalises them (batch 1)
    out_scale = (square_sums @ styles.square() + 1e-8).rsqrt()
    x = (x * (styles * layer.magnitude_ema.rsqrt()).reshape(1, -1, 1, 1)).contiguous(memory_format=torch.channels_last)
    if layer.conv_kernel == 1:
        rows = ops.rows_times_weight(x[0].permute(1, 2, 0).reshape(-1, x.shape[1]), fixed).mul_(out_scale)
        return rows.view(1, x.shape[2], x.shape[3], -1).permute(0, 3, 1, 2)
    height, width = x.shape[2] + 2, x.shape[3] + 2
    y = torch.empty([1, layer.out_channels, height, width], memory_format=torch.channels_last)
    winograd.conv3x3_rows(x[0].permute(1, 2, 0).numpy(), fixed, -2, height, 2, y[0].permute(1, 2, 0).numpy(),
                          out_scale.contiguous().numpy(), workers=torch.get_num_threads())
    return y
