"""rosinality/stylegan2-pytorch files: its Generator mapped onto StyleScope's StyleGAN2, and its Discriminator."""

# rosinality keeps raw weights and applies the equalized-lr scales at run time; NVIDIA's layout
# applies the same scales, except that rosinality's ModulatedConv2d scales the conv weight by
# 1/sqrt(in*k*k) before demodulating (NVIDIA leaves it raw). That scale is folded into the weight
# here, so even the 1e-8 inside the demodulation sees the same numbers. Layer order and the
# w index of every layer are the same in both (conv1, to_rgb1, then per resolution an upsampling
# conv, a conv and a ToRGB), and rosinality's transposed-conv upsampling followed by its [1,3,3,1]
# blur (pad 1, gain 4) is what NVIDIA's conv2d_resample does for up=2 (both convolve with the
# unflipped weight, then the same FIR filter with the same padding).

import math
import re

import torch
import torch.nn.functional as F

from models import ops, stylegan2, upfirdn2d
from models.errors import LoadError

MEAN_LATENT_SAMPLES = 4096  # generate.py's --truncation_mean default
MEAN_LATENT_SEED = 1234  # generate.py's torch.manual_seed before g_ema.mean_latent


def key_indices(sd, pattern):
    """The sorted integers {i} of the keys that match `pattern` (a regex with one group)."""
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for m in map(regex.fullmatch, sd) if m})


def is_generator_state(sd):
    return all(k in sd for k in ("input.input", "style.1.weight", "conv1.conv.weight", "to_rgb1.conv.weight"))


def is_discriminator_state(sd):
    return "final_linear.0.weight" in sd and "convs.0.0.weight" in sd


def mapping_lr_multiplier(weight):
    """The mapping's lr multiplier, told from the stored weights' scale (the file does not say it).

    Equalized lr stores weights as N(0, 1) / lr_mul at init, and training moves them little, so a
    std near 100 means lr_mul 0.01 (rosinality's and NVIDIA's default) and near 1 means lr_mul 1.
    Only these two are used in practice; the boundary is their geometric mean (std 10).
    """
    return 0.01 if float(weight.float().std()) > 10 else 1.0


def _blur_taps(kernel_2d):
    """1-D taps whose normalised outer product is this (normalised) 2-D blur kernel."""
    k = kernel_2d.double()
    k = k / k.sum()
    taps = k.sum(dim=1)
    if not torch.allclose(torch.outer(taps, taps), k, atol=1e-6):
        raise LoadError("rosinality blur kernel is not separable")
    return [float(t) for t in taps]


# ----------------------------------------------------------------------------
# Generator


def generator_config(sd):
    """Everything a rosinality Generator's state dict says about its shape (channels from the tensors)."""
    if any(k.startswith("iwt.") or ".iwt." in k for k in sd):
        raise LoadError("rosinality SWAGAN generators (wavelet ToRGB) are not supported")
    n_mlp = len(key_indices(sd, r"style\.(\d+)\.weight"))
    num_rgbs = len(key_indices(sd, r"to_rgbs\.(\d+)\.conv\.weight"))
    num_convs = len(key_indices(sd, r"convs\.(\d+)\.conv\.weight"))
    if n_mlp == 0 or num_convs != 2 * num_rgbs:
        raise LoadError(f"rosinality generator with {num_convs} convs and {num_rgbs} to_rgbs does not fit together")
    size = 2 ** (2 + num_rgbs)
    channels = [int(sd["input.input"].shape[1])]
    for k in range(num_rgbs):
        out_c, in_c = sd[f"convs.{2 * k}.conv.weight"].shape[1:3]
        if in_c != channels[-1]:
            raise LoadError(f"rosinality convs.{2 * k} takes {in_c} channels, the layer before gives {channels[-1]}")
        channels.append(int(out_c))
    # rosinality's Generator passes its blur_kernel to the upsampling convs only: its ToRGBs keep
    # their default [1, 3, 3, 1], so the two can differ (and differ in length).
    conv_blur = _blur_taps(sd["convs.0.conv.blur.kernel"]) if "convs.0.conv.blur.kernel" in sd else [1, 3, 3, 1]
    rgb_blur = _blur_taps(sd["to_rgbs.0.upsample.kernel"]) if "to_rgbs.0.upsample.kernel" in sd else [1, 3, 3, 1]
    return dict(size=size, z_dim=int(sd["style.1.weight"].shape[1]), w_dim=int(sd[f"style.{n_mlp}.weight"].shape[0]),
                n_mlp=n_mlp, channels=channels, img_channels=int(sd["to_rgb1.conv.weight"].shape[1]),
                kernel_size=int(sd["conv1.conv.weight"].shape[-1]), blur=conv_blur, rgb_blur=rgb_blur,
                lr_mlp=mapping_lr_multiplier(sd["style.1.weight"]))


def init_kwargs(cfg):
    """StyleScope StyleGAN2 init kwargs for a rosinality config (skip architecture, no clamp, fp32)."""
    if cfg["kernel_size"] != 3:
        raise LoadError(f"rosinality generator with {cfg['kernel_size']}x{cfg['kernel_size']} convs is not supported")
    synthesis = dict(channel_table=cfg["channels"], architecture="skip", resample_filter=cfg["rgb_blur"],
                     conv_clamp=None, num_fp16_res=0)
    if cfg["blur"] != cfg["rgb_blur"]:
        synthesis["conv_resample_filter"] = cfg["blur"]
    return dict(z_dim=cfg["z_dim"], c_dim=0, w_dim=cfg["w_dim"], img_resolution=cfg["size"],
                img_channels=cfg["img_channels"], flavour="stylegan2-ada",
                mapping_kwargs=dict(num_layers=cfg["n_mlp"], lr_multiplier=cfg["lr_mlp"], layer_features=cfg["w_dim"]),
                synthesis_kwargs=synthesis)


def _styled_conv(out, prefix, sd, src, noise_key):
    """rosinality StyledConv `src` -> our SynthesisLayer `prefix` (scale folded into the weight)."""
    weight = sd[f"{src}.conv.weight"][0]
    fan_in = weight.shape[1] * weight.shape[2] * weight.shape[3]
    out[f"{prefix}.weight"] = weight / math.sqrt(fan_in)
    out[f"{prefix}.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
    out[f"{prefix}.affine.bias"] = sd[f"{src}.conv.modulation.bias"]
    out[f"{prefix}.noise_strength"] = sd[f"{src}.noise.weight"].reshape([])
    out[f"{prefix}.bias"] = sd[f"{src}.activate.bias"]
    if noise_key in sd:
        out[f"{prefix}.noise_const"] = sd[noise_key].reshape(sd[noise_key].shape[-2:])
    if f"{src}.conv.blur.kernel" in sd:  # stored times up**2 = 4; ours is normalised
        out[f"{prefix}.resample_filter"] = sd[f"{src}.conv.blur.kernel"] / 4


def _to_rgb(out, prefix, sd, src):
    """rosinality ToRGB -> our ToRGBLayer (it scales the styles by 1/sqrt(in), as rosinality the weight)."""
    out[f"{prefix}.weight"] = sd[f"{src}.conv.weight"][0]
    out[f"{prefix}.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
    out[f"{prefix}.affine.bias"] = sd[f"{src}.conv.modulation.bias"]
    out[f"{prefix}.bias"] = sd[f"{src}.bias"].reshape(-1)


def generator_state(sd, G):
    """Our state dict for G (built from generator_config) holding the rosinality weights `sd`.

    Missing noise buffers become zeros (then 'const' noise adds nothing); w_avg stays G's own.
    """
    out = {}
    n_mlp = G.mapping.num_layers
    for i in range(n_mlp):
        out[f"mapping.fc{i}.weight"] = sd[f"style.{i + 1}.weight"]
        out[f"mapping.fc{i}.bias"] = sd[f"style.{i + 1}.bias"]
    resolutions = G.synthesis.block_resolutions
    out["synthesis.b4.const"] = sd["input.input"][0]
    _styled_conv(out, "synthesis.b4.conv1", sd, "conv1", "noises.noise_0")
    _to_rgb(out, "synthesis.b4.torgb", sd, "to_rgb1")
    for k, res in enumerate(resolutions[1:]):
        block = f"synthesis.b{res}"
        _styled_conv(out, f"{block}.conv0", sd, f"convs.{2 * k}", f"noises.noise_{2 * k + 1}")
        _styled_conv(out, f"{block}.conv1", sd, f"convs.{2 * k + 1}", f"noises.noise_{2 * k + 2}")
        _to_rgb(out, f"{block}.torgb", sd, f"to_rgbs.{k}")
        if f"to_rgbs.{k}.upsample.kernel" in sd:
            out[f"{block}.resample_filter"] = sd[f"to_rgbs.{k}.upsample.kernel"] / 4
    own = G.state_dict()
    for key, value in own.items():
        if key not in out:
            out[key] = torch.zeros_like(value) if key.endswith("noise_const") else value
    return {k: v.detach().to(torch.float32) for k, v in out.items()}


def load_generator_state(sd, latent_avg=None):
    """(G, notes): a StyleScope StyleGAN2 Generator holding a rosinality g_ema/g state dict.

    `latent_avg` ([w_dim] or [n, w_dim]) is the truncation centre; without one it is estimated.
    """
    cfg = generator_config(sd)
    G = stylegan2.build(init_kwargs(cfg))
    stylegan2.load_state_dict_checked(G, generator_state(sd, G))
    inferred = dict(resolution=cfg["size"], z_dim=cfg["z_dim"], w_dim=cfg["w_dim"], mapping_layers=cfg["n_mlp"],
                    channels=cfg["channels"], blur=cfg["blur"])
    notes = {"inferred": inferred,
             "lr_multiplier": f"{cfg['lr_mlp']} (from the mapping weights' scale)"}
    notes["w_avg"] = set_w_avg(G, latent_avg)
    if not all(f"noises.noise_{i}" in sd for i in range(2 * len(cfg["channels"]) - 1)):
        notes["noise_const"] = "no stored noises.*: 'const' noise is zero"
    return G, notes


def set_w_avg(G, latent_avg):
    """Put the file's latent_avg (or an estimate) into G.mapping.w_avg; say which, for info."""
    if latent_avg is None:
        G.mapping.w_avg.copy_(mean_latent(G))
        return (f"estimated: mean of {MEAN_LATENT_SAMPLES} mapped z, torch seed {MEAN_LATENT_SEED} "
                "(rosinality's mean_latent)")
    rows = torch.as_tensor(latent_avg, dtype=torch.float32).reshape(-1, G.w_dim) if \
        torch.as_tensor(latent_avg).numel() % G.w_dim == 0 else None
    if rows is None or rows.shape[0] == 0:
        raise LoadError(f"latent_avg of shape {list(torch.as_tensor(latent_avg).shape)} does not fit w_dim {G.w_dim}")
    G.mapping.w_avg.copy_(rows.mean(dim=0))
    if rows.shape[0] > 1 and not torch.equal(rows, rows[:1].expand_as(rows)):
        return f"file (latent_avg has {rows.shape[0]} different rows: their mean is used)"
    return "file"


@torch.no_grad()
def mean_latent(G, samples=MEAN_LATENT_SAMPLES, seed=MEAN_LATENT_SEED):
    """rosinality's mean_latent: the mean w of `samples` z drawn after torch.manual_seed(seed) (CPU)."""
    z = torch.randn(samples, G.z_dim, generator=torch.Generator().manual_seed(seed))
    x = ops.normalize_2nd_moment(z)
    for idx in range(G.mapping.num_layers):
        x = getattr(G.mapping, f"fc{idx}")(x)
    return x.mean(dim=0)


# ----------------------------------------------------------------------------
# Discriminator (for feature losses): rosinality's module names, so its state dict loads strictly.


class _Blur(torch.nn.Module):
    def __init__(self, kernel, pad):
        super().__init__()
        self.register_buffer("kernel", kernel.clone())
        self.pad = pad

    def forward(self, x):
        return upfirdn2d.upfirdn2d(x, self.kernel, padding=[self.pad[0], self.pad[1], self.pad[0], self.pad[1]])


class _EqualConv2d(torch.nn.Module):
    def __init__(self, weight, bias, stride, padding):
        super().__init__()
        self.weight = torch.nn.Parameter(weight.clone())
        self.bias = torch.nn.Parameter(bias.clone()) if bias is not None else None
        self.scale = 1 / math.sqrt(weight[0].numel())
        self.stride, self.padding = stride, padding

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class _FusedLeakyReLU(torch.nn.Module):
    def __init__(self, bias):
        super().__init__()
        self.bias = torch.nn.Parameter(bias.clone())

    def forward(self, x):
        return F.leaky_relu(x + self.bias.reshape(1, -1, *[1] * (x.ndim - 2)), 0.2) * math.sqrt(2)


def _conv_layer(sd, prefix):
    """A rosinality ConvLayer (Sequential: [Blur], EqualConv2d, [FusedLeakyReLU]) from its tensors."""
    downsample = f"{prefix}.0.kernel" in sd
    i = 1 if downsample else 0
    weight = sd[f"{prefix}.{i}.weight"]
    k = weight.shape[-1]
    layers = []
    if downsample:
        p = (sd[f"{prefix}.0.kernel"].shape[0] - 2) + (k - 1)
        layers.append(_Blur(sd[f"{prefix}.0.kernel"], ((p + 1) // 2, p // 2)))
    stride, padding = (2, 0) if downsample else (1, k // 2)
    layers.append(_EqualConv2d(weight, sd.get(f"{prefix}.{i}.bias"), stride, padding))
    if f"{prefix}.{i + 1}.bias" in sd:
        layers.append(_FusedLeakyReLU(sd[f"{prefix}.{i + 1}.bias"]))
    return torch.nn.Sequential(*layers)


class _ResBlock(torch.nn.Module):
    def __init__(self, sd, prefix):
        super().__init__()
        self.conv1 = _conv_layer(sd, f"{prefix}.conv1")
        self.conv2 = _conv_layer(sd, f"{prefix}.conv2")
        self.skip = _conv_layer(sd, f"{prefix}.skip")

    def forward(self, x):
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class Discriminator(torch.nn.Module):
    """rosinality's Discriminator rebuilt from its state dict: forward(img) -> logits [N, 1].

    stages(img) gives every stage's output by name ('convs.0' ... 'final_conv', 'final_linear.0');
    features(img) the residual blocks' outputs, full resolution first, as the projector's feature
    loss takes them from every discriminator (renderer/projection.py). Images in [-1, 1], N x C x size x size.
    """

    def __init__(self, sd, stddev_group=4, stddev_feat=1):
        super().__init__()
        if not is_discriminator_state(sd):
            raise LoadError("not a rosinality discriminator state dict")
        num = len(key_indices(sd, r"convs\.(\d+)\..*"))
        blocks = [_ResBlock(sd, f"convs.{i}") for i in range(1, num)]
        self.convs = torch.nn.ModuleList([_conv_layer(sd, "convs.0")] + blocks)
        self.size = 4 * 2 ** (num - 1)
        self.stddev_group, self.stddev_feat = stddev_group, stddev_feat
        self.final_conv = _conv_layer(sd, "final_conv")
        self.final_linear = torch.nn.Sequential(_EqualLinearAct(sd, "final_linear.0"),
                                                _EqualLinearAct(sd, "final_linear.1", act=False))
        self.load_state_dict({k: v.to(torch.float32) for k, v in sd.items()}, strict=True)
        self.eval().requires_grad_(False)

    def _stddev(self, x):
        batch, channel, height, width = x.shape
        group = min(batch, self.stddev_group)
        y = x.view(group, -1, self.stddev_feat, channel // self.stddev_feat, height, width)
        y = torch.sqrt(y.var(0, unbiased=False) + 1e-8).mean([2, 3, 4], keepdim=True).squeeze(2)
        return torch.cat([x, y.repeat(group, 1, height, width)], 1)

    def stages(self, img):
        out = {}
        x = img
        for i, conv in enumerate(self.convs):
            x = out[f"convs.{i}"] = conv(x)
        x = out["final_conv"] = self.final_conv(self._stddev(x))
        x = out["final_linear.0"] = self.final_linear[0](x.reshape(x.shape[0], -1))
        out["logits"] = self.final_linear[1](x)
        return out

    def features(self, img):
        # The residual blocks only (stages' convs.1 ...): convolutions, so any picture size works
        # (the projector gives D its pictures halved) and the size-bound epilogue is not run.
        x, out = img, []
        for conv in self.convs:
            x = conv(x)
            out.append(x)
        return out[1:]

    def forward(self, img):
        return self.stages(img)["logits"]


class _EqualLinearAct(torch.nn.Module):
    def __init__(self, sd, prefix, act=True):
        super().__init__()
        self.weight = torch.nn.Parameter(sd[f"{prefix}.weight"].clone())
        self.bias = torch.nn.Parameter(sd[f"{prefix}.bias"].clone())
        self.scale = 1 / math.sqrt(self.weight.shape[1])  # lr_mul 1 in the discriminator
        self.act = act

    def forward(self, x):
        x = F.linear(x, self.weight * self.scale)
        return F.leaky_relu(x + self.bias, 0.2) * math.sqrt(2) if self.act else x + self.bias


def load_discriminator(path, key="d"):
    """rosinality's Discriminator from a training checkpoint (its 'd' state dict), read safely."""
    from models.safe_pickle import read_pickle

    tree = read_pickle(path)
    if not isinstance(tree, dict) or not isinstance(tree.get(key), dict):
        raise LoadError(f"{path}: no {key!r} discriminator in this checkpoint")
    return Discriminator(tree[key])


__all__ = ["generator_config", "load_generator_state", "mean_latent", "Discriminator", "load_discriminator",
           "is_generator_state", "is_discriminator_state"]
