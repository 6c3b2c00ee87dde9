"""NetworkSession: one loaded network and everything kept for it (mapped ws, layers, recent frames, captures, block cache, principal directions)."""

import collections
import math

import numpy as np
import torch

from models import family, style_space
from renderer.interpolate import seed_z
from renderer.recent_frames import RecentFrames
from renderer.request import check_mix_layers

MAX_MAPPED = 512  # mapping outputs kept per network
# Principal directions of W (GANSpace, Haerkoenen et al. 2020): the PCA of this many mapped random
# z's. Their top components are stable at a few thousand; mapping 5000 and their PCA take
# 0.3-0.6 s (two threads, one) on a 2-core CPU for a 512-wide, 8-layer network
# (bench/render.py --vectors-only).
PCA_SAMPLES = 5000
PCA_COMPONENTS = 32


class NetworkSession:
    """A loaded network G and what is kept for it; forgetting the network is dropping its session.

    Every cache of a rendered frame keys on its frame_key (renderer/recent_frames.py): the recent
    images by it, the captures by it plus the layer; the block cache compares the same inputs."""

    def __init__(self, key, G, block_cache_lock, recent_frames_bytes, recent_captures_bytes):
        self.key = key  # (path, mtime, size, device, precision)
        self.G = G
        self.info = None  # frame.info, made by the first render
        self.layers = None  # [(name, shape, resolution)] in call order, once a full pass recorded them
        self.mapped = collections.OrderedDict()  # (seed, psi, cutoff, class) -> ws
        self.principal = {}  # class -> (components, sigmas): principal_directions
        self.derived = {}  # what -> a value computed once for this network (Renderer.derived)
        self.block_cache = G.synthesis.new_cache()  # the last passes' block (StyleGAN3, v1: stage) outputs
        self.recent = RecentFrames(recent_frames_bytes)  # full images made lately, for going back
        self.captures = RecentFrames(recent_captures_bytes, keep_oversized=True)  # captured layer outputs
        # A Renderer is meant for one thread; should two threads share one anyway, only one of them
        # uses a block cache at a time (the other renders uncached) rather than corrupt it.
        self.block_cache_lock = block_cache_lock

    @property
    def device(self):
        return self.G.mapping.w_avg.device

    # -- what a request sets for a pass --------------------------------------------------

    def synthesis_kwargs(self, request, should_stop):
        kwargs = {
            "noise_mode": request.noise_mode,
            "force_fp32": request.precision != "fp16",
            "noise_strength": self.noise_strength(request),
            "should_stop": should_stop,
        }
        if request.noise_mode == "random":
            generator = torch.Generator(device=self.device)
            generator.manual_seed(request.noise_seed)
            kwargs["noise_generator"] = generator
        return kwargs

    def noise_strength(self, request):
        """A float, or {layer: global * multiplier} over every noisy layer when some are set."""
        if not request.noise_layer_strength:
            return request.noise_strength
        noisy = family.noise_layers(self.G)
        unknown = [name for name, _ in request.noise_layer_strength if name not in noisy]
        if unknown:
            raise ValueError(
                f"noise_layer_strength: no noise input in layer {unknown[0]!r}; "
                f"layers with noise: {', '.join(noisy[:6])}{' ...' if len(noisy) > 6 else ''}"
            )
        multipliers = dict(request.noise_layer_strength)
        return {name: request.noise_strength * multipliers.get(name, 1.0) for name in noisy}

    def set_inside(self, request):
        """What the request sets inside the network for the passes that follow: its StyleSpace
        offsets on the style layers, and the network's input transform where it has one (StyleGAN3)."""
        G = self.G
        style_space.set_style_offsets(G.synthesis, style_space.offsets_from_channels(
            G.synthesis, request.style_offsets, self.device))
        family.set_input_transform(G, request.transform_translate, request.transform_rotate, request.transform_scale)

    # -- latents -------------------------------------------------------------------------

    def compute_ws(self, request):
        """The final ws [1, num_ws, w_dim] for a request (mapping, blend, mixing, offset)."""
        G = self.G
        if request.w is not None:
            ws = broadcast_ws(G, request.w, "w", self.device)
        elif request.z is not None:
            if len(request.z) != G.z_dim:
                raise ValueError(f"z: has {len(request.z)} values, this network's z_dim is {G.z_dim}")
            z = torch.tensor([request.z], dtype=torch.float32, device=self.device)
            c = self.class_vector(request.class_idx)
            ws = G.mapping(z, c, truncation_psi=request.truncation_psi, truncation_cutoff=request.truncation_cutoff)
        else:
            ws = self._blend_seeds(request, request.seed_weights())

        if request.mixing:
            indices = check_mix_layers(request.mix_layers, len(G.synthesis.ws_resolutions))
            if request.mix_w is not None:
                source = broadcast_ws(G, request.mix_w, "mix_w", self.device)
            else:
                source = self._mapped_seed(request, request.mix_seed)
            ws = ws.clone()
            if request.mix_strength == 1.0:  # exact replacement, as NVIDIA's style mixing
                ws[:, indices] = source[:, indices]
            else:
                ws[:, indices] = torch.lerp(ws[:, indices], source[:, indices], request.mix_strength)

        if request.w_offset is not None:
            ws = ws + broadcast_ws(G, request.w_offset, "w_offset", self.device)
        return ws

    def _blend_seeds(self, request, blend):
        if len(blend) == 1 and blend[0][1] == 1.0:
            return self._mapped_seed(request, blend[0][0])  # the faithful gen_images path
        # As NVIDIA's visualizer: blend the offsets from w_avg, so weights need not sum to 1.
        w_avg = self.G.mapping.w_avg
        offsets = [weight * (self._mapped_seed(request, seed) - w_avg) for seed, weight in blend]
        return torch.stack(offsets).sum(dim=0) + w_avg

    def _mapped_seed(self, request, seed):
        G = self.G
        class_idx = request.class_idx
        if G.c_dim > 0 and class_idx is None:
            class_idx = seed_class(seed, G.z_dim, G.c_dim)
        cache_key = (seed, request.truncation_psi, request.truncation_cutoff, class_idx)
        ws = self.mapped.get(cache_key)
        if ws is None:
            z = torch.from_numpy(seed_z(seed, G.z_dim)).to(device=self.device, dtype=torch.float32)
            c = self.class_vector(class_idx)
            ws = G.mapping(z, c, truncation_psi=request.truncation_psi, truncation_cutoff=request.truncation_cutoff)
            self.mapped[cache_key] = ws
            while len(self.mapped) > MAX_MAPPED:
                self.mapped.popitem(last=False)
        self.mapped.move_to_end(cache_key)
        return ws

    def class_vector(self, class_idx):
        """The one-hot label [1, c_dim] (empty for an unconditional network)."""
        c_dim = self.G.c_dim
        c = torch.zeros([1, c_dim], device=self.device)
        if c_dim == 0:
            if class_idx is not None:
                raise ValueError("class_idx: this network is unconditional (c_dim 0)")
            return c
        if class_idx is None:
            raise ValueError(f"class_idx: required for this conditional network (0-{c_dim - 1})")
        if class_idx >= c_dim:
            raise ValueError(f"class_idx: {class_idx} is outside 0-{c_dim - 1}")
        c[0, class_idx] = 1
        return c

    def principal_directions(self, class_idx):
        """See Renderer.principal_directions; kept per class."""
        found = self.principal.get(class_idx)
        if found is not None:
            return found
        G = self.G
        generator = torch.Generator().manual_seed(0)
        z = torch.randn([PCA_SAMPLES, G.z_dim], generator=generator).to(self.device)
        c = torch.zeros([PCA_SAMPLES, G.c_dim], device=self.device)
        if G.c_dim:
            classes = torch.randint(G.c_dim, [PCA_SAMPLES], generator=generator)
            if class_idx is not None:
                classes[:] = self.class_vector(class_idx).argmax()
            c[torch.arange(PCA_SAMPLES), classes.to(self.device)] = 1
        with torch.no_grad():
            w = G.mapping(z, c, truncation_psi=1.0)[:, 0].double().cpu()  # every layer gets the same w
        w -= w.mean(dim=0)
        _, singular, axes = torch.linalg.svd(w, full_matrices=False)
        count = min(PCA_COMPONENTS, axes.shape[0])
        found = (axes[:count].numpy(), (singular[:count] / math.sqrt(PCA_SAMPLES - 1)).numpy())
        self.principal[class_idx] = found
        return found


def seed_class(seed, z_dim, c_dim):
    """NVIDIA visualizer's class for a seed when none is given: randint after the z draw."""
    rnd = np.random.RandomState(seed)
    rnd.randn(z_dim)
    return int(rnd.randint(c_dim))


def broadcast_ws(G, rows, field_name, device):
    """[w_dim] or [num_ws][w_dim] request rows -> tensor [1, num_ws, w_dim]."""
    w = torch.tensor(rows, dtype=torch.float32, device=device)
    if w.shape[-1] != G.w_dim or w.shape[0] not in (1, G.num_ws):
        raise ValueError(
            f"{field_name}: shape {list(w.shape)} does not fit this network "
            f"([{G.w_dim}] or [{G.num_ws}, {G.w_dim}])"
        )
    return w.expand(G.num_ws, G.w_dim).unsqueeze(0)
