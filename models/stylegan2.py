"""StyleGAN2 generator (stylegan2-ada-pytorch and the stylegan3 repo's networks_stylegan2), NVIDIA's names."""

import copy

import numpy as np
import torch

from models import family, fast_stylegan2, fused_grad, ops, reduced_stylegan2, upfirdn2d
from models.block_cache import BlockCache
from models.errors import LoadError, RenderCancelled

# The two NVIDIA code bases differ only in defaults and in how fp16 behaves; everything else is shared.
FLAVOURS = ("stylegan2-ada", "stylegan3")
FLAVOUR_DEFAULTS = {
    # stylegan2-ada-pytorch training/networks.py
    "stylegan2-ada": dict(num_fp16_res=0, conv_clamp=None, w_avg_beta=0.995),
    # stylegan3 training/networks_stylegan2.py
    "stylegan3": dict(num_fp16_res=4, conv_clamp=256, w_avg_beta=0.998),
}


def _check_stop(should_stop):
    """Raise RenderCancelled when the caller no longer wants this pass."""
    if should_stop is not None and should_stop():
        raise RenderCancelled("synthesis cancelled")


def _whole_blocks(settings):
    """run_block for SynthesisNetwork.run_blocks: each block's own forward, hooks and all."""
    return lambda res, block, x, img, cur_ws: block(x, img, cur_ws, **settings)


# ----------------------------------------------------------------------------


class MappingNetwork(torch.nn.Module):
    """z (and label c) -> w through an MLP, broadcast to num_ws copies, truncated toward w_avg."""

    def __init__(self, z_dim, c_dim, w_dim, num_ws, num_layers=8, embed_features=None, layer_features=None,
                 activation="lrelu", lr_multiplier=0.01, w_avg_beta=0.998, label_concat=False):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        # label_concat: the TF StyleGAN2 way, labels embedded by a bias-free raw matmul into z space
        # and normalised together with z (instead of separately).
        self.label_concat = bool(label_concat) and c_dim > 0

        if self.label_concat:
            embed_features = z_dim
        elif embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]

        if c_dim > 0:
            self.embed = ops.FullyConnectedLayer(c_dim, embed_features, bias=not self.label_concat)
            if self.label_concat:
                self.embed.weight_gain = 1.0  # TF's LabelConcat weight is used as stored
        for idx in range(num_layers):
            layer = ops.FullyConnectedLayer(features[idx], features[idx + 1], activation=activation,
                                            lr_multiplier=lr_multiplier)
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z, c=None, truncation_psi=1, truncation_cutoff=None, update_emas=False, **_ignored):
        x = None
        if self.label_concat:
            y = self.embed(c.to(torch.float32))
            x = ops.normalize_2nd_moment(torch.cat([z.to(torch.float32), y], dim=1))
        else:
            if self.z_dim > 0:
                x = ops.normalize_2nd_moment(z.to(torch.float32))
            if self.c_dim > 0:
                y = ops.normalize_2nd_moment(self.embed(c.to(torch.float32)))
                x = torch.cat([x, y], dim=1) if x is not None else y

        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)

        if update_emas and self.w_avg_beta is not None:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])

        if truncation_psi != 1:
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x

    def extra_repr(self):
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"


class SynthesisLayer(torch.nn.Module):
    """Modulated 3x3 convolution (optionally 2x upsampling), noise, bias, lrelu and clamp."""

    fast = False  # True: models/fast_stylegan2.py where it applies (Generator.set_reference)

    def __init__(self, in_channels, out_channels, w_dim, resolution, kernel_size=3, up=1, use_noise=True,
                 activation="lrelu", resample_filter=(1, 3, 3, 1), conv_clamp=None, channels_last=False,
                 layer_name=""):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.layer_name = layer_name  # name relative to synthesis, e.g. 'b16.conv1' (noise_strength dict key)
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.act_gain = ops.activation_gain(activation)

        self.affine = ops.FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        self.weight = torch.nn.Parameter(weight)
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def noise_multiplier(self, noise_strength):
        """The user's multiplier for this layer: a float for all layers, or a dict by layer name (missing = 1)."""
        if isinstance(noise_strength, dict):
            return float(noise_strength.get(self.layer_name, 1.0))
        return float(noise_strength)

    def _noise(self, x, noise_mode, noise_strength, noise_generator):
        """The noise image to add, or None."""
        if not self.use_noise or noise_mode == "none":
            return None
        multiplier = self.noise_multiplier(noise_strength)
        if multiplier == 0:
            return None
        strength = self.noise_strength if multiplier == 1 else self.noise_strength * multiplier
        if noise_mode == "const":
            return self.noise_const * strength
        shape = [x.shape[0], 1, self.resolution, self.resolution]
        if noise_generator is not None:
            noise = torch.randn(shape, generator=noise_generator, device=noise_generator.device).to(x.device)
        else:
            noise = torch.randn(shape, device=x.device)
        return noise * strength

    def forward(self, x, w, noise_mode="random", fused_modconv=True, gain=1, noise_strength=1.0,
                noise_generator=None):
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none', not {noise_mode!r}")
        noise = self._noise(x, noise_mode, noise_strength, noise_generator)
        if self.fast and fast_stylegan2.usable(x, w, self) and fast_stylegan2.layer_usable(self):
            return fast_stylegan2.synthesis_layer(self, x, w, noise, gain=gain)
        if not fused_modconv and fused_grad.applies(self, x, w, noise):  # projection, drag: one pass each way
            return fused_grad.synthesis_layer(self, x, w, noise, gain=gain)
        styles = self.affine(w)
        flip_weight = self.up == 1  # correlation is the cheaper path when not upsampling
        x = ops.modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                                 resample_filter=self.resample_filter, flip_weight=flip_weight,
                                 fused_modconv=fused_modconv)
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return ops.bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=act_gain, clamp=act_clamp)

    def extra_repr(self):
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, w_dim={self.w_dim}, "
                f"resolution={self.resolution}, up={self.up}, activation={self.activation}")


class ToRGBLayer(torch.nn.Module):
    """Modulated 1x1 convolution to image channels, without demodulation."""

    fast = False  # True: models/fast_stylegan2.py (Generator.set_reference)

    def __init__(self, in_channels, out_channels, w_dim, kernel_size=1, conv_clamp=None, channels_last=False):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.conv_clamp = conv_clamp
        self.affine = ops.FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        self.weight = torch.nn.Parameter(weight)
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size ** 2))

    def forward(self, x, w, fused_modconv=True):
        if self.fast and fast_stylegan2.usable(x, w, self):
            return fast_stylegan2.torgb(self, x, w)
        if not fused_modconv and fused_grad.torgb_applies(self, x, w):  # projection, drag: modulate the weight
            return fused_grad.torgb(self, x, w)
        styles = self.affine(w) * self.weight_gain
        x = ops.modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return ops.bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)

    def extra_repr(self):
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}, w_dim={self.w_dim}"


class SynthesisBlock(torch.nn.Module):
    """One resolution: const or 2x-upsampling conv0, conv1, and ToRGB / skip as the architecture says."""

    fast = False  # True: channels-last activations and a cheap image upsampling (Generator.set_reference)

    def __init__(self, in_channels, out_channels, w_dim, resolution, img_channels, is_last, architecture="skip",
                 resample_filter=(1, 3, 3, 1), conv_clamp=None, use_fp16=False, fp16_channels_last=False,
                 fused_modconv_default=None, conv_resample_filter=None, **layer_kwargs):
        """conv_resample_filter: conv0's upsampling filter where it differs from the image's (rosinality)."""
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"unsupported StyleGAN2 architecture {architecture!r}")
        super().__init__()
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        # None = stylegan2-ada's rule; True/False/'inference_only' = the stylegan3 repo's setting.
        self.fused_modconv_default = fused_modconv_default
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(list(resample_filter)))
        self.num_conv = 0
        self.num_torgb = 0

        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim=w_dim, resolution=resolution, up=2,
                                        resample_filter=conv_resample_filter or resample_filter, conv_clamp=conv_clamp,
                                        channels_last=self.channels_last, layer_name=f"b{resolution}.conv0",
                                        **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim=w_dim, resolution=resolution,
                                    conv_clamp=conv_clamp, channels_last=self.channels_last,
                                    layer_name=f"b{resolution}.conv1", **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp,
                                    channels_last=self.channels_last)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = ops.Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                        resample_filter=resample_filter, channels_last=self.channels_last)

    def _fused_modconv(self, fused_modconv, dtype, batch_size):
        """Whether to run the modulated convs as one grouped conv (both repos: yes in eval mode)."""
        if fused_modconv is not None:
            return fused_modconv
        if self.fused_modconv_default is None:
            return (not self.training) and (dtype == torch.float32 or batch_size == 1)
        if self.fused_modconv_default == "inference_only":
            return not self.training
        return bool(self.fused_modconv_default)

    def forward(self, x, img, ws, force_fp32=True, fused_modconv=None, noise_mode="const", noise_strength=1.0,
                noise_generator=None, **_ignored):
        w_iter = iter(ws.unbind(dim=1))
        fast = self.runs_fast(ws, force_fp32)
        x = self.layer_input(x, ws, force_fp32)
        fused_modconv = self._fused_modconv(fused_modconv, x.dtype, ws.shape[0])
        layer_kwargs = dict(noise_mode=noise_mode, noise_strength=noise_strength, noise_generator=noise_generator)

        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, gain=np.sqrt(0.5), **layer_kwargs)
            x = y.add_(x)
        else:
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)

        torgb_w = next(w_iter) if self.is_last or self.architecture == "skip" else None
        return x, self.image_step(x, img, torgb_w, fused_modconv=fused_modconv, fast=fast)

    def layer_input(self, x, ws, force_fp32=True):
        """The block's input as its first layer takes it: dtype and memory layout of this pass (the const for b4)."""
        # fp16 only on CUDA: CPU half convolutions are slow and not what NVIDIA's CPU references use.
        use_half = self.use_fp16 and not force_fp32 and ws.device.type == "cuda"
        dtype = torch.float16 if use_half else torch.float32
        memory_format = torch.channels_last if self.channels_last and use_half else torch.contiguous_format
        if self.runs_fast(ws, force_fp32):
            memory_format = torch.channels_last
        if self.in_channels == 0:
            x = self.const.to(dtype=dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            return x.contiguous(memory_format=memory_format)  # channels-last needs the 4-D tensor
        return x.to(dtype=dtype, memory_format=memory_format)

    def runs_fast(self, ws, force_fp32):
        """Whether this pass takes the fast path: enabled, float32, batch 1 (layers check autograd themselves)."""
        use_half = self.use_fp16 and not force_fp32 and ws.device.type == "cuda"
        return self.fast and not use_half and ws.shape[0] == 1

    def image_step(self, x, img, torgb_w, fused_modconv=True, fast=False):
        """The block's image output: the previous image upsampled, plus ToRGB of x where the block has one."""
        if img is not None and fast and img.shape[0] == 1:
            img = fast_stylegan2.upsample_image(img, self.resample_filter)
        elif img is not None:
            img = upfirdn2d.upsample2d(img, self.resample_filter)
        if torgb_w is not None:
            y = self.torgb(x, torgb_w, fused_modconv=fused_modconv)
            # The fast path keeps the image channels-last like x (SynthesisNetwork makes it contiguous at the end).
            y = y.to(dtype=torch.float32, memory_format=torch.preserve_format if fast else torch.contiguous_format)
            img = img.add_(y) if img is not None else y
        return img

    def extra_repr(self):
        return f"resolution={self.resolution}, architecture={self.architecture}"


class SynthesisNetwork(torch.nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, C, H, W] through blocks b4 ... b{img_resolution}."""

    def __init__(self, w_dim, img_resolution, img_channels, channel_base=32768, channel_max=512, num_fp16_res=0,
                 channel_table=None, **block_kwargs):
        """channel_table: explicit channels per block (4 px first), for files whose table no
        channel_base/channel_max gives (rosinality checkpoints with a custom table)."""
        if img_resolution < 4 or img_resolution & (img_resolution - 1) != 0:
            raise ValueError(f"img_resolution must be a power of two >= 4, not {img_resolution}")
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.num_fp16_res = num_fp16_res
        self.block_resolutions = [2 ** i for i in range(2, self.img_resolution_log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        if channel_table is not None:
            if len(channel_table) != len(self.block_resolutions):
                raise ValueError(f"channel_table needs {len(self.block_resolutions)} entries, not {len(channel_table)}")
            channels = {res: int(c) for res, c in zip(self.block_resolutions, channel_table)}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)

        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = channels[res // 2] if res > 4 else 0
            is_last = res == img_resolution
            block = SynthesisBlock(in_channels, channels[res], w_dim=w_dim, resolution=res,
                                   img_channels=img_channels, is_last=is_last, use_fp16=res >= fp16_resolution,
                                   **block_kwargs)
            self.num_ws += block.num_conv
            if is_last:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)
        # The style group of each w index, as the StyleGAN paper counts it: two ws per resolution,
        # w i -> 2**(i//2 + 2) (1024 px: coarse 4-8 px = w 0-3, middle 16-32 = w 4-7, fine = w 8-17).
        # Not the layers' own resolutions: in this layout w 2k+1 feeds a torgb at one resolution and
        # the next block's conv0, and the paper's grouping (which style mixing follows) counts the lower.
        self.ws_resolutions = [min(2 ** (i // 2 + 2), img_resolution) for i in range(self.num_ws)]

    def forward(self, ws, noise_mode="const", force_fp32=True, noise_strength=1.0, noise_generator=None,
                should_stop=None, fused_modconv=None, block_cache=None, **_ignored):
        """block_cache: a models.block_cache.BlockCache owned by the caller; blocks whose inputs are
        unchanged since its last pass are not recomputed (their forward hooks then do not fire)."""
        self._check_ws(ws)
        settings = dict(force_fp32=force_fp32, fused_modconv=fused_modconv, noise_mode=noise_mode,
                        noise_strength=noise_strength, noise_generator=noise_generator)
        if block_cache is not None and block_cache.applies(ws, noise_mode, noise_generator):
            img = self.run_blocks(ws, block_cache.block_runner(self, **settings), should_stop)[1]
            return img.clone(memory_format=torch.contiguous_format)  # the cache keeps its own image as it is
        img = self.run_blocks(ws, _whole_blocks(settings), should_stop)[1]
        return img.contiguous()  # the fast path's image is channels-last until here

    def block_layout(self):
        """(resolution, block, index of its first w) for each block, in pass order: a block takes
        one w per conv layer and, for its ToRGB, the next block's first."""
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            yield res, block, w_idx
            w_idx += block.num_conv

    def blocks(self, ws):
        """(resolution, block, its ws rows [N, n, w_dim] in float32) for each block, in pass order."""
        ws = ws.to(torch.float32)
        for res, block, w_idx in self.block_layout():
            yield res, block, ws.narrow(1, w_idx, block.num_conv + block.num_torgb)

    def run_blocks(self, ws, run_block, should_stop=None, start=0, stop=None, carry=None):
        """The block loop of every pass (plain, cached, reduced preview, partial): blocks start..stop-1,
        each by run_block(res, block, x, img, its ws) -> (x, img), from `carry` ((features, image)
        after block start-1; None for start 0). Returns (features, image) after block stop-1."""
        x, img = carry if carry is not None else (None, None)
        stop = len(self.block_resolutions) if stop is None else stop
        for index, (res, block, cur_ws) in enumerate(self.blocks(ws)):
            if start <= index < stop:
                _check_stop(should_stop)
                x, img = run_block(res, block, x, img, cur_ws)
        return x, img

    def _check_ws(self, ws):
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must have shape [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")

    def new_cache(self):
        """The cache of this network's passes that the caller keeps (block_cache=): per-block outputs."""
        return BlockCache()

    def stage_resolutions(self):
        """The feature resolution after each stage (block) a partial pass can stop at (run_stages)."""
        return list(self.block_resolutions)

    def run_stages(self, ws, start, stop, carry=None, noise_mode="const", noise_strength=1.0,
                   noise_generator=None, force_fp32=True, **_ignored):
        """Blocks start..stop-1 of a pass, from `carry` ((features, image so far) after block start-1;
        None for start 0), returning the carry after block stop-1; after the last block its image is
        the frame's. Differentiable: layers take the reference path where autograd needs it (a drag's
        backward then reaches only the blocks it ran)."""
        settings = dict(force_fp32=force_fp32, noise_mode=noise_mode, noise_strength=noise_strength,
                        noise_generator=noise_generator)
        x, img = self.run_blocks(ws, _whole_blocks(settings), start=start, stop=stop, carry=carry)
        return x, (img.contiguous() if stop == len(self.block_resolutions) else img)

    def style_affines(self):
        """[(layer name, affine, w index)] of the modulated convolutions in pass order (ToRGB left
        out): which affine turns which w into a layer's styles (SeFa, StyleSpace)."""
        return [(f"b{res}.{name}", getattr(block, name).affine, w_idx + index)
                for res, block, w_idx in self.block_layout()
                for index, name in enumerate(n for n in ("conv0", "conv1") if hasattr(block, n))]

    def extra_repr(self):
        return (f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}, "
                f"img_channels={self.img_channels}, num_fp16_res={self.num_fp16_res}")


# ----------------------------------------------------------------------------


class Generator(ops.GeneratorBase):
    """StyleGAN2 generator: mapping + synthesis, constructible from either NVIDIA repo's init kwargs."""

    architecture = "stylegan2"
    cache_kind = "blocks"  # the family interface (models/family.py)

    @property
    def preview_kind(self):
        variant = self.info.get("variant")
        if variant == "skip":
            return "accumulated"
        return "reduced" if variant in ("orig", "resnet") and isinstance(self.synthesis, SynthesisNetwork) else None

    def reduced_preview(self, ws, resolution, **options):
        return reduced_synthesis(self.synthesis, ws, family.reduced_resolution(self, resolution), **options)

    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs=None,
                 synthesis_kwargs=None, flavour=None, **top_level_synthesis_kwargs):
        """stylegan2-ada passes synthesis_kwargs={...}; the stylegan3 repo passes them at the top level.

        `flavour` ('stylegan2-ada' or 'stylegan3') picks the defaults of that code base; when None it
        follows from where the synthesis kwargs sit.
        """
        if flavour is None:
            flavour = "stylegan2-ada" if synthesis_kwargs is not None else "stylegan3"
        if flavour not in FLAVOURS:
            raise ValueError(f"flavour must be one of {FLAVOURS}, not {flavour!r}")
        defaults = FLAVOUR_DEFAULTS[flavour]
        mapping_kwargs = dict(mapping_kwargs or {})
        synthesis_kwargs = {**dict(synthesis_kwargs or {}), **top_level_synthesis_kwargs}
        mapping_kwargs.setdefault("w_avg_beta", defaults["w_avg_beta"])
        synthesis_kwargs.setdefault("num_fp16_res", defaults["num_fp16_res"])
        synthesis_kwargs.setdefault("conv_clamp", defaults["conv_clamp"])

        synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                     **synthesis_kwargs)
        super().__init__(z_dim, c_dim, w_dim, img_resolution, img_channels, synthesis, MappingNetwork, mapping_kwargs)
        self.flavour = flavour

        init_kwargs = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                           img_channels=img_channels, mapping_kwargs=mapping_kwargs,
                           synthesis_kwargs=synthesis_kwargs, flavour=flavour)
        self.info = {
            "format": None,  # set by the loader
            "architecture": self.architecture,
            "variant": synthesis_kwargs.get("architecture", "skip"),
            "flavour": flavour,
            "init_kwargs": ops.plain_values(init_kwargs),
        }

    def set_reference(self, reference=True):
        """reference=True: the plain reference path everywhere; False: the fast path where it applies."""
        for module in self.modules():
            if isinstance(module, (SynthesisLayer, ToRGBLayer, SynthesisBlock)):
                module.fast = not reference
        return self


# ----------------------------------------------------------------------------
# Building from init kwargs and from NVIDIA pickles.


def build(init_kwargs):
    """A Generator from init kwargs (either repo's layout, or info['init_kwargs'])."""
    return Generator(**copy.deepcopy(dict(init_kwargs)))


def _flavour_of(obj):
    """Which NVIDIA code base pickled this Generator, told from its structure (never from its source text)."""
    synthesis = obj.submodules().get("synthesis")
    blocks = synthesis.submodules() if synthesis is not None else {}
    first_block = next(iter(blocks.values()), None)
    if first_block is not None and "fused_modconv_default" in first_block.state:
        return "stylegan3"
    return "stylegan2-ada"


def _copy_pickled_settings(G, obj):
    """Take conv_clamp / use_fp16 from the pickled modules, so a fork's non-default choices survive."""
    def pickled(name):
        # Followed along G's own module names: a walk of the file's module graph would visit a
        # diamond-shared submodule once per path (2^depth times).
        node = obj
        for part in name.split(".") if name else ():
            node = node.submodules().get(part)
            if node is None:
                return None
        return node

    for name, module in G.named_modules():
        node = pickled(name)
        if node is None:
            continue
        for attr, kinds in (("conv_clamp", (int, float, type(None))), ("use_fp16", (bool,))):
            if hasattr(module, attr) and attr in node.state:
                value = node.state[attr]
                if isinstance(value, np.generic):
                    value = value.item()
                if isinstance(value, kinds):  # anything odd in the file is ignored, not trusted
                    setattr(module, attr, value)


def from_persistent(obj):
    """A Generator from a safe_pickle PersistentObject of NVIDIA's StyleGAN2 Generator, weights loaded strictly."""
    kwargs = dict(obj.init_kwargs)
    if obj.init_args:
        raise LoadError(f"Generator pickled with positional init args {obj.init_args!r} is not supported")
    kwargs.setdefault("flavour", _flavour_of(obj))
    try:
        G = build(kwargs)
    except (TypeError, ValueError, KeyError) as err:
        raise LoadError(f"cannot build a StyleGAN2 generator from init kwargs: {err}") from None
    _copy_pickled_settings(G, obj)
    load_state_dict_checked(G, obj.state_dict())
    return G


def load_state_dict_checked(G, state_dict):
    """load_state_dict(strict=True) with a one-line LoadError naming the first missing/unexpected/misshapen key."""
    own = G.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if missing:
        raise LoadError(f"missing key {missing[0]!r} ({len(missing)} missing)")
    if unexpected:
        raise LoadError(f"unexpected key {unexpected[0]!r} ({len(unexpected)} unexpected)")
    tensors = {}
    for key, value in state_dict.items():
        value = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value)
        if tuple(value.shape) != tuple(own[key].shape):
            raise LoadError(f"wrong shape for {key!r}: file has {list(value.shape)}, "
                            f"network expects {list(own[key].shape)}")
        tensors[key] = value.to(own[key].dtype)
    G.load_state_dict(tensors, strict=True)



# ----------------------------------------------------------------------------
# A reduced pass for previews (orig/resnet networks have no early image to show).


def reduced_synthesis(synthesis, ws, resolution, noise_mode="const", noise_strength=1.0, noise_generator=None,
                      should_stop=None, **_ignored):
    """A quick stand-in image at `resolution` (< img_resolution) from all of the network's weights.

    Blocks up to `resolution` run as usual; every later block runs at that resolution without its
    2x upsampling (conv0 and the resnet skip as plain convolutions, noise averaged down to the
    smaller grid), and the last block's ToRGB gives the image. Not NVIDIA's image: a preview that
    looks like the full frame downscaled, at a fraction of its cost. Batch 1 or more, float32.
    """
    synthesis._check_ws(ws)
    resolution = max(min(int(resolution), synthesis.img_resolution), 4)
    noise = dict(noise_mode=noise_mode, noise_strength=noise_strength, noise_generator=noise_generator)

    def run_block(res, block, x, img, cur_ws):
        if res <= resolution:
            return block(x, img, cur_ws, force_fp32=True, **noise)
        return reduced_stylegan2.reduced_block(block, x.to(torch.float32), img, cur_ws, **noise)

    return synthesis.run_blocks(ws, run_block, should_stop)[1]
