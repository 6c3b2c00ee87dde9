"""FIR filters and upfirdn2d (upsample, pad, filter, downsample) in plain PyTorch, NVIDIA's names and conventions."""

import torch
import torch.nn.functional as F


def setup_filter(f, device=None, normalize=True, flip_filter=False, gain=1, separable=None):
    """Turn a list of taps into a float32 filter: 1-D taps become their outer product unless separable."""
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32)
    assert f.ndim in (0, 1, 2) and f.numel() > 0
    if f.ndim == 0:
        f = f[None]
    if separable is None:
        # Long 1-D filters stay separable (two 1-D passes); short ones become one 2-D kernel.
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    assert f.ndim == (1 if separable else 2)
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device) if device is not None else f


def filter_size(f):
    """(width, height) of a filter prepared by setup_filter (None = 1x1)."""
    if f is None:
        return 1, 1
    if f.ndim == 1:
        return f.shape[0], f.shape[0]
    return f.shape[-1], f.shape[-2]


def _pair(value):
    """An int or a pair -> (x, y)."""
    if isinstance(value, int):
        return value, value
    x, y = value
    return x, y


def padding4(padding):
    """An int, [px, py] or [px0, px1, py0, py1] -> [px0, px1, py0, py1]."""
    if isinstance(padding, int):
        return [padding] * 4
    if len(padding) == 2:
        px, py = padding
        return [px, px, py, py]
    return list(padding)


def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
    """Zero-stuff upsample by `up`, pad [px0, px1, py0, py1] (negative crops), FIR-filter with f, keep every `down`-th pixel."""
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    batch_size, num_channels, in_height, in_width = x.shape
    upx, upy = _pair(up)
    downx, downy = _pair(down)
    padx0, padx1, pady0, pady1 = padding4(padding)

    # Upsample by inserting zeros after each pixel.
    if upx > 1 or upy > 1:
        x = x.reshape([batch_size, num_channels, in_height, 1, in_width, 1])
        x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
        x = x.reshape([batch_size, num_channels, in_height * upy, in_width * upx])

    # Pad, then crop where the padding is negative.
    x = F.pad(x, [max(padx0, 0), max(padx1, 0), max(pady0, 0), max(pady1, 0)])
    x = x[:, :, max(-pady0, 0): x.shape[2] - max(-pady1, 0), max(-padx0, 0): x.shape[3] - max(-padx1, 0)]

    # conv2d correlates; flipping the filter makes it a true convolution.
    f = (f * (gain ** (f.ndim / 2))).to(device=x.device, dtype=x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f[None, None].repeat([num_channels, 1] + [1] * f.ndim)
    if f.ndim == 4:
        x = F.conv2d(x, f, groups=num_channels)
    else:
        x = F.conv2d(x, f.unsqueeze(2), groups=num_channels)
        x = F.conv2d(x, f.unsqueeze(3), groups=num_channels)

    return x[:, :, ::downy, ::downx]


def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1):
    """Upsample by `up` with FIR filter f, keeping the image centred and its brightness."""
    upx, upy = _pair(up)
    padx0, padx1, pady0, pady1 = padding4(padding)
    fw, fh = filter_size(f)
    p = [
        padx0 + (fw + upx - 1) // 2,
        padx1 + (fw - upx) // 2,
        pady0 + (fh + upy - 1) // 2,
        pady1 + (fh - upy) // 2,
    ]
    return upfirdn2d(x, f, up=up, padding=p, flip_filter=flip_filter, gain=gain * upx * upy)


def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1):
    """Downsample by `down` after low-pass FIR filter f, keeping the image centred."""
    downx, downy = _pair(down)
    padx0, padx1, pady0, pady1 = padding4(padding)
    fw, fh = filter_size(f)
    p = [
        padx0 + (fw - downx + 1) // 2,
        padx1 + (fw - downx) // 2,
        pady0 + (fh - downy + 1) // 2,
        pady1 + (fh - downy) // 2,
    ]
    return upfirdn2d(x, f, down=down, padding=p, flip_filter=flip_filter, gain=gain)
