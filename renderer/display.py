"""The display mapping: a shown tensor (an image, or a captured layer's channels) -> uint8 picture and statistics (channels, normalize, gain, FFT, output scaling)."""

import math

import numpy as np
import torch

FFT_RANGE_DB = 80.0  # the FFT view shows the top this-many dB of the power spectrum


def image_to_uint8(img):
    """Raw [N, C, H, W] generator output -> uint8 [N, H, W, C], exactly as gen_images.py."""
    return (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def _select_channels(x, request, is_image):
    """x [C, H, W] -> the channels to show, [K, H, W] (K = 3, 1 or N for a grid)."""
    num = x.shape[0]
    if is_image:
        return x[:3] if num >= 3 else x[:1]
    first = request.channel
    if first >= num:
        raise ValueError(f"channel: {first} is outside 0-{num - 1} for layer {request.layer!r}")
    if request.channel_mode == "rgb":
        if num < 3:
            return x[:1]
        if first + 3 > num:
            raise ValueError(f"channel: rgb needs channels {first}-{first + 2}; layer has 0-{num - 1}")
        return x[first:first + 3]
    if request.channel_mode == "one":
        return x[first:first + 1]
    return x[first:first + request.grid_channels]


def _normalization(planes, mode):
    """Per-channel (scale, offset) [K] that bring dense planes [K, H, W] to roughly [-1, 1] (the
    display range of x * 127.5 + 128): 'minmax' spans each channel's range, 'std' puts +-2
    standard deviations about its mean there, 'none' leaves the values as they are."""
    count = planes.shape[0]
    flat = planes.reshape(count, -1)
    if mode == "minmax":
        low, high = torch.aminmax(flat, dim=1)
        scale = 2 / (high - low).clamp_min(1e-8)
        return scale, -low * scale - 1
    if mode == "std":
        mean = flat.mean(dim=1)
        std = torch.tensor([_spread(row, row_mean) for row, row_mean in zip(flat, mean)], dtype=flat.dtype,
                           device=flat.device)
        scale = 1 / (2 * std.clamp_min(1e-8))
        return scale, -mean * scale
    return planes.new_ones(count), planes.new_zeros(count)


def _power_spectrum_db(planes):
    """(centered power spectrum in dB [K, H, W], each channel's top in dB [K]) of dense planes.

    A real map's spectrum is conjugate-symmetric, F(-u, -v) = conj F(u, v), so the half that
    rfft2 computes (a sixth of fft2's time here) gives every value. Centered as fftshift does,
    the columns from the middle on are that half's first columns; those left of it are its
    columns 1.. read backwards, from the rows negated (u -> -u)."""
    count, height, width = planes.shape
    half = torch.fft.rfft2(planes)  # [K, H, W // 2 + 1]
    real, imag = half.real, half.imag
    db = torch.addcmul(real * real, imag, imag).clamp_min_(1e-20).log10_().mul_(10)
    negated = torch.cat([db[:, :1], db[:, 1:].flip(1)], dim=1)  # row u holds row -u
    right = torch.roll(db[..., :width - width // 2], height // 2, dims=1)
    left = torch.roll(negated[..., 1:width // 2 + 1].flip(2), height // 2, dims=1)
    return torch.cat([left, right], dim=2), db.amax(dim=(1, 2))


def _stats(x, selected):
    def summary(t, prefix):
        values = _values_in_memory_order(t)
        mean = values.mean()
        low, high = torch.aminmax(values)
        return {f"{prefix}mean": float(mean), f"{prefix}std": _spread(values, mean),
                f"{prefix}min": float(low), f"{prefix}max": float(high)}

    return {**summary(x, ""), **summary(selected, "sel_")}


def _spread(values, mean):
    """The standard deviation of flat `values` about their `mean`, summed a cache-sized piece at a
    time: torch.std_mean took 170 ms for a 1024 px layer's 33 M values (and 83 ms per-channel over
    16 of its channels), a whole-tensor (values - mean) allocates 134 MB."""
    squares = sum(float(torch.dot(piece - mean, piece - mean)) for piece in values.split(1 << 18))
    return math.sqrt(squares / max(values.numel(), 1))


def _values_in_memory_order(t):
    """t's values as one flat tensor, a view where t is dense in some order of its dimensions. The
    statistics do not depend on the order, and reductions over a channels-last layer seen as
    [C, H, W] stride through memory."""
    return t.permute(sorted(range(t.ndim), key=lambda d: -t.stride(d))).reshape(-1)


def to_view(tensor, request, is_image):
    """Shown tensor [1, C, H, W] -> (uint8 [H, W, 3] picture, statistics)."""
    x = tensor[0].float()
    plain = is_image and request.normalize == "none" and request.gain_db == 0 and not request.fft
    if plain and x.shape[0] == 3:  # bit-exact gen_images.py conversion
        image = image_to_uint8(tensor[:1].float())[0]
        return image.cpu().numpy(), _stats(x, x)
    selected = _dense_planes(_select_channels(x, request, is_image))
    stats = _stats(x, selected)
    # Every view is a per-channel line through the display mapping shown * 127.5 + 128.
    if request.fft:  # the top FFT_RANGE_DB of each channel's spectrum onto [-1, 1]; gain moves the picture
        values, top = _power_spectrum_db(selected)
        scale = torch.full_like(top, 2 / FFT_RANGE_DB)
        offset = 1 - (top - request.gain_db) * scale
    else:
        values = selected
        scale, offset = _normalization(selected, request.normalize)
        gain = 10 ** (request.gain_db / 20)
        scale, offset = scale * gain, offset * gain
    if not is_image and request.channel_mode == "grid":
        pixels, targets = _grid_cells(values.shape, values.device)
    else:
        pixels = targets = torch.empty(values.shape, dtype=torch.uint8, device=values.device)
    _write_display_pixels(values, scale * 127.5, offset * 127.5 + 128, targets)
    if pixels.shape[0] == 1:  # grey: the one channel three times, interleaved in one pass
        return torch.stack([pixels[0]] * 3, dim=-1).cpu().numpy(), stats
    return pixels.permute(1, 2, 0).contiguous().cpu().numpy(), stats


def _write_display_pixels(values, scale, offset, targets):
    """targets[k] = uint8 clamp(values[k] * scale[k] + offset[k]) for each channel of values [K, H, W]:
    one channel at a time, so the float line is a cache-sized temporary, not a [K, H, W] one."""
    for k, target in enumerate(targets):
        target.copy_(torch.addcmul(offset[k], values[k], scale[k]).clamp_(0, 255))  # float -> uint8 truncates


def _grid_cells(shape, device="cpu"):
    """(a dark uint8 picture [1, rows*H, cols*W], views of its N cells in row order) for maps of
    shape [N, H, W]: near-square, the last row's empty cells left at the display minimum."""
    count, height, width = shape
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    picture = torch.zeros((1, rows * height, cols * width), dtype=torch.uint8, device=device)
    cells = [picture[0, (k // cols) * height:(k // cols + 1) * height, (k % cols) * width:(k % cols + 1) * width]
             for k in range(count)]
    return picture, cells


def _dense_planes(maps):
    """maps [K, H, W] as a dense channels-first tensor. Channels sliced from a channels-last layer
    are copied a band of rows at a time (the band's source stays in cache: 90 -> 55 ms for 16
    channels of a 1024 px layer); every per-channel reduction after reads whole planes."""
    if maps.is_contiguous():
        return maps
    count, height, width = maps.shape
    if maps.stride(0) != 1:
        return maps.contiguous()
    rows = maps.permute(1, 2, 0)  # [H, W, K], each pixel's channels adjacent
    planes = torch.empty((count, height, width), dtype=maps.dtype, device=maps.device)
    band = 16
    for top in range(0, height, band):
        planes[:, top:top + band] = rows[top:top + band].permute(2, 0, 1)
    return planes


def upscale_nearest(image, factor):
    if factor <= 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def output_scale(image, scale):
    """Resize the final picture: nearest neighbour up (pixels stay crisp), Lanczos down."""
    if scale == 1.0:
        return image
    from PIL import Image

    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    method = Image.NEAREST if scale > 1 else Image.LANCZOS
    return np.asarray(Image.fromarray(image).resize(size, method))
