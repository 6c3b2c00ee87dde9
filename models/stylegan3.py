"""StyleGAN3 (Alias-Free GAN, configs T and R) generator with NVIDIA's parameter names, lean on CPU."""

import functools

import numpy as np
import torch
import torch.nn.functional as F

from models import filtered_lrelu as flrelu
from models import fast_stylegan3, reduced_stylegan3
from models import family, ops, stylegan2
from models.differentiable import needs_graph
from models.errors import LoadError, RenderCancelled
from models.stage_cache import StageCache

# Keyword arguments each part of NVIDIA's Generator accepts (training-only ones included, ignored).
MAPPING_OPTIONS = {"num_layers", "lr_multiplier", "w_avg_beta", "freeze_layers", "freeze_embed"}
SYNTHESIS_OPTIONS = {"channel_base", "channel_max", "num_layers", "num_critical", "first_cutoff",
                     "first_stopband", "last_stopband_rel", "margin_size", "output_scale", "num_fp16_res"}
LAYER_OPTIONS = {"conv_kernel", "filter_size", "lrelu_upsampling", "use_radial_filters", "conv_clamp",
                 "magnitude_ema_beta"}
# Passed by some training configs to every G class; meaningless for StyleGAN3's layers.
HARMLESS_OPTIONS = {"fused_modconv_default"}


# ---------------------------------------------------------------------------
# Low-pass filter design, used only for networks built in-process (loaded files carry their filters).


def kaiser_atten(numtaps, width):
    """Attenuation (dB) of a Kaiser-window FIR filter; width relative to Nyquist (Kaiser's formula)."""
    return 2.285 * (numtaps - 1) * np.pi * width + 7.95


def kaiser_beta(atten):
    """Kaiser window beta for a stopband attenuation in dB (Kaiser's empirical formula)."""
    if atten > 50:
        return 0.1102 * (atten - 8.7)
    if atten > 21:
        return 0.5842 * (atten - 21) ** 0.4 + 0.07886 * (atten - 21)
    return 0.0


def kaiser_lowpass(numtaps, cutoff, width, fs):
    """Windowed-sinc low-pass filter (Kaiser window sized from the transition width), unit DC gain."""
    nyquist = fs / 2
    beta = kaiser_beta(kaiser_atten(numtaps, width / nyquist))
    m = np.arange(numtaps) - (numtaps - 1) / 2
    c = cutoff / nyquist
    h = c * np.sinc(c * m) * np.kaiser(numtaps, beta)
    return h / h.sum()


def radial_lowpass(numtaps, cutoff, width, fs):
    """Radially symmetric jinc low-pass filter with a separable Kaiser window, unit DC gain."""
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    # numtaps is even here, so r is never 0 and jinc needs no special case.
    j1 = torch.special.bessel_j1(torch.from_numpy(2 * cutoff * (np.pi * r))).numpy()
    f = j1 / (np.pi * r)
    beta = kaiser_beta(kaiser_atten(numtaps, width / (fs / 2)))
    window = np.kaiser(numtaps, beta)
    f = f * np.outer(window, window)
    return f / np.sum(f)


def design_lowpass_filter(numtaps, cutoff, width, fs, radial=False):
    """The filter StyleGAN3 stores for a layer: None (identity), 1-D separable, or 2-D radial."""
    if numtaps == 1:
        return None
    f = radial_lowpass(numtaps, cutoff, width, fs) if radial else kaiser_lowpass(numtaps, cutoff, width, fs)
    return torch.as_tensor(f, dtype=torch.float32)


# ---------------------------------------------------------------------------
# Layers


class MappingNetwork(stylegan2.MappingNetwork):
    """StyleGAN3's mapping: StyleGAN2's (same parameter names, same math) with two layers by default."""

    def __init__(self, z_dim, c_dim, w_dim, num_ws, num_layers=2, lr_multiplier=0.01, w_avg_beta=0.998,
                 **training_only):
        super().__init__(z_dim, c_dim, w_dim, num_ws, num_layers=num_layers, lr_multiplier=lr_multiplier,
                         w_avg_beta=w_avg_beta)


class SynthesisInput(torch.nn.Module):
    """Fourier features at fixed frequencies, rotated/translated by an affine of w and by `transform`."""

    def __init__(self, w_dim, channels, size, sampling_rate, bandwidth):
        super().__init__()
        self.w_dim = w_dim
        self.channels = channels
        self.size = np.broadcast_to(np.asarray(size), [2])
        self.sampling_rate = sampling_rate
        self.bandwidth = bandwidth
        # Frequencies drawn uniformly-ish from a disc of radius `bandwidth` (as NVIDIA initialises them).
        freqs = torch.randn([channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs /= radii * radii.square().exp().pow(0.25)
        freqs *= bandwidth
        phases = torch.rand([channels]) - 0.5
        self.weight = torch.nn.Parameter(torch.randn([channels, channels]))
        self.affine = ops.FullyConnectedLayer(w_dim, 4, weight_init=0, bias_init=[1, 0, 0, 0])
        # The inverse of the user's transform of the output image (gen_images.py writes it).
        self.register_buffer("transform", torch.eye(3, 3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", phases)

    def forward(self, w, transform=None):
        transforms = (self.transform if transform is None else transform.to(w.device, torch.float32)).unsqueeze(0)
        freqs = self.freqs.unsqueeze(0)
        phases = self.phases.unsqueeze(0)

        # The learned part: t = (cos, sin, tx, ty), rotation normalised to unit length.
        t = self.affine(w)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        batch = w.shape[0]
        m_r = torch.eye(3, device=w.device).unsqueeze(0).repeat([batch, 1, 1])
        m_r[:, 0, 0] = t[:, 0]
        m_r[:, 0, 1] = -t[:, 1]
        m_r[:, 1, 0] = t[:, 1]
        m_r[:, 1, 1] = t[:, 0]
        m_t = torch.eye(3, device=w.device).unsqueeze(0).repeat([batch, 1, 1])
        m_t[:, 0, 2] = -t[:, 2]
        m_t[:, 1, 2] = -t[:, 3]
        # Rotate the image, then translate it, then apply the user's transform (all as inverses).
        transforms = m_r @ m_t @ transforms

        phases = phases + (freqs @ transforms[:, :2, 2:]).squeeze(2)
        freqs = freqs @ transforms[:, :2, :2]
        # A user transform (zoom out) can push frequencies past the band; fade those out.
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth)
                      / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)

        theta = torch.eye(2, 3, device=w.device)
        theta[0, 0] = 0.5 * self.size[0] / self.sampling_rate
        theta[1, 1] = 0.5 * self.size[1] / self.sampling_rate
        grids = F.affine_grid(theta.unsqueeze(0), [1, 1, int(self.size[1]), int(self.size[0])], align_corners=False)

        x = (grids.unsqueeze(3) @ freqs.permute(0, 2, 1).unsqueeze(1).unsqueeze(2)).squeeze(3)
        x = x + phases.unsqueeze(1).unsqueeze(2)
        x = torch.sin(x * (np.pi * 2))
        x = x * amplitudes.unsqueeze(1).unsqueeze(2)
        weight = self.weight / np.sqrt(self.channels)
        x = x @ weight.t()
        return x.permute(0, 3, 1, 2)

    def extra_repr(self):
        return (f"w_dim={self.w_dim}, channels={self.channels}, size={list(self.size)}, "
                f"sampling_rate={self.sampling_rate:g}, bandwidth={self.bandwidth:g}")


def modulated_weight(weight, styles, demodulate, input_gain):
    """Per-sample conv weights [N, O, I, k, k]: pre-normalised, modulated, demodulated, input-scaled."""
    batch = styles.shape[0]
    in_channels = weight.shape[1]
    if demodulate:
        weight = weight * weight.square().mean([1, 2, 3], keepdim=True).rsqrt()
        # NVIDIA normalises the styles over the whole batch, not per sample; kept for fidelity.
        styles = styles * styles.square().mean().rsqrt()
    w = weight.unsqueeze(0) * styles.reshape(batch, 1, in_channels, 1, 1)
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
        w = w * dcoefs.reshape(batch, -1, 1, 1, 1)
    if input_gain is not None:
        w = w * input_gain.expand(batch, in_channels).reshape(batch, 1, in_channels, 1, 1)
    return w


class SynthesisLayer(torch.nn.Module):
    """Modulated conv, then bias + filtered leaky ReLU (up, lrelu, clamp, down); the last one is ToRGB."""

    def __init__(self, w_dim, is_torgb, is_critically_sampled, use_fp16, in_channels, out_channels,
                 in_size, out_size, in_sampling_rate, out_sampling_rate, in_cutoff, out_cutoff,
                 in_half_width, out_half_width, conv_kernel=3, filter_size=6, lrelu_upsampling=2,
                 use_radial_filters=False, conv_clamp=256, magnitude_ema_beta=0.999):
        super().__init__()
        self.w_dim = w_dim
        self.is_torgb = is_torgb
        self.is_critically_sampled = is_critically_sampled
        self.use_fp16 = use_fp16
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.in_size = np.broadcast_to(np.asarray(in_size), [2])
        self.out_size = np.broadcast_to(np.asarray(out_size), [2])
        self.in_sampling_rate = in_sampling_rate
        self.out_sampling_rate = out_sampling_rate
        self.tmp_sampling_rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        self.in_cutoff = in_cutoff
        self.out_cutoff = out_cutoff
        self.in_half_width = in_half_width
        self.out_half_width = out_half_width
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp = conv_clamp
        self.magnitude_ema_beta = magnitude_ema_beta
        self.reference = False  # True: zero-stuffing filtered_lrelu, one plain convolution (always on GPUs)

        self.affine = ops.FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, self.conv_kernel, self.conv_kernel]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))

        self.up_factor = int(np.rint(self.tmp_sampling_rate / in_sampling_rate))
        assert in_sampling_rate * self.up_factor == self.tmp_sampling_rate
        self.up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        self.register_buffer("up_filter", design_lowpass_filter(
            self.up_taps, in_cutoff, in_half_width * 2, self.tmp_sampling_rate))
        self.down_factor = int(np.rint(self.tmp_sampling_rate / out_sampling_rate))
        assert out_sampling_rate * self.down_factor == self.tmp_sampling_rate
        self.down_taps = filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        self.down_radial = use_radial_filters and not is_critically_sampled
        self.register_buffer("down_filter", design_lowpass_filter(
            self.down_taps, out_cutoff, out_half_width * 2, self.tmp_sampling_rate, radial=self.down_radial))

        # Pad so that the kept samples sit where the symmetric interpretation (paper, App. C.3) puts them.
        pad_total = (self.out_size - 1) * self.down_factor + 1
        pad_total -= (self.in_size + self.conv_kernel - 1) * self.up_factor
        pad_total += self.up_taps + self.down_taps - 2
        pad_lo = (pad_total + self.up_factor) // 2
        pad_hi = pad_total - pad_lo
        self.padding = [int(pad_lo[0]), int(pad_hi[0]), int(pad_lo[1]), int(pad_hi[1])]

    def forward(self, x, w, noise_mode="const", force_fp32=True, update_emas=False, allocate=None, **ignored):
        """allocate: optional callable(shape) -> channels-last float32 tensor for the lean path's output
        (SynthesisNetwork hands out memory kept between frames)."""
        if update_emas:
            magnitude = x.detach().to(torch.float32).square().mean()
            self.magnitude_ema.copy_(magnitude.lerp(self.magnitude_ema, self.magnitude_ema_beta))
        styles = self.styles(w)
        # The stylegan3 repo runs fp16 layers in half only on CUDA.
        use_half = self.use_fp16 and not force_fp32 and x.device.type == "cuda"
        dtype = torch.float16 if use_half else torch.float32
        x = x.to(dtype)
        weights = self.modulated_weights(styles)
        gain = 1 if self.is_torgb else np.sqrt(2)
        slope = 1 if self.is_torgb else 0.2
        bias = self.bias.to(dtype)
        options = dict(fu=self.up_filter, fd=self.down_filter, up=self.up_factor, down=self.down_factor,
                       padding=self.padding, gain=gain, slope=slope, clamp=self.conv_clamp)
        # The lean path is for CPUs. A GPU runs the plain path faster: an H100 renders T-1024 in 0.15 s
        # that way against 0.40 s through the lean path's many small tiles (R: 0.31 against 0.80 s).
        if self.reference or x.device.type != "cpu" or needs_graph(x, weights):
            x = ops.grouped_conv(x, weights, self.conv_kernel - 1)
            return flrelu.filtered_lrelu(x, b=bias, reference=True, **options)
        return fast_stylegan3.layer_forward(self, x, weights, bias, options, allocate)

    def styles(self, w):
        """The layer's styles for w [N, w_dim] (ToRGB's scaled by its weight gain)."""
        styles = self.affine(w)
        if self.is_torgb:
            styles = styles * (1 / np.sqrt(self.in_channels * (self.conv_kernel ** 2)))
        return styles

    def modulated_weights(self, styles):
        """Per-sample conv weights [N, O, I, k, k] for these styles, scaled by the input magnitude's EMA."""
        return modulated_weight(self.weight, styles, demodulate=not self.is_torgb, input_gain=self.magnitude_ema.rsqrt())

    def extra_repr(self):
        return (f"w_dim={self.w_dim}, is_torgb={self.is_torgb}, is_critically_sampled={self.is_critically_sampled}, "
                f"in_sampling_rate={self.in_sampling_rate:g}, out_sampling_rate={self.out_sampling_rate:g}, "
                f"in_size={list(self.in_size)}, out_size={list(self.out_size)}, "
                f"in_channels={self.in_channels}, out_channels={self.out_channels}")


def layer_schedule(img_resolution, img_channels, channel_base=32768, channel_max=512, num_layers=14,
                   num_critical=2, first_cutoff=2, first_stopband=2 ** 2.1, last_stopband_rel=2 ** 0.3,
                   margin_size=10):
    """Per layer (input + num_layers + ToRGB entries): cutoffs, stopbands, sampling rates, sizes, channels."""
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
    sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
    sizes = sampling_rates + margin_size * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels
    return dict(cutoffs=cutoffs, stopbands=stopbands, sampling_rates=sampling_rates,
                half_widths=half_widths, sizes=sizes, channels=channels)


class SynthesisNetwork(torch.nn.Module):
    """ws -> image: Fourier input, num_layers filtered layers at growing sampling rates, ToRGB."""

    def __init__(self, w_dim, img_resolution, img_channels, channel_base=32768, channel_max=512, num_layers=14,
                 num_critical=2, first_cutoff=2, first_stopband=2 ** 2.1, last_stopband_rel=2 ** 0.3,
                 margin_size=10, output_scale=0.25, num_fp16_res=4, **layer_kwargs):
        super().__init__()
        self.w_dim = w_dim
        self.num_ws = num_layers + 2
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.num_layers = num_layers
        self.num_critical = num_critical
        self.margin_size = margin_size
        self.output_scale = output_scale
        self.num_fp16_res = num_fp16_res

        s = layer_schedule(img_resolution, img_channels, channel_base, channel_max, num_layers, num_critical,
                           first_cutoff, first_stopband, last_stopband_rel, margin_size)
        cutoffs, rates, widths = s["cutoffs"], s["sampling_rates"], s["half_widths"]
        sizes, channels = s["sizes"], s["channels"]
        self.input = SynthesisInput(w_dim=w_dim, channels=int(channels[0]), size=int(sizes[0]),
                                    sampling_rate=rates[0], bandwidth=cutoffs[0])
        self.layer_names = []
        for idx in range(num_layers + 1):
            prev = max(idx - 1, 0)
            layer = SynthesisLayer(
                w_dim=w_dim, is_torgb=(idx == num_layers), is_critically_sampled=(idx >= num_layers - num_critical),
                use_fp16=bool(rates[idx] * (2 ** num_fp16_res) > img_resolution),
                in_channels=int(channels[prev]), out_channels=int(channels[idx]),
                in_size=int(sizes[prev]), out_size=int(sizes[idx]),
                in_sampling_rate=int(rates[prev]), out_sampling_rate=int(rates[idx]),
                in_cutoff=cutoffs[prev], out_cutoff=cutoffs[idx],
                in_half_width=widths[prev], out_half_width=widths[idx], **layer_kwargs)
            name = f"L{idx}_{layer.out_size[0]}_{layer.out_channels}"
            setattr(self, name, layer)
            self.layer_names.append(name)
        # w index 0 feeds the input, index i+1 feeds layer i (the last one ToRGB). The "resolution" of
        # each is its sampling rate: the image size it represents, without the margin.
        self.ws_resolutions = [int(rates[0])] + [int(rates[idx]) for idx in range(num_layers + 1)]

    def forward(self, ws, noise_mode="const", force_fp32=True, noise_strength=1.0, noise_generator=None,
                should_stop=None, update_emas=False, input_transform=None, block_cache=None, **ignored):
        """noise_* are accepted for the common contract and ignored: StyleGAN3 has no noise inputs.

        input_transform: optional 3x3 matrix used instead of the `input.transform` buffer for this call.
        block_cache: a models.stage_cache.StageCache owned by the caller (new_cache); the pass starts at
        the last layer input it kept whose upstream is unchanged (forward hooks of the layers before do not fire).
        """
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none', not {noise_mode!r}")
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        use_cache = block_cache is not None and block_cache.applies(ws, "const", None) and not update_emas
        cache = block_cache if use_cache else None
        start, x = 0, None
        if cache is not None:
            start, x = cache.resume(self, self.stage_keys(ws, input_transform, force_fp32))
        ws = ws.to(torch.float32).unbind(dim=1)
        if x is None:
            if should_stop is not None and should_stop():
                raise RenderCancelled("synthesis stopped before the input layer")
            x = self.input(ws[0]) if input_transform is None else self.input(ws[0], input_transform)
        if x.device.type == "cpu":
            fast_stylegan3.reserve_kept(self, x.shape[0], x.device)
        for index in range(start, len(self.layer_names)):
            name = self.layer_names[index]
            if should_stop is not None and should_stop():
                raise RenderCancelled(f"synthesis stopped before {name}")
            layer = getattr(self, name)
            allocate = None
            if x.device.type == "cpu" and not layer.is_torgb:
                allocate = functools.partial(fast_stylegan3.kept_buffer, self, index % 2, x.device)
                if cache is not None:
                    allocate = cache.allocator(index + 1) or allocate
            if cache is not None:
                cache.stages_run += 1  # counted first: a capture may stop inside the layer
            x = layer(x, ws[index + 1], force_fp32=force_fp32, update_emas=update_emas, allocate=allocate)
            if cache is not None:
                cache.computed(index + 1, x)
        if self.output_scale != 1:
            return (x * self.output_scale).to(torch.float32).contiguous()
        # The kept output must stay as it is whatever the caller does with the image.
        return x.to(torch.float32).clone(memory_format=torch.contiguous_format) if cache is not None \
            else x.to(torch.float32).contiguous()

    def style_affines(self):
        """[(layer name, affine, w index)] of the modulated layers in pass order (ToRGB and the
        Fourier input's transform affine left out): w i+1 feeds layer i (SeFa, StyleSpace)."""
        return [(name, getattr(self, name).affine, index + 1) for index, name in enumerate(self.layer_names)
                if not getattr(self, name).is_torgb]

    def new_cache(self):
        """The cache of this network's passes that the caller keeps (block_cache=): kept stage inputs."""
        return StageCache()

    def checkpoint_plan(self):
        """For the block cache: each layer's estimated cost and the bytes of its input."""
        layers = [getattr(self, name) for name in self.layer_names]
        # A layer's input is the previous layer's output (the tiled path pads it to whole vectors).
        vector = fast_stylegan3.CHANNEL_VECTOR
        sizes = [0] + [4 * -(-layer.out_channels // vector) * vector * int(np.prod(layer.out_size))
                       for layer in layers[:-1]]
        return [_layer_cost(layer) for layer in layers], sizes

    def checkpoint_stages(self):
        """For the block cache: the module of each stage, in pass order (the input layer runs before the first)."""
        return [getattr(self, name) for name in self.layer_names]

    def stage_keys(self, ws, input_transform=None, force_fp32=True, **_ignored):
        """What decides each stage of a batch-1 pass, for the block cache: [the input's (its w row,
        the transform, the settings and the layers' paths), then each layer's (w row, style offset)]."""
        rows = ws[0].to(torch.float32)
        transform = self.input.transform if input_transform is None else torch.as_tensor(input_transform)
        paths = tuple(getattr(self, name).reference for name in self.layer_names)
        offsets = [getattr(self, name).affine.output_offset for name in self.layer_names]
        return [(rows[0], transform.to(torch.float32), bool(force_fp32), paths)] + list(zip(rows[1:], offsets))

# Relative cost of a layer for the block cache's choice of what to keep: its convolution's
# multiply-adds plus this many per value of its upsampled grid (the filters' share; on StyleGAN3-R
# 1024 on one core ~70 multiply-adds' worth per upsampled value: its L10 0.16 s conv / 0.57 s filter).
FILTER_COST_PER_VALUE = 70


def _layer_cost(layer):
    """Estimated work of one layer, in multiply-adds of its convolution."""
    k = layer.conv_kernel
    in_h, in_w = (int(v) for v in layer.in_size[::-1])
    conv = layer.out_channels * layer.in_channels * k * k * (in_h + k - 1) * (in_w + k - 1)
    upsampled = layer.out_channels * (in_h + k - 1) * (in_w + k - 1) * layer.up_factor ** 2
    return conv + FILTER_COST_PER_VALUE * upsampled


class Generator(ops.GeneratorBase):
    """NVIDIA's StyleGAN3 Generator: mapping + synthesis, same names, same numbers."""

    cache_kind = "stages"  # the family interface (models/family.py)

    @property
    def preview_kind(self):
        return "reduced" if isinstance(self.synthesis, SynthesisNetwork) else None

    def reduced_preview(self, ws, resolution, **options):
        return reduced_synthesis(self.synthesis, ws, family.reduced_resolution(self, resolution), **options)

    def reduced_preview_cap(self):
        # Its layers keep 512-1024 channels up to high rates, so a reduced pass costs more per pixel
        # than StyleGAN2's: a 16th of the image size (at least 32 px) takes 0.2-0.26 s at 512 px and
        # 0.3-0.56 s at 1024 px on one core here (docs/decisions.md).
        return max(32, self.img_resolution // 16)

    def set_input_transform(self, translate, rotate_deg, scale):
        """The inverse of a user transform in input.transform, as gen_images.py sets it."""
        matrix = input_transform(translate, rotate_deg, scale)
        transform = self.synthesis.input.transform
        transform.copy_(torch.as_tensor(np.asarray(matrix), dtype=transform.dtype))

    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs=None, **synthesis_kwargs):
        synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                     **synthesis_kwargs)
        super().__init__(z_dim, c_dim, w_dim, img_resolution, img_channels, synthesis, MappingNetwork,
                         dict(mapping_kwargs or {}))
        radial = bool(synthesis_kwargs.get("use_radial_filters", False))
        one_by_one = synthesis_kwargs.get("conv_kernel", 3) == 1
        self.architecture = "stylegan3-r" if (radial or one_by_one) else "stylegan3-t"
        self.info = {"format": "stylegan3", "architecture": self.architecture,
                     "variant": self.architecture[-1], "init_kwargs": {}}

    def set_reference(self, reference=True):
        """Switch every layer between the lean path and the zero-stuffing reference."""
        for layer in self.modules():
            if isinstance(layer, SynthesisLayer):
                layer.reference = bool(reference)
        return self


# ---------------------------------------------------------------------------
# Helpers for callers


def train_defaults(cfg, res=1024):
    """Init kwargs of the generator NVIDIA's train.py builds for config 't' or 'r' at `res` px
    (z = w = 512, 2 mapping layers; R doubles channel_base/max and uses 1x1 convs, radial filters)."""
    kwargs = dict(z_dim=512, w_dim=512, c_dim=0, img_resolution=res, img_channels=3,
                  mapping_kwargs=dict(num_layers=2), channel_base=32768, channel_max=512,
                  magnitude_ema_beta=0.5 ** (32 / (20 * 1e3)))
    if cfg == "r":
        kwargs.update(conv_kernel=1, channel_base=65536, channel_max=1024, use_radial_filters=True)
    return kwargs


def input_transform(translate=(0.0, 0.0), rotate_deg=0.0, scale=1.0):
    """The 3x3 matrix to write into G.synthesis.input.transform, as NVIDIA's gen_images.py does.

    translate is in units of the image (1.0 = full width), rotate_deg turns the picture
    counter-clockwise as seen by gen_images.py's --rotate, and scale > 1 zooms in.
    """
    angle = rotate_deg / 360.0 * np.pi * 2
    s, c = np.sin(angle), np.cos(angle)
    m = np.eye(3)
    m[0][0], m[0][1], m[0][2] = c, s, translate[0]
    m[1][0], m[1][1], m[1][2] = -s, c, translate[1]
    m[:2, :2] *= scale
    return torch.from_numpy(np.linalg.inv(m)).to(torch.float32)


def build(init_kwargs, reference=False):
    """A StyleGAN3 Generator (eval, no grad) from NVIDIA's Generator init kwargs; weights random."""
    kwargs = ops.plain_values(dict(init_kwargs))
    for key in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"):
        if key not in kwargs:
            raise LoadError(f"StyleGAN3 Generator kwargs lack {key!r}")
    mapping_kwargs = dict(kwargs.get("mapping_kwargs") or {})
    unknown = set(mapping_kwargs) - MAPPING_OPTIONS
    known_top = {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs"}
    unknown |= set(kwargs) - known_top - SYNTHESIS_OPTIONS - LAYER_OPTIONS - HARMLESS_OPTIONS
    if unknown:
        raise LoadError(f"unsupported StyleGAN3 option(s): {', '.join(sorted(unknown))}")
    synthesis_kwargs = {k: v for k, v in kwargs.items() if k in SYNTHESIS_OPTIONS | LAYER_OPTIONS}
    with torch.no_grad():
        G = Generator(kwargs["z_dim"], kwargs["c_dim"], kwargs["w_dim"], kwargs["img_resolution"],
                      kwargs["img_channels"], mapping_kwargs=mapping_kwargs, **synthesis_kwargs)
    G.info["init_kwargs"] = kwargs
    G.set_reference(reference)
    return G.eval().requires_grad_(False)


def from_persistent(obj, reference=False):
    """Rebuild a StyleGAN3 Generator from safe_pickle's PersistentObject and load its tensors.

    The stored up/down filters, transform, freqs and phases replace the designed/random ones.
    """
    if obj.init_args:
        raise LoadError(f"StyleGAN3 {obj.class_name} pickled with positional init args, not supported")
    G = build(obj.init_kwargs, reference=reference)
    state = obj.state_dict()
    expected = G.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        raise LoadError(f"StyleGAN3 state dict does not fit its kwargs: missing {missing[:3]}, unexpected {extra[:3]}")
    for key, value in expected.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise LoadError(f"StyleGAN3 tensor {key} has shape {list(state[key].shape)}, expected {list(value.shape)}")
    G.load_state_dict({k: torch.as_tensor(v).to(torch.float32) for k, v in state.items()}, strict=True)
    return G.eval().requires_grad_(False)


__all__ = ["Generator", "SynthesisNetwork", "SynthesisLayer", "SynthesisInput", "MappingNetwork",
           "build", "from_persistent", "input_transform", "design_lowpass_filter",
           "layer_schedule"]


# ---------------------------------------------------------------------------
# A reduced pass for previews: no alias-free filtering, optionally a capped sampling rate.

# Samples a reduced layer keeps beyond the image on each side. The real layers keep 10, which at the
# first layers' 16 and 32 px rates makes their grids 2.6-5x the image's area.
REDUCED_MARGIN = 6


def reduced_synthesis(synthesis, ws, resolution=None, should_stop=None, input_transform=None,
                      margin=REDUCED_MARGIN, **_ignored):
    """A quick stand-in image from all of the network's weights; not NVIDIA's image.

    Each layer's upsample-FIR / leaky ReLU / FIR-downsample (two thirds of a full pass) becomes bias
    + leaky ReLU on the convolution's own grid and a bilinear resample onto the layer's output grid,
    keeping the sample positions of the real pass. With `resolution`, no layer samples finer than
    that rate (its grid shrinks in proportion, covering the same image area), so the image comes out
    at `resolution` px for a fraction of the convolution cost too. `margin`: samples kept beyond the
    image on each side of every grid (None: the real layers' margins). Float32.
    """
    if ws.ndim != 3 or ws.shape[1] != synthesis.num_ws or ws.shape[2] != synthesis.w_dim:
        raise ValueError(f"ws must be [N, {synthesis.num_ws}, {synthesis.w_dim}], got {list(ws.shape)}")
    ws = ws.to(torch.float32).unbind(dim=1)
    cap = float(resolution) if resolution else float("inf")
    _reduced_check_stop(should_stop, "the input layer")
    x = synthesis.input(ws[0]) if input_transform is None else synthesis.input(ws[0], input_transform)
    x = x.to(torch.float32)
    in_rate = float(synthesis.input.sampling_rate)
    if margin is not None:
        x = reduced_stylegan3.center_crop(x, int(np.ceil(in_rate)) + 2 * margin)
    for name, w in zip(synthesis.layer_names, ws[1:]):
        _reduced_check_stop(should_stop, name)
        layer = getattr(synthesis, name)
        out_rate = min(float(layer.out_sampling_rate), max(cap, in_rate))
        # The same image extent as the real grid, in samples of the (possibly capped) rate.
        out_size = int(round(float(layer.out_size[0]) * out_rate / float(layer.out_sampling_rate)))
        if margin is not None:
            out_size = min(out_size, int(np.ceil(out_rate)) + 2 * margin)
        x = reduced_stylegan3.reduced_layer(layer, x, w, in_rate, out_rate, out_size)
        in_rate = out_rate
    if synthesis.output_scale != 1:
        x = x * synthesis.output_scale
    return x.contiguous()


def _reduced_check_stop(should_stop, where):
    if should_stop is not None and should_stop():
        raise RenderCancelled(f"reduced synthesis stopped before {where}")
