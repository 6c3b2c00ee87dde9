"""StyleGAN (v1) generator in pure PyTorch (conversion from NVIDIA's TensorFlow pickles: tf_stylegan1.py)."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.errors import RenderCancelled
from models import ops
from models.cache_keys import generator_state
from models.ops import normalize_2nd_moment
from models.stage_cache import StageCache

# G_style's own truncation defaults: `Gs.run(z, None)` is truncated with these unless told otherwise.
DEFAULT_TRUNCATION_PSI = 0.7
DEFAULT_TRUNCATION_CUTOFF = 8

LRELU_SLOPE = 0.2
EPSILON = 1e-8


def _activation(x, nonlinearity):
    if nonlinearity == "relu":
        return F.relu(x)
    return F.leaky_relu(x, LRELU_SLOPE)


def _weight_gains(fan_in, gain, use_wscale, lrmul):
    """(runtime weight multiplier, runtime bias multiplier) of TF's equalized learning rate."""
    if use_wscale:
        return gain / math.sqrt(fan_in) * lrmul, lrmul
    return lrmul, lrmul


def instance_norm(x):
    x = x - x.mean(dim=(2, 3), keepdim=True)
    return x * torch.rsqrt(x.square().mean(dim=(2, 3), keepdim=True) + EPSILON)


def upsample_nearest2x(x):
    return x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


def fused_upscale_kernel(weight):
    """The 4x4 transposed-conv kernel [in, out, 4, 4] TF's fused upscale builds from a 3x3 one.

    `weight` is the scaled conv weight [out, in, 3, 3]. TF zero-pads it to 5x5 and sums the four
    one-pixel-shifted 4x4 windows, then uses it in conv2d_transpose (stride 2).
    """
    padded = F.pad(weight, (1, 1, 1, 1))
    summed = padded[:, :, 1:, 1:] + padded[:, :, :-1, 1:] + padded[:, :, 1:, :-1] + padded[:, :, :-1, :-1]
    return summed.transpose(0, 1)


def fused_upscale_conv2d(x, weight):
    """TF's fused 2x upscale + 3x3 conv (stride-2 transposed conv, 'SAME' padding) -> [N, out, 2H, 2W]."""
    return F.conv_transpose2d(x, fused_upscale_kernel(weight), stride=2, padding=1)


class DenseLayer(nn.Module):
    """Fully connected layer with TF's equalized learning rate; optional activation."""

    output_offset = None  # tensor [out_features] added to the output (set by models.style_space)

    def __init__(self, in_features, out_features, gain, use_wscale=True, lrmul=1.0, nonlinearity=None):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.nonlinearity = nonlinearity
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.weight_gain, self.bias_gain = _weight_gains(in_features, gain, use_wscale, lrmul)

    def forward(self, x):
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
        if self.nonlinearity is not None:
            x = _activation(x, self.nonlinearity)
        # A style layer's affine: StyleSpace edits add to its outputs (models/style_space.py).
        return x if self.output_offset is None else x + self.output_offset.to(x.dtype)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, nonlinearity={self.nonlinearity}"


class LabelEmbedding(nn.Module):
    """TF's LabelConcat: labels times a plain (unscaled) matrix, concatenated to z before the norm."""

    def __init__(self, c_dim, z_dim):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(z_dim, c_dim))

    def forward(self, c):
        return F.linear(c, self.weight)


class MappingNetwork(nn.Module):
    """z (+ labels) -> w, broadcast to every synthesis layer, with W-space truncation around w_avg."""

    def __init__(self, z_dim, c_dim, w_dim, num_ws, mapping_layers=8, mapping_fmaps=512,
                 mapping_lrmul=0.01, mapping_nonlinearity="lrelu", normalize_latents=True, use_wscale=True):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.normalize_latents = normalize_latents
        self.num_layers = mapping_layers
        if c_dim:
            self.embed = LabelEmbedding(c_dim, z_dim)
        in_features = z_dim * 2 if c_dim else z_dim
        for idx in range(mapping_layers):
            out_features = w_dim if idx == mapping_layers - 1 else mapping_fmaps
            layer = DenseLayer(in_features, out_features, gain=math.sqrt(2), use_wscale=use_wscale,
                               lrmul=mapping_lrmul, nonlinearity=mapping_nonlinearity)
            setattr(self, f"fc{idx}", layer)
            in_features = out_features
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z, c=None, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        x = z.to(torch.float32)
        if self.c_dim:
            if c is None or c.shape[-1] != self.c_dim:
                raise ValueError(f"this generator needs labels c of shape [N, {self.c_dim}]")
            x = torch.cat([x, self.embed(c.to(torch.float32))], dim=1)
        if self.normalize_latents:
            x = normalize_2nd_moment(x, dim=1, eps=EPSILON)
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        # NVIDIA's PyTorch convention: psi 1 means no truncation, cutoff None means every layer.
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else int(truncation_cutoff)
            ws = ws.clone()
            ws[:, :cutoff] = self.w_avg + (ws[:, :cutoff] - self.w_avg) * truncation_psi
        return ws


class SynthesisLayer(nn.Module):
    """One StyleGAN layer: input op (const / dense / conv / up-conv + blur) then the epilogue.

    Epilogue: + noise * per-channel strength, + bias, activation, [pixel norm], [instance norm],
    style modulation x * (scale + 1) + shift from an affine map of this layer's w.
    The module's output is the style-modulated activation (TF's `<layer>/StyleMod` output).
    """

    def __init__(self, kind, in_channels, out_channels, resolution, w_dim, use_noise=True,
                 nonlinearity="lrelu", use_wscale=True, use_pixel_norm=False, use_instance_norm=True,
                 fused=False, blur_filter=None):
        super().__init__()
        assert kind in ("const", "dense", "conv", "conv_up")
        self.kind = kind
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.use_noise = use_noise
        self.nonlinearity = nonlinearity
        self.use_pixel_norm = use_pixel_norm
        self.use_instance_norm = use_instance_norm
        self.fused = fused
        gain = math.sqrt(2)
        if kind == "const":
            self.const = nn.Parameter(torch.ones(out_channels, 4, 4))
        elif kind == "dense":
            # TF divides the gain by 4 here to match Progressive GAN's first layer.
            self.weight = nn.Parameter(torch.randn(out_channels * 16, w_dim))
            self.weight_gain, _ = _weight_gains(w_dim, gain / 4, use_wscale, 1.0)
        else:
            self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
            self.weight_gain, _ = _weight_gains(in_channels * 9, gain, use_wscale, 1.0)
        if kind == "conv_up" and blur_filter:
            f = torch.tensor(blur_filter, dtype=torch.float32)
            f = f[:, None] * f[None, :] if f.ndim == 1 else f
            self.register_buffer("blur_kernel", f / f.sum(), persistent=False)
        else:
            self.blur_kernel = None
        if use_noise:
            self.noise_strength = nn.Parameter(torch.zeros(out_channels))
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.affine = DenseLayer(w_dim, out_channels * 2, gain=1.0, use_wscale=use_wscale)

    def conv(self, x, w):
        """The layer's input op, before blur and epilogue."""
        if self.kind == "const":
            return self.const.unsqueeze(0).expand(w.shape[0], -1, -1, -1)
        weight = self.weight * self.weight_gain
        if self.kind == "dense":
            return F.linear(w, weight).reshape(w.shape[0], self.out_channels, 4, 4)
        if self.kind == "conv":
            return F.conv2d(x, weight, padding=1)
        if self.fused:
            return fused_upscale_conv2d(x, weight)
        return F.conv2d(upsample_nearest2x(x), weight, padding=1)

    def blur(self, x):
        if self.blur_kernel is None:
            return x
        kernel = self.blur_kernel.to(x.dtype)
        kh, kw = kernel.shape
        # TF 'SAME' at stride 1 pads k - 1 in all, the smaller half first (matters for even filters).
        x = F.pad(x, ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2))
        # TF's depthwise_conv2d and F.conv2d are both correlations: use the kernel as given.
        weight = kernel[None, None].expand(x.shape[1], 1, kh, kw)
        return F.conv2d(x, weight, groups=x.shape[1])

    def forward(self, x, w, noise_mode="const", noise_strength=1.0, noise_generator=None):
        x = self.blur(self.conv(x, w))
        if self.use_noise and noise_mode != "none" and noise_strength != 0:
            if noise_mode == "random":
                shape = (x.shape[0], 1, self.resolution, self.resolution)
                device = noise_generator.device if noise_generator is not None else x.device
                noise = torch.randn(shape, generator=noise_generator, device=device).to(x.device, x.dtype)
            elif noise_mode == "const":
                noise = self.noise_const[None, None]
            else:
                raise ValueError(f"unknown noise_mode {noise_mode!r}")
            x = x + noise * (self.noise_strength * noise_strength).reshape(1, -1, 1, 1)
        x = x + self.bias.reshape(1, -1, 1, 1)
        x = _activation(x, self.nonlinearity)
        if self.use_pixel_norm:
            x = normalize_2nd_moment(x, dim=1, eps=EPSILON)
        if self.use_instance_norm:
            x = instance_norm(x)
        style = self.affine(w).reshape(-1, 2, self.out_channels, 1, 1)
        return x * (style[:, 0] + 1) + style[:, 1]

    def skip_noise(self, noise_mode, noise_strength, noise_generator):
        """Draw the random noise forward() would, and drop it (a pass that reuses this layer's output
        keeps the later layers' draws where they were)."""
        if self.use_noise and noise_mode == "random" and noise_strength != 0 and noise_generator is not None:
            torch.randn((1, 1, self.resolution, self.resolution), generator=noise_generator,
                        device=noise_generator.device)

    def extra_repr(self):
        return (f"kind={self.kind}, in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"resolution={self.resolution}, fused={self.fused}")


class ToRGBLayer(nn.Module):
    """1x1 conv (gain 1) + bias: features -> image. No style, noise or activation."""

    def __init__(self, in_channels, img_channels, use_wscale=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(img_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(img_channels))
        self.weight_gain, _ = _weight_gains(in_channels, 1.0, use_wscale, 1.0)

    def forward(self, x):
        return ops.conv1x1(x, self.weight * self.weight_gain, self.bias)  # the same bits at any thread count


class SynthesisBlock(nn.Module):
    """Two layers at one resolution (4x4: const|dense + conv; else conv0_up + conv1), plus a ToRGB."""

    def __init__(self, resolution, in_channels, out_channels, w_dim, img_channels, has_torgb, fused_scale,
                 const_input_layer=True, blur_filter=None, use_wscale=True, **layer_kwargs):
        super().__init__()
        self.resolution = resolution
        layer_kwargs = dict(layer_kwargs, use_wscale=use_wscale)
        if resolution == 4:
            first = "const" if const_input_layer else "dense"
            self.layer_names = [first, "conv"]
            setattr(self, first, SynthesisLayer(first, 0, out_channels, 4, w_dim, **layer_kwargs))
            self.conv = SynthesisLayer("conv", out_channels, out_channels, 4, w_dim, **layer_kwargs)
        else:
            # TF's fused_scale='auto': fused transposed conv iff the input is at least 64 px.
            fused = resolution >= 128 if fused_scale == "auto" else bool(fused_scale)
            self.layer_names = ["conv0_up", "conv1"]
            self.conv0_up = SynthesisLayer("conv_up", in_channels, out_channels, resolution, w_dim,
                                           fused=fused, blur_filter=blur_filter, **layer_kwargs)
            self.conv1 = SynthesisLayer("conv", out_channels, out_channels, resolution, w_dim, **layer_kwargs)
        if has_torgb:
            self.torgb = ToRGBLayer(out_channels, img_channels, use_wscale=use_wscale)

    def forward(self, x, ws, noise_strengths=(1.0, 1.0), **layer_kwargs):
        for idx, name in enumerate(self.layer_names):
            x = getattr(self, name)(x, ws[:, idx], noise_strength=noise_strengths[idx], **layer_kwargs)
        return x


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, C, H, W], StyleGAN v1 layout."""

    def __init__(self, w_dim, img_resolution, img_channels, fmap_base=8192, fmap_decay=1.0, fmap_max=512,
                 const_input_layer=True, use_noise=True, nonlinearity="lrelu", use_wscale=True,
                 use_pixel_norm=False, use_instance_norm=True, fused_scale="auto", blur_filter=(1, 2, 1),
                 progressive_torgb=True):
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        log2 = int(round(math.log2(img_resolution)))
        self.resolution_log2 = log2
        self.block_resolutions = [2 ** r for r in range(2, log2 + 1)]
        self.num_ws = 2 * log2 - 2
        # w index i feeds layer i, whose output resolution is 2 ** (i // 2 + 2).
        self.ws_resolutions = [2 ** (i // 2 + 2) for i in range(self.num_ws)]

        def nf(stage):
            return min(int(fmap_base / (2.0 ** (stage * fmap_decay))), fmap_max)

        layer_kwargs = dict(use_noise=use_noise, nonlinearity=nonlinearity, use_pixel_norm=use_pixel_norm,
                            use_instance_norm=use_instance_norm)
        for res_log2, res in zip(range(2, log2 + 1), self.block_resolutions):
            block = SynthesisBlock(res, nf(res_log2 - 2), nf(res_log2 - 1), w_dim, img_channels,
                                   has_torgb=progressive_torgb or res == img_resolution, fused_scale=fused_scale,
                                   const_input_layer=const_input_layer, blur_filter=blur_filter,
                                   use_wscale=use_wscale, **layer_kwargs)
            setattr(self, f"b{res}", block)
        # Progressive-growing level of detail; 0 in release pickles (only the final ToRGB counts).
        self.register_buffer("lod", torch.zeros(()))

    def layer_names(self):
        """Names (relative to synthesis) of the style layers, in w order."""
        return [f"b{res}.{name}" for res in self.block_resolutions for name in getattr(self, f"b{res}").layer_names]

    def style_affines(self):
        """[(layer name, affine, w index)] of the style layers in w order: the affine gives each
        layer's AdaIN scales (first half) and shifts (second half) from its w (SeFa, StyleSpace)."""
        names = self.layer_names()
        return [(name, self.get_submodule(name).affine, index) for index, name in enumerate(names)]

    def forward(self, ws, noise_mode="const", force_fp32=True, noise_strength=1.0, noise_generator=None,
                should_stop=None, block_cache=None, **ignored):
        """block_cache: a models.stage_cache.StageCache owned by the caller (new_cache); the pass starts at
        the last block input it kept whose upstream is unchanged (forward hooks of the blocks before do not fire)."""
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        ws = ws.to(torch.float32)
        # Blending needs a ToRGB per level; 'fixed' networks have none (and never grow).
        lod = float(self.lod) if hasattr(self.b4, "torgb") else 0.0
        use_cache = block_cache is not None and lod == 0 and block_cache.applies(ws, noise_mode, noise_generator)
        cache = block_cache if use_cache else None
        start, x, img = 0, None, None
        if cache is not None:
            keys = self.stage_keys(ws, noise_mode, noise_strength, noise_generator, force_fp32)
            start, x = cache.resume(self, keys)
            for res in self.block_resolutions[:start]:  # the noise the skipped blocks would have drawn
                block = getattr(self, f"b{res}")
                for name in block.layer_names:
                    getattr(block, name).skip_noise(noise_mode, _strength_for(noise_strength, f"b{res}.{name}"),
                                                    noise_generator)
            if start == len(self.block_resolutions):
                return x.clone()  # nothing changed: the kept image (the caller may write into its copy)
        for block_idx in range(start, len(self.block_resolutions)):
            res = self.block_resolutions[block_idx]
            if should_stop is not None and should_stop():
                raise RenderCancelled()
            block = getattr(self, f"b{res}")
            strengths = [_strength_for(noise_strength, f"b{res}.{name}") for name in block.layer_names]
            if cache is not None:
                cache.stages_run += 1  # counted first: a capture may stop inside the block
            x = block(x, ws[:, 2 * block_idx: 2 * block_idx + 2], noise_strengths=strengths,
                      noise_mode=noise_mode, noise_generator=noise_generator)
            if cache is not None:
                if block_idx + 1 < len(self.block_resolutions):
                    cache.computed(block_idx + 1, x)
            if lod > 0:
                # Mid-training snapshot: TF's 'linear' structure blends each ToRGB into the
                # upscaled lower-resolution image by clip(lod - level, 0, 1).
                level_img = block.torgb(x)
                if img is None:
                    img = level_img
                else:
                    t = min(max(lod - (self.resolution_log2 - (block_idx + 2)), 0.0), 1.0)
                    img = upsample_nearest2x(img)
                    img = level_img + (img - level_img) * t
        if lod > 0:
            return img
        img = getattr(self, f"b{self.img_resolution}").torgb(x)
        if cache is not None:
            cache.computed(len(self.block_resolutions), img)
            return img.clone()
        return img

    def stage_resolutions(self):
        """The feature resolution after each stage (block) a partial pass can stop at (run_stages)."""
        return list(self.block_resolutions)

    def run_stages(self, ws, start, stop, carry=None, noise_mode="const", noise_strength=1.0,
                   noise_generator=None, **_ignored):
        """Blocks start..stop-1 of a pass (lod 0), from `carry` ((features, None) after block start-1;
        None for start 0), returning (features, image): the image only after the last block.
        Differentiable (a drag's backward then reaches only the blocks it ran)."""
        x = carry[0] if carry is not None else None
        ws = ws.to(torch.float32)
        for block_idx in range(start, stop):
            res = self.block_resolutions[block_idx]
            block = getattr(self, f"b{res}")
            strengths = [_strength_for(noise_strength, f"b{res}.{name}") for name in block.layer_names]
            x = block(x, ws[:, 2 * block_idx: 2 * block_idx + 2], noise_strengths=strengths,
                      noise_mode=noise_mode, noise_generator=noise_generator)
        last = stop == len(self.block_resolutions)
        return x, (getattr(self, f"b{self.img_resolution}").torgb(x) if last else None)

    def new_cache(self):
        """The cache of this network's passes that the caller keeps (block_cache=): kept stage inputs."""
        return StageCache()

    def checkpoint_plan(self):
        """For the block cache: each block's estimated cost (multiply-adds of its convolutions, and
        of its per-value epilogue) and the bytes of its input."""
        costs, sizes = [], []
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            layers = [getattr(block, name) for name in block.layer_names]
            costs.append(sum(res * res * layer.out_channels * (9 * layer.in_channels + 20) for layer in layers))
            sizes.append(4 * layers[0].in_channels * (res // 2) ** 2 if res > 4 else 0)
        return costs, sizes

    def checkpoint_stages(self):
        """For the block cache: the module of each stage (block), in pass order."""
        return [getattr(self, f"b{res}") for res in self.block_resolutions]

    def stage_keys(self, ws, noise_mode="const", noise_strength=1.0, noise_generator=None, force_fp32=True,
                   **_ignored):
        """What decides each block of a batch-1 pass, for the block cache: [the pass's settings (the
        noise mode, the random generator's state), then per block its two w rows, noise strengths and
        style offsets]."""
        state = generator_state(noise_generator) if noise_mode == "random" and noise_generator is not None else None
        keys = [(noise_mode, state, bool(force_fp32))]
        rows = ws[0].to(torch.float32)
        for index, res in enumerate(self.block_resolutions):
            block = getattr(self, f"b{res}")
            strengths = tuple(_strength_for(noise_strength, f"b{res}.{name}") for name in block.layer_names)
            offsets = tuple(getattr(block, name).affine.output_offset for name in block.layer_names)
            keys.append((rows[2 * index], rows[2 * index + 1], strengths, offsets))
        return keys


def _strength_for(noise_strength, name):
    if isinstance(noise_strength, dict):
        return float(noise_strength.get(name, 1.0))
    return float(noise_strength)


class Generator(nn.Module):
    """StyleGAN (v1) generator with NVIDIA's PyTorch G_ema calling convention."""

    cache_kind = "stages"  # the family interface (models/family.py)

    @property
    def preview_kind(self):
        return "level_torgb" if hasattr(getattr(self.synthesis, "b4", None), "torgb") else None

    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_layers=8, mapping_fmaps=512,
                 mapping_lrmul=0.01, mapping_nonlinearity="lrelu", normalize_latents=True, fmap_base=8192,
                 fmap_decay=1.0, fmap_max=512, const_input_layer=True, use_noise=True, nonlinearity="lrelu",
                 use_wscale=True, use_pixel_norm=False, use_instance_norm=True, fused_scale="auto",
                 blur_filter=(1, 2, 1), progressive_torgb=True):
        super().__init__()
        self.init_kwargs = dict(
            z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
            mapping_layers=mapping_layers, mapping_fmaps=mapping_fmaps, mapping_lrmul=mapping_lrmul,
            mapping_nonlinearity=mapping_nonlinearity, normalize_latents=normalize_latents,
            fmap_base=fmap_base, fmap_decay=fmap_decay, fmap_max=fmap_max, const_input_layer=const_input_layer,
            use_noise=use_noise, nonlinearity=nonlinearity, use_wscale=use_wscale, use_pixel_norm=use_pixel_norm,
            use_instance_norm=use_instance_norm, fused_scale=fused_scale,
            blur_filter=list(blur_filter) if blur_filter else None, progressive_torgb=progressive_torgb)
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.architecture = "stylegan"
        self.synthesis = SynthesisNetwork(
            w_dim, img_resolution, img_channels, fmap_base=fmap_base, fmap_decay=fmap_decay, fmap_max=fmap_max,
            const_input_layer=const_input_layer, use_noise=use_noise, nonlinearity=nonlinearity,
            use_wscale=use_wscale, use_pixel_norm=use_pixel_norm, use_instance_norm=use_instance_norm,
            fused_scale=fused_scale, blur_filter=blur_filter, progressive_torgb=progressive_torgb)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim, c_dim, w_dim, self.num_ws, mapping_layers=mapping_layers, mapping_fmaps=mapping_fmaps,
            mapping_lrmul=mapping_lrmul, mapping_nonlinearity=mapping_nonlinearity,
            normalize_latents=normalize_latents, use_wscale=use_wscale)
        self.info = {
            "format": "stylescope-safetensors",
            "architecture": "stylegan",
            "variant": "stylegan",
            "init_kwargs": dict(self.init_kwargs),
            "default_truncation_psi": DEFAULT_TRUNCATION_PSI,
            "default_truncation_cutoff": DEFAULT_TRUNCATION_CUTOFF,
        }

    def forward(self, z, c=None, truncation_psi=1, truncation_cutoff=None, noise_mode="const",
                update_emas=False, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, **synthesis_kwargs)


def build(init_kwargs):
    """An empty (randomly initialised) generator in eval mode, e.g. to load a saved state dict into."""
    G = Generator(**init_kwargs)
    return G.eval().requires_grad_(False)
