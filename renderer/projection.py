"""Projection: the w (or W+ ws) whose image matches a target picture, by Adam on NVIDIA's schedule.

The loss mixes pixel L2, MS-SSIM (pytorch-msssim) and LPIPS-style distances between feature
maps of networks the user already has: the file's own discriminator and, when given, VGG16
weights (models/discriminator.py, models/vgg.py). Noise inputs stay at the network's constant
noise: the result is only a w, and `frame --w` re-renders it with that noise (docs/projection.md).
"""

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from models.differentiable import differentiable_synthesis

SPACES = ("w", "w+")


@dataclass(frozen=True)
class ProjectionSettings:
    """What a projection does; the loss weights' defaults are measured by bench/project.py."""

    space: str = "w"  # 'w': one w for every layer; 'w+': one per layer
    steps: int = 300
    seed: int = 0  # the w-noise draws and the w_avg samples
    learning_rate: float = 0.1
    # NVIDIA's ramps (0.05 up, 0.25 down) and w noise (0.05) cost 3-4 dB within 300 steps on
    # CPU-sized budgets: off by default, kept as options (docs/projection.md).
    lr_rampup: float = 0.0  # fraction of the steps the learning rate ramps up over
    lr_rampdown: float = 0.0  # fraction at the end it ramps down over (cosine)
    w_noise: float = 0.0  # initial noise added to w, times W's spread, ramping to 0
    w_noise_ramp: float = 0.75
    w_avg_samples: int = 10000
    pixel: float = 1.0  # weight of the mean squared error of [-1, 1] images
    msssim: float = 0.0  # weight of 1 - MS-SSIM (+0.4 dB in W for ~1.5x the step time: off by default)
    discriminator: float = 0.0  # weight of the LPIPS-style distance on D's features
    # D's blocks see both pictures area-downsampled by this factor (a quarter of D's work at 2, the
    # same convergence: docs/projection.md); 1 = full resolution.
    discriminator_downsample: int = 2
    vgg: float = 0.0  # weight of the LPIPS-style distance on VGG16 features (needs --vgg)

    def __post_init__(self):
        if self.space not in SPACES:
            raise ValueError(f"space must be one of {', '.join(SPACES)}, not {self.space!r}")
        if self.discriminator_downsample not in (1, 2, 4, 8):
            raise ValueError(f"discriminator_downsample must be 1, 2, 4 or 8, not {self.discriminator_downsample}")
        if not 1 <= int(self.steps) <= 100000:
            raise ValueError(f"steps must be 1..100000, not {self.steps}")
        for name in ("pixel", "msssim", "discriminator", "vgg", "learning_rate", "w_noise"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, not {value}")

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


# ----------------------------------------------------------------------------
# The target: a picture, centre-cropped to a square and resized to the network's resolution.


def load_target_image(path):
    """A picture file as uint8 [H, W, 3]; ValueError with one line for what is not a readable image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path}: not a readable image ({first})") from None


def center_crop_box(height, width):
    """(left, top, size): the largest centred square, the part of the picture that is projected."""
    size = min(height, width)
    return (width - size) // 2, (height - size) // 2, size


def prepare_target(image, resolution, channels=3):
    """(uint8 [R, R, C] target, crop box): the centred square of `image`, resized (Lanczos) to R."""
    from PIL import Image

    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"target must be an H x W x 3 picture, not shape {list(image.shape)}")
    left, top, size = center_crop_box(image.shape[0], image.shape[1])
    square = Image.fromarray(np.ascontiguousarray(image[top:top + size, left:left + size, :3]).astype(np.uint8))
    resized = np.asarray(square.resize((resolution, resolution), Image.LANCZOS))
    if channels == 1:
        resized = np.asarray(Image.fromarray(resized).convert("L"))[:, :, None]
    return resized, (left, top, size)


def to_network_range(image_uint8):
    """uint8 [H, W, C] -> float32 [1, C, H, W] in [-1, 1]."""
    x = torch.from_numpy(np.array(image_uint8, dtype=np.float32))
    return (x.permute(2, 0, 1).unsqueeze(0) / 127.5 - 1)


def to_uint8(img):
    """[1, C, H, W] in about [-1, 1] -> uint8 [H, W, C] (how frames are written)."""
    x = (img[0].detach().to(torch.float32) * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return x.permute(1, 2, 0).cpu().numpy()


def psnr(a_uint8, b_uint8):
    """Peak signal-to-noise ratio in dB of two uint8 pictures."""
    mse = np.mean((np.asarray(a_uint8, np.float64) - np.asarray(b_uint8, np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


# ----------------------------------------------------------------------------
# Loss terms.


def msssim_distance(x, y):
    """1 - MS-SSIM of two [-1, 1] images, with a window and as many scales as the size allows."""
    from pytorch_msssim import ms_ssim, ssim

    side = min(x.shape[-2:])
    # pytorch-msssim always downsamples 4 times and needs side > (win - 1) * 16.
    win = 11
    while win > 3 and side <= (win - 1) * 16:
        win -= 2
    if side > (win - 1) * 16:
        return 1 - ms_ssim(x, y, data_range=2.0, win_size=win)
    return 1 - ssim(x, y, data_range=2.0, win_size=min(win, side - (1 - side % 2)))


def feature_distance(features_a, features_b):
    """LPIPS-style distance without learned weights: unit-normalise each position's channel vector,
    then the mean squared difference, summed over the layers."""
    total = 0
    for a, b in zip(features_a, features_b):
        a = a / (a.square().sum(dim=1, keepdim=True) + 1e-10).sqrt()
        b = b / (b.square().sum(dim=1, keepdim=True) + 1e-10).sqrt()
        total = total + (a - b).square().sum(dim=1).mean()
    return total


def downsampled(features, factor, resolution):
    """features() of the picture area-averaged over factor x factor pixels (while that leaves 16+ px).

    A discriminator's blocks are convolutions, so they take any size: on a picture halved, every
    block does a quarter of the work, and the features still describe the same picture (the way
    NVIDIA's projector gives VGG16 its input at 256 px)."""
    while factor > 1 and resolution // factor < 16:
        factor //= 2
    if factor == 1:
        return features
    return lambda img: features(F.avg_pool2d(img, factor))


# ----------------------------------------------------------------------------
# The optimisation.


def learning_rate(t, settings):
    """NVIDIA's projector schedule at progress t in [0, 1]: linear ramp up, cosine ramp down."""
    ramp = min(1.0, (1.0 - t) / settings.lr_rampdown) if settings.lr_rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    if settings.lr_rampup > 0:
        ramp *= min(1.0, t / settings.lr_rampup)
    return settings.learning_rate * ramp


def w_noise_scale(t, settings, w_std):
    """The spread of the noise added to w at progress t: quadratic fall to 0 at w_noise_ramp."""
    if settings.w_noise_ramp <= 0:
        return 0.0
    return w_std * settings.w_noise * max(0.0, 1.0 - t / settings.w_noise_ramp) ** 2


class Projector:
    """One projection, one step at a time (the window runs a few steps per worker call).

    feature_nets: {'discriminator': fn, 'vgg': fn}, each fn([1, C, H, W] in [-1, 1]) -> list of
    feature maps; a term whose weight is 0 or whose network is missing is left out.
    """

    def __init__(self, G, target_uint8, settings=None, feature_nets=None):
        self.G = G
        self.settings = settings or ProjectionSettings()
        self.target_uint8 = np.ascontiguousarray(target_uint8)
        self.target = to_network_range(self.target_uint8)
        self.step_index = 0
        self.loss = float("nan")
        self.generator = torch.Generator().manual_seed(int(self.settings.seed))
        self.w_avg, self.w_std = self._w_statistics()
        rows = G.num_ws if self.settings.space == "w+" else 1
        self.w_opt = self.w_avg.reshape(1, 1, -1).repeat(1, rows, 1).clone().requires_grad_(True)
        self.optimizer = torch.optim.Adam([self.w_opt], betas=(0.9, 0.999), lr=self.settings.learning_rate)
        self.feature_terms = []
        for name, net in (feature_nets or {}).items():
            weight = getattr(self.settings, name)
            if net is not None and weight > 0:
                if name == "discriminator":
                    net = downsampled(net, self.settings.discriminator_downsample, G.img_resolution)
                with torch.no_grad():
                    self.feature_terms.append((name, weight, net, [f.detach() for f in net(self.target)]))

    def _w_statistics(self):
        """(w_avg [w_dim], w_std scalar) from seeded samples of the mapping, as NVIDIA's projector does
        (a file's tracked w_avg may lag its mapping: a start from it converged worse on sg3_t_64)."""
        count = int(self.settings.w_avg_samples)
        z = torch.randn([count, self.G.z_dim], generator=self.generator)
        c = torch.zeros([count, self.G.c_dim]) if self.G.c_dim else None
        with torch.no_grad():
            ws = torch.cat([self.G.mapping(z[i:i + 1000], None if c is None else c[i:i + 1000])[:, :1]
                            for i in range(0, count, 1000)])
        w_avg = ws.mean(dim=0)[0]
        w_std = float(((ws[:, 0] - w_avg).square().sum() / count).sqrt())
        return w_avg, w_std

    @property
    def done(self):
        return self.step_index >= self.settings.steps

    def ws(self):
        """The current latent, [1, num_ws, w_dim] float32 (detached)."""
        return self.w_opt.detach().expand(1, self.G.num_ws, -1).clone()

    def losses(self, img):
        """The weighted loss terms of a synthesized image, by name."""
        s, terms = self.settings, {}
        if s.pixel > 0:
            terms["pixel"] = s.pixel * F.mse_loss(img, self.target)
        if s.msssim > 0:
            terms["msssim"] = s.msssim * msssim_distance((img + 1) / 2, (self.target + 1) / 2).mul(2)
        for name, weight, net, target_features in self.feature_terms:
            terms[name] = weight * feature_distance(net(img), target_features)
        return terms

    def step(self):
        """One Adam step; returns the loss before it."""
        t = self.step_index / max(1, self.settings.steps)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(t, self.settings)
        noise = torch.randn(self.w_opt.shape, generator=self.generator) * w_noise_scale(t, self.settings, self.w_std)
        with differentiable_synthesis():
            ws = (self.w_opt + noise).expand(1, self.G.num_ws, -1)
            # Unfused modulation, as drag does (docs/projection.md): the styles scale the activations
            # around the shared weight, so the backward needs no per-sample weight gradients.
            img = self.G.synthesis(ws, noise_mode="const", fused_modconv=False)
            loss = sum(self.losses(img).values())
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
        self.optimizer.step()
        self.step_index += 1
        self.loss = float(loss.detach())
        return self.loss

    def run_steps(self, count, should_stop=None):
        """Up to `count` steps (fewer at the end or when should_stop() says so)."""
        for _ in range(count):
            if self.done or (should_stop is not None and should_stop()):
                break
            self.step()

    def image(self):
        """The current reconstruction as uint8 [H, W, C] (the fast path, constant noise)."""
        with torch.no_grad():
            return to_uint8(self.G.synthesis(self.ws(), noise_mode="const"))


# ----------------------------------------------------------------------------
# Files.


def save_projected_w(ws, path):
    """NVIDIA's projected_w.npz: key 'w', [1, num_ws, w_dim] float32, written whole or not at all."""
    import io

    from models.atomic_write import atomic_output

    buffer = io.BytesIO()
    np.savez(buffer, w=np.asarray(ws, dtype=np.float32).reshape(1, *np.shape(ws)[-2:]))
    with atomic_output(path) as temp_name:
        with open(temp_name, "wb") as handle:
            handle.write(buffer.getbuffer())
    return path


def side_by_side(target_uint8, image_uint8):
    """The target (the crop) beside the reconstruction: one progress picture."""
    gap = np.full((target_uint8.shape[0], 2, target_uint8.shape[2]), 255, np.uint8)
    return np.concatenate([target_uint8, gap, image_uint8], axis=1)


def progress_frames(projector, every=5, on_step=None):
    """Run the projection to its end, yielding the side-by-side picture every `every` steps and last."""
    yield side_by_side(projector.target_uint8, projector.image())
    while not projector.done:
        projector.run_steps(1)
        if on_step is not None:
            on_step(projector)
        if projector.step_index % every == 0 or projector.done:
            yield side_by_side(projector.target_uint8, projector.image())
