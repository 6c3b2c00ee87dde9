"""Procedural stylised faces: an infinite, seeded dataset with coarse, middle and fine factors."""

import math

import torch

# The factors, grouped by the three scales the StyleGAN paper names. Every factor is drawn
# independently of every other, so a generator that learns the data has to keep them apart.
COARSE_FACTORS = ("center_x", "center_y", "yaw", "roll", "head_width", "head_height", "head_squareness")
MIDDLE_FACTORS = ("hair_style", "eyes_open", "mouth", "glasses")
FINE_FACTORS = (
    "skin_tone", "hair_color", "eye_color", "background_color", "shirt_color",
    "light_angle", "light_strength",
)
ALL_FACTORS = COARSE_FACTORS + MIDDLE_FACTORS + FINE_FACTORS

HAIR_STYLES = ("short", "long", "bob", "afro")
MOUTHS = ("neutral", "smile", "open")

# Segmentation labels that render() reports alongside the pixels (topmost part per pixel).
PARTS = (
    "background", "shirt", "hair_back", "ear", "neck", "face", "hair_front", "eyebrow",
    "eye_white", "iris", "pupil", "eyelid", "nose", "mouth", "glasses",
)

# Colour palettes (RGB in [0, 1]); fine factors pick a palette entry and jitter it.
SKIN_TONES = ((0.98, 0.85, 0.74), (0.92, 0.72, 0.58), (0.78, 0.56, 0.40), (0.55, 0.37, 0.25), (0.36, 0.24, 0.17))
HAIR_COLORS = ((0.10, 0.08, 0.07), (0.35, 0.20, 0.10), (0.85, 0.70, 0.35), (0.70, 0.25, 0.08), (0.75, 0.75, 0.78), (0.25, 0.30, 0.75))
EYE_COLORS = ((0.25, 0.45, 0.85), (0.40, 0.22, 0.10), (0.20, 0.60, 0.30), (0.45, 0.45, 0.50))

DEFAULT_PARAMS = {
    "resolution": 64,
    "center_jitter": 0.08,        # head position, in units of half the image
    "yaw_range": 1.0,             # -1 = looking fully left, +1 = fully right
    "roll_degrees": 12.0,         # head tilt
    "head_width": (0.36, 0.46),
    "head_height": (0.46, 0.56),
    "light_strength": (0.0, 0.45),
}


def default_params(resolution=64):
    """The dataset parameters (recorded in the shipped model's manifest)."""
    return dict(DEFAULT_PARAMS, resolution=int(resolution))


def _uniform(gen, n, low, high):
    return low + (high - low) * torch.rand(n, generator=gen)


def _pick_color(gen, n, palette, jitter):
    table = torch.tensor(palette, dtype=torch.float32)
    index = torch.randint(len(palette), (n,), generator=gen)
    color = table[index] + jitter * (torch.rand(n, 3, generator=gen) - 0.5)
    return color.clamp(0, 1)


def sample_factors(n, seed, params=None):
    """Draw n independent factor sets from the seed; every factor is an [n] or [n, 3] tensor."""
    p = params or default_params()
    gen = torch.Generator().manual_seed(int(seed))
    f = {}
    # Coarse: where the head is, which way it turns, its shape.
    f["center_x"] = _uniform(gen, n, -p["center_jitter"], p["center_jitter"])
    f["center_y"] = _uniform(gen, n, -p["center_jitter"], p["center_jitter"])
    f["yaw"] = _uniform(gen, n, -p["yaw_range"], p["yaw_range"])
    f["roll"] = _uniform(gen, n, -1, 1) * math.radians(p["roll_degrees"])
    f["head_width"] = _uniform(gen, n, *p["head_width"])
    f["head_height"] = _uniform(gen, n, *p["head_height"])
    f["head_squareness"] = torch.rand(n, generator=gen)
    # Middle: discrete features of the face.
    f["hair_style"] = torch.randint(len(HAIR_STYLES), (n,), generator=gen)
    f["eyes_open"] = (torch.rand(n, generator=gen) < 0.75).long()
    f["mouth"] = torch.randint(len(MOUTHS), (n,), generator=gen)
    f["glasses"] = (torch.rand(n, generator=gen) < 0.35).long()
    # Fine: colours and lighting.
    f["skin_tone"] = _pick_color(gen, n, SKIN_TONES, 0.08)
    f["hair_color"] = _pick_color(gen, n, HAIR_COLORS, 0.12)
    f["eye_color"] = _pick_color(gen, n, EYE_COLORS, 0.15)
    f["background_color"] = torch.rand(n, 3, generator=gen) * 0.8 + 0.1
    f["shirt_color"] = torch.rand(n, 3, generator=gen) * 0.8 + 0.1
    f["light_angle"] = _uniform(gen, n, 0, 2 * math.pi)
    f["light_strength"] = _uniform(gen, n, *p["light_strength"])
    return f


# ---------------------------------------------------------------------------------------------
# Signed distances (negative inside). All take coordinate tensors [N, H, W] and per-sample
# sizes broadcast as [N, 1, 1]; the results are approximate distances in image units.

def _ellipse(x, y, rx, ry):
    k0 = torch.sqrt((x / rx) ** 2 + (y / ry) ** 2)
    k1 = torch.sqrt((x / rx**2) ** 2 + (y / ry**2) ** 2).clamp_min(1e-6)
    return k0 * (k0 - 1) / k1


def _superellipse(x, y, rx, ry, power):
    k = ((x / rx).abs() ** power + (y / ry).abs() ** power) ** (1 / power)
    return (k - 1) * torch.minimum(rx, ry)


def _box(x, y, half_w, half_h, radius):
    qx = x.abs() - half_w + radius
    qy = y.abs() - half_h + radius
    outside = torch.sqrt(qx.clamp_min(0) ** 2 + qy.clamp_min(0) ** 2)
    return outside + torch.maximum(qx, qy).clamp_max(0) - radius


def _coverage(sdf, pixel):
    """Antialiased coverage: a one-pixel linear ramp across the edge."""
    return (0.5 - sdf / pixel).clamp(0, 1)


def _col(t):
    """Per-sample scalar -> [N, 1, 1] for broadcasting against images."""
    return t.view(-1, 1, 1)


def render(factors, resolution=64, with_parts=False):
    """Draw the faces for a factor dict: [N, 3, H, W] float in [-1, 1] (and an [N, H, W] part map)."""
    f = factors
    n = f["yaw"].shape[0]
    pixel = 2.0 / resolution
    axis = (torch.arange(resolution, dtype=torch.float32) + 0.5) * pixel - 1
    gy, gx = torch.meshgrid(axis, axis, indexing="ij")
    gx = gx.expand(n, -1, -1)
    gy = gy.expand(n, -1, -1)

    # Head frame: translate to the head centre (slightly above the image centre), undo the roll.
    cos_r, sin_r = _col(torch.cos(f["roll"])), _col(torch.sin(f["roll"]))
    dx = gx - _col(f["center_x"])
    dy = gy - _col(f["center_y"] - 0.08)
    u = cos_r * dx + sin_r * dy
    v = -sin_r * dx + cos_r * dy
    hw, hh = _col(f["head_width"]), _col(f["head_height"])
    yaw = _col(f["yaw"])
    # Turning the head slides the features sideways and foreshortens the far side.
    feature_shift = 0.45 * hw * yaw

    image = _col(torch.ones(n)).unsqueeze(1) * f["background_color"].view(n, 3, 1, 1)
    # A soft vertical gradient on the background, so it is not perfectly flat.
    image = image * (1.08 - 0.16 * (gy.unsqueeze(1) + 1) / 2)
    parts = torch.zeros(n, resolution, resolution, dtype=torch.long)

    # Light falls across the character from a direction; background stays unlit.
    light_x = _col(torch.cos(f["light_angle"]) * f["light_strength"])
    light_y = _col(torch.sin(f["light_angle"]) * f["light_strength"])
    shading = (1 + light_x * gx / 0.6 + light_y * gy / 0.6).unsqueeze(1)

    def paint(coverage, color, part, lit=True):
        nonlocal image
        rgb = color.view(n, 3, 1, 1) if color.dim() == 2 else color
        if lit:
            rgb = (rgb * shading).clamp(0, 1)
        a = coverage.unsqueeze(1)
        image = image * (1 - a) + rgb * a
        parts[coverage > 0.5] = part

    def label(name):
        return PARTS.index(name)

    skin, hair, eyes = f["skin_tone"], f["hair_color"], f["eye_color"]
    dark = torch.full((n, 3), 0.08)
    style = _col(f["hair_style"])

    # Shoulders and shirt (in image frame, they do not roll with the head).
    shoulder_y = gy - _col(f["center_y"]) - 0.95
    shirt = _ellipse(gx - _col(f["center_x"]), shoulder_y, 0.75 + 0 * hw, 0.38 + 0 * hw)
    paint(_coverage(shirt, pixel), f["shirt_color"], label("shirt"))

    # Hair behind the head: long hair hangs past the chin, the afro is a big round puff,
    # the bob reaches the jaw.
    long_back = _box(u - 0.3 * feature_shift, v - 0.1 * hh, hw * 1.22, hh * 1.05, hw * 0.7)
    afro_back = _ellipse(u - 0.2 * feature_shift, v + 0.25 * hh, hw * 1.45, hh * 1.05)
    bob_back = _box(u - 0.3 * feature_shift, v - 0.05 * hh, hw * 1.18, hh * 0.85, hw * 0.6)
    back = torch.where(style == 1, long_back, torch.where(style == 3, afro_back, bob_back))
    has_back = (style != 0)
    paint(_coverage(back, pixel) * has_back, hair, label("hair_back"))

    # Neck, then ears (the far ear hides behind the head as it turns), then the face.
    neck = _box(u - 0.3 * feature_shift, v - hh * 0.95, hw * 0.45, hh * 0.45, 0.04)
    paint(_coverage(neck, pixel), skin * 0.85, label("neck"))
    for side in (-1.0, 1.0):
        # The ear on the side the face turns towards slides in behind the head.
        ear_u = u - side * hw * (0.97 - 0.45 * (side * yaw).clamp_min(0))
        ear = _ellipse(ear_u, v - 0.05 * hh, hw * 0.18, hh * 0.2)
        paint(_coverage(ear, pixel), skin * 0.92, label("ear"))
    power = 2.0 + 2.0 * _col(f["head_squareness"])
    head = _superellipse(u, v, hw, hh, power)
    paint(_coverage(head, pixel), skin, label("face"))

    # Hair on top of the head: a cap cut by the hairline; the bob adds a straight fringe.
    cap_shape = _superellipse(u, v, hw * 1.07, hh * 1.07, power)
    wave = 0.03 * torch.sin(u * 18 + 3 * yaw)
    side_u = u - 0.6 * feature_shift
    curved = -0.45 * hh + 0.5 * side_u**2 / hw + wave
    hairline = torch.where(style == 2, -0.12 * hh + 0 * u, torch.where(style == 3, -0.3 * hh + 0 * u, curved))
    cap = torch.maximum(cap_shape, v - hairline)
    paint(_coverage(cap, pixel), hair, label("hair_front"))

    # Eyes: open (white, iris, pupil, looking where the head turns) or closed (a lid line).
    eye_v = v + 0.08 * hh
    eye_open = _col(f["eyes_open"]).bool()
    for side in (-1.0, 1.0):
        # The eye on the far side shrinks as the head turns away from it.
        squash = 1 - 0.35 * (side * yaw).clamp_min(0)
        eye_u = u - feature_shift - side * hw * 0.42 * (1 - 0.3 * yaw.abs())
        brow = _box(eye_u, eye_v + hh * 0.25, hw * 0.22 * squash, 0.022, 0.02)
        paint(_coverage(brow, pixel), hair * 0.8, label("eyebrow"))
        white = _ellipse(eye_u, eye_v, hw * 0.2 * squash, hh * 0.1)
        iris = _ellipse(eye_u - 0.05 * yaw, eye_v, hw * 0.1 * squash, hh * 0.09)
        pupil = _ellipse(eye_u - 0.05 * yaw, eye_v, hw * 0.045 * squash, hh * 0.045)
        lid = torch.maximum(white.abs() - 0.018, -(eye_v))
        paint(_coverage(white, pixel) * eye_open, torch.full((n, 3), 0.96), label("eye_white"))
        paint(_coverage(torch.maximum(iris, white), pixel) * eye_open, eyes, label("iris"))
        paint(_coverage(pupil, pixel) * eye_open, dark, label("pupil"))
        paint(_coverage(lid, pixel) * ~eye_open, skin * 0.45, label("eyelid"))
        # Glasses: a ring around each eye.
        ring = _ellipse(eye_u, eye_v, hw * 0.32 * squash, hh * 0.2).abs() - 0.018
        paint(_coverage(ring, pixel) * _col(f["glasses"]), dark, label("glasses"), lit=False)
    bridge = _box(u - feature_shift, eye_v, hw * 0.14 * (1 - 0.3 * yaw.abs()), 0.015, 0.01)
    paint(_coverage(bridge, pixel) * _col(f["glasses"]), dark, label("glasses"), lit=False)

    # Nose: points where the head turns.
    nose = _ellipse(u - 1.25 * feature_shift, v - 0.22 * hh, hw * 0.1, hh * 0.1)
    paint(_coverage(nose, pixel), skin * 0.78, label("nose"))

    # Mouth: a straight line, a smile (lower half of a ring) or an open oval.
    mouth_u = u - 1.05 * feature_shift
    mouth_v = v - 0.55 * hh
    mouth_w = hw * 0.38 * (1 - 0.25 * yaw.abs())
    neutral = _box(mouth_u, mouth_v, mouth_w, 0.02, 0.02)
    smile_ring = _ellipse(mouth_u, mouth_v + 0.06, mouth_w, hh * 0.2).abs() - 0.022
    smile = torch.maximum(smile_ring, -(mouth_v + 0.02))
    open_mouth = _ellipse(mouth_u, mouth_v + 0.01, mouth_w * 0.75, hh * 0.12)
    kind = _col(f["mouth"])
    mouth = torch.where(kind == 0, neutral, torch.where(kind == 1, smile, open_mouth))
    paint(_coverage(mouth, pixel), torch.tensor([0.55, 0.12, 0.15]).expand(n, 3), label("mouth"))

    image = image.clamp(0, 1) * 2 - 1
    return (image, parts) if with_parts else image


class FaceDataset:
    """Seeded, infinite stream of face batches: batch k of seed s is always the same."""

    def __init__(self, resolution=64, seed=0, params=None):
        self.params = params or default_params(resolution)
        self.resolution = self.params["resolution"]
        self.seed = int(seed)

    def factors(self, batch_index, batch_size):
        # Mix seed and batch index into one 63-bit seed, so streams of different seeds differ.
        mixed = (self.seed * 1_000_003 + int(batch_index) * 7919 + 12345) % (2**63 - 1)
        return sample_factors(batch_size, mixed, self.params)

    def batch(self, batch_index, batch_size):
        """Images [batch_size, 3, R, R] in [-1, 1] for this batch index."""
        return render(self.factors(batch_index, batch_size), self.resolution)
