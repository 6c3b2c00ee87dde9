"""A tiny generator that follows the models/ contract, for fast renderer and worker tests."""

import time

import torch
from torch import nn

from models.block_cache import BlockCache
from models.errors import RenderCancelled


class StandinMapping(nn.Module):
    def __init__(self, z_dim, c_dim, w_dim, num_ws):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        gen = torch.Generator().manual_seed(1)
        self.fc = nn.Linear(z_dim + c_dim, w_dim)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(w_dim, z_dim + c_dim, generator=gen) * 0.3)
        self.register_buffer("w_avg", torch.randn(w_dim, generator=gen) * 0.1)
        self.calls = 0

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        self.calls += 1
        x = self.fc(torch.cat([z.to(torch.float32), c.to(torch.float32)], dim=1))
        x = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            x[:, :cutoff] = self.w_avg.lerp(x[:, :cutoff], truncation_psi)
        return x


class StandinLayer(nn.Module):
    def __init__(self, in_channels, out_channels, w_dim, resolution, up):
        super().__init__()
        self.up, self.resolution = up, resolution
        self.affine = nn.Linear(w_dim, in_channels)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1) * 0.5)
        self.noise_strength = nn.Parameter(torch.tensor(0.3))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))

    def forward(self, x, w, noise_mode, strength, generator):
        if self.up:
            x = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
        styles = self.affine(w) + 1
        x = nn.functional.conv2d(x * styles[:, :, None, None], self.weight)
        if noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, generator=generator)
            x = x + noise * self.noise_strength * strength
        elif noise_mode == "const":
            x = x + self.noise_const * self.noise_strength * strength
        return torch.tanh(x)


class StandinToRGB(nn.Module):
    def __init__(self, in_channels, w_dim):
        super().__init__()
        self.affine = nn.Linear(w_dim, in_channels)
        self.weight = nn.Parameter(torch.randn(3, in_channels, 1, 1) * 0.3)

    def forward(self, x, w):
        return nn.functional.conv2d(x * (self.affine(w) + 1)[:, :, None, None], self.weight)


class StandinBlock(nn.Module):
    def __init__(self, in_channels, out_channels, w_dim, resolution):
        super().__init__()
        self.resolution = resolution
        if resolution > 4:
            self.conv0 = StandinLayer(in_channels, out_channels, w_dim, resolution, up=True)
        self.conv1 = StandinLayer(out_channels, out_channels, w_dim, resolution, up=False)
        self.torgb = StandinToRGB(out_channels, w_dim)
        self.num_conv = 1 if resolution == 4 else 2

    def forward(self, x, img, ws, noise_mode, strengths, generator, name):
        layers = ["conv1"] if self.resolution == 4 else ["conv0", "conv1"]
        for i, layer in enumerate(layers):
            strength = strengths.get(f"{name}.{layer}", 1.0) if isinstance(strengths, dict) else strengths
            x = getattr(self, layer)(x, ws[:, i], noise_mode, strength, generator)
        y = self.torgb(x, ws[:, len(layers)])
        img = y if img is None else nn.functional.interpolate(img, scale_factor=2, mode="nearest") + y
        return x, img


class StandinSynthesis(nn.Module):
    def __init__(self, w_dim, resolution, channels, block_delay):
        super().__init__()
        self.resolution, self.block_delay = resolution, block_delay
        self.const = nn.Parameter(torch.randn(channels, 4, 4))
        self.block_resolutions = [2**i for i in range(2, resolution.bit_length())]
        for res in self.block_resolutions:
            setattr(self, f"b{res}", StandinBlock(channels, channels, w_dim, res))
        self.ws_resolutions = [r for r in self.block_resolutions for _ in range(2)]
        self.num_ws = len(self.ws_resolutions)
        self.blocks_run = 0  # for tests: how far passes got

    def new_cache(self):
        """A cache the renderer keeps for this network; its passes ignore it (block_cache= is unused)."""
        return BlockCache()

    def forward(self, ws, noise_mode="const", force_fp32=True, noise_strength=1.0, noise_generator=None,
                should_stop=None, **ignored):
        x = self.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
        img = None
        for i, res in enumerate(self.block_resolutions):
            if should_stop is not None and should_stop():
                raise RenderCancelled()
            if self.block_delay:
                time.sleep(self.block_delay)
            block_ws = ws[:, 2 * i - 1 if i else 0:]
            x, img = getattr(self, f"b{res}")(x, img, block_ws, noise_mode, noise_strength, noise_generator, f"b{res}")
            self.blocks_run += 1
        return img


class StandinGenerator(nn.Module):
    """Skip-architecture StyleGAN2 look-alike: blocks b4..bR with conv0/conv1/torgb."""

    preview_kind = "accumulated"  # the family interface (models/family.py), as a skip StyleGAN2's
    cache_kind = "blocks"

    def __init__(self, resolution=32, z_dim=8, w_dim=8, c_dim=0, channels=4, block_delay=0.0, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.synthesis = StandinSynthesis(w_dim, resolution, channels, block_delay)
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.num_ws, self.img_resolution, self.img_channels = self.synthesis.num_ws, resolution, 3
        self.mapping = StandinMapping(z_dim, c_dim, w_dim, self.num_ws)
        self.architecture = "stylegan2"
        self.info = {"format": "standin", "architecture": "stylegan2", "variant": "skip", "init_kwargs": {}}
        self.eval().requires_grad_(False)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, **synthesis_kwargs)


def standin_loader(**generator_kwargs):
    """A Renderer `load` callable that builds (and remembers) stand-in generators."""
    built = []

    def load(path, device="cpu"):
        if "broken" in str(path):
            from models.errors import LoadError

            raise LoadError(f"{path}: not a network file")
        G = StandinGenerator(**generator_kwargs).to(device)
        built.append(G)
        return G

    load.built = built
    return load


def nudged_stylegan2(seed):
    """A real 64 px StyleGAN2 (skip) with every parameter nudged off its init, so noise and biases matter."""
    from models.stylegan2 import Generator

    torch.manual_seed(seed)
    G = Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=64, img_channels=3,
                  synthesis_kwargs=dict(channel_base=512, channel_max=16))
    with torch.no_grad():
        for param in G.parameters():
            param.add_(torch.randn_like(param) * 0.1)
        G.mapping.w_avg.normal_(0, 0.3)
    return G.eval().requires_grad_(False)


def renderer_for(G, **kwargs):
    """A Renderer whose loader hands out this in-process network for any path."""
    from renderer.renderer import Renderer

    return Renderer("cpu", load=lambda path, device="cpu": G, **kwargs)
