"""Test helper: random rosinality-layout generator state dicts and a direct evaluation of rosinality's formulas.

Written from the formulas of rosinality/stylegan2-pytorch's model.py (EqualLinear, PixelNorm,
ModulatedConv2d with transposed-conv upsampling + blur, NoiseInjection, FusedLeakyReLU, ToRGB
with upsampled skip, mean_latent), independently of models/, so the loader's mapping onto
NVIDIA's layout is checked against rosinality's own arithmetic.
"""

import math

import torch
import torch.nn.functional as F

STANDARD_TABLE = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}


def channel_table(size, channel_multiplier=2, divide=1):
    """rosinality's channel table (the entries from 64 px on times channel_multiplier), divided."""
    table = {}
    res = 4
    while res <= size:
        c = STANDARD_TABLE[res] * (channel_multiplier if res >= 64 else 1)
        table[res] = max(c // divide, 1)
        res *= 2
    return table


def make_kernel(taps):
    k = torch.tensor(taps, dtype=torch.float32)
    k = torch.outer(k, k)
    return k / k.sum()


def random_generator(size, style_dim, n_mlp, table, seed=0, lr_mlp=0.01, img_channels=3, blur_kernel=(1, 3, 3, 1)):
    """A rosinality Generator state dict with random (trained-looking) weights, its key order and shapes.

    blur_kernel goes to the upsampling convs only: rosinality's Generator does not pass it to its ToRGBs.
    """
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0):
        return torch.randn(*shape, generator=gen) * scale

    sd = {}
    for i in range(1, n_mlp + 1):
        sd[f"style.{i}.weight"] = randn(style_dim, style_dim, scale=1 / lr_mlp)
        sd[f"style.{i}.bias"] = randn(style_dim, scale=0.1 / lr_mlp)
    sd["input.input"] = randn(1, table[4], 4, 4)

    def styled_conv(prefix, cin, cout, up):
        sd[f"{prefix}.conv.weight"] = randn(1, cout, cin, 3, 3)
        if up:
            sd[f"{prefix}.conv.blur.kernel"] = make_kernel(list(blur_kernel)) * 4
        sd[f"{prefix}.conv.modulation.weight"] = randn(cin, style_dim)
        sd[f"{prefix}.conv.modulation.bias"] = 1 + randn(cin, scale=0.1)
        sd[f"{prefix}.noise.weight"] = randn(1, scale=0.3)
        sd[f"{prefix}.activate.bias"] = randn(cout, scale=0.1)

    def to_rgb(prefix, cin, up):
        sd[f"{prefix}.bias"] = randn(1, img_channels, 1, 1, scale=0.1)
        if up:
            sd[f"{prefix}.upsample.kernel"] = make_kernel([1, 3, 3, 1]) * 4
        sd[f"{prefix}.conv.weight"] = randn(1, img_channels, cin, 1, 1)
        sd[f"{prefix}.conv.modulation.weight"] = randn(cin, style_dim)
        sd[f"{prefix}.conv.modulation.bias"] = 1 + randn(cin, scale=0.1)

    styled_conv("conv1", table[4], table[4], False)
    to_rgb("to_rgb1", table[4], False)
    log_size = int(math.log2(size))
    for i, res in enumerate(2 ** k for k in range(3, log_size + 1)):
        styled_conv(f"convs.{2 * i}", table[res // 2], table[res], True)
        styled_conv(f"convs.{2 * i + 1}", table[res], table[res], False)
        to_rgb(f"to_rgbs.{i}", table[res], True)
    for layer in range((log_size - 2) * 2 + 1):
        res = 2 ** ((layer + 5) // 2)
        sd[f"noises.noise_{layer}"] = randn(1, 1, res, res)
    return sd


# ----------------------------------------------------------------------------
# rosinality's arithmetic


def _lrelu(x, bias):
    return F.leaky_relu(x + bias.reshape(1, -1, *[1] * (x.ndim - 2)), 0.2) * math.sqrt(2)


def _upfirdn(x, kernel, up, pad):
    """upfirdn2d_native with down=1: zero-insert `up`, pad (p0, p1) on both axes, convolve (flipped kernel)."""
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    k = torch.flip(kernel, [0, 1]).reshape(1, 1, *kernel.shape).repeat(c, 1, 1, 1)
    return F.conv2d(x, k, groups=c)


def mapping(sd, z, n_mlp, lr_mlp=0.01):
    """PixelNorm, then n_mlp EqualLinear layers with fused lrelu (lr_mul scales weight and bias)."""
    x = z * torch.rsqrt(torch.mean(z ** 2, dim=1, keepdim=True) + 1e-8)
    for i in range(1, n_mlp + 1):
        weight = sd[f"style.{i}.weight"]
        x = F.linear(x, weight * (lr_mlp / math.sqrt(weight.shape[1])))
        x = _lrelu(x, sd[f"style.{i}.bias"] * lr_mlp)
    return x


def mean_latent(sd, n_mlp, n=4096, seed=1234, lr_mlp=0.01):
    torch.manual_seed(seed)
    z = torch.randn(n, sd["style.1.weight"].shape[1])
    return mapping(sd, z, n_mlp, lr_mlp).mean(0)


def _modulated_conv(sd, prefix, x, style, demodulate, upsample):
    weight = sd[f"{prefix}.weight"]
    batch, in_c, height, width = x.shape
    _, out_c, _, k, _ = weight.shape
    mod = sd[f"{prefix}.modulation.weight"]
    s = F.linear(style, mod / math.sqrt(mod.shape[1])) + sd[f"{prefix}.modulation.bias"]
    w = weight * (1 / math.sqrt(in_c * k * k)) * s.view(batch, 1, in_c, 1, 1)
    if demodulate:
        w = w * torch.rsqrt(w.pow(2).sum([2, 3, 4]) + 1e-8).view(batch, out_c, 1, 1, 1)
    x = x.reshape(1, batch * in_c, height, width)
    if upsample:
        w = w.transpose(1, 2).reshape(batch * in_c, out_c, k, k)
        out = F.conv_transpose2d(x, w, padding=0, stride=2, groups=batch)
        out = out.reshape(batch, out_c, *out.shape[2:])
        p = (sd[f"{prefix}.blur.kernel"].shape[0] - 2) - (k - 1)
        return _upfirdn(out, sd[f"{prefix}.blur.kernel"], 1, ((p + 1) // 2 + 1, p // 2 + 1))
    out = F.conv2d(x, w.reshape(batch * out_c, in_c, k, k), padding=k // 2, groups=batch)
    return out.reshape(batch, out_c, *out.shape[2:])


def _styled_conv(sd, prefix, x, style, noise, upsample):
    out = _modulated_conv(sd, f"{prefix}.conv", x, style, True, upsample)
    if noise is not None:
        out = out + sd[f"{prefix}.noise.weight"] * noise
    return _lrelu(out, sd[f"{prefix}.activate.bias"])


def _to_rgb(sd, prefix, x, style, skip):
    out = _modulated_conv(sd, f"{prefix}.conv", x, style, False, False) + sd[f"{prefix}.bias"]
    if skip is not None:
        p = sd[f"{prefix}.upsample.kernel"].shape[0] - 2
        out = out + _upfirdn(skip, sd[f"{prefix}.upsample.kernel"], 2, ((p + 1) // 2 + 1, p // 2))
    return out


@torch.no_grad()
def synthesis(sd, latent, noise="const"):
    """rosinality's Generator.forward(input_is_latent=True) for latent [N, n_latent, style_dim].

    noise: 'const' = the stored noises.* (randomize_noise=False), 'none' = zeros.
    """
    num_rgbs = len([k for k in sd if k.startswith("to_rgbs.") and k.endswith(".conv.weight")])
    noises = [sd[f"noises.noise_{i}"] if noise == "const" else None for i in range(2 * num_rgbs + 1)]
    out = sd["input.input"].repeat(latent.shape[0], 1, 1, 1)
    out = _styled_conv(sd, "conv1", out, latent[:, 0], noises[0], False)
    skip = _to_rgb(sd, "to_rgb1", out, latent[:, 1], None)
    i = 1
    for k in range(num_rgbs):
        out = _styled_conv(sd, f"convs.{2 * k}", out, latent[:, i], noises[2 * k + 1], True)
        out = _styled_conv(sd, f"convs.{2 * k + 1}", out, latent[:, i + 1], noises[2 * k + 2], False)
        skip = _to_rgb(sd, f"to_rgbs.{k}", out, latent[:, i + 2], skip)
        i += 2
    return skip
