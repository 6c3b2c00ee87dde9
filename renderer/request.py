"""RenderRequest: the frozen, validated description of everything that decides one frame."""

import dataclasses
import json
import math
import numbers
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# NVIDIA's visualizer lays seeds out on a plane: seed = x + y * SEED_STEP_Y (mod 2**32).
SEED_STEP_Y = 100
MAX_SEED = 2**32 - 1  # np.random.RandomState accepts seeds in [0, 2**32)
MAX_LATENT = 1e4  # bound on every z, w, offset and seed-weight value

NOISE_MODES = ("const", "random", "none")
CHANNEL_MODES = ("rgb", "one", "grid")
NORMALIZE_MODES = ("none", "minmax", "std")
PRECISIONS = ("fp32", "fp16")
# Named style-mixing groups by the resolution of the layers a w feeds (StyleGAN paper, sec. 3.1).
MIX_GROUPS = {"coarse": (4, 8), "middle": (16, 32), "fine": (64, 1 << 20)}
JSON_VERSION = 1


@dataclass(frozen=True)
class RenderRequest:
    """Everything that decides a frame; a frame is a pure function of this and the weights.

    Latent source, first one set wins: `w`, else `z`, else `seed_xy`, else `seeds`
    (at most one of w, z, seed_xy may be set). Build variants with `dataclasses.replace`
    (validation runs again). Lists, numpy arrays and dicts are accepted and stored as tuples.
    """

    # The network: file (None = the embedded default model), device and precision.
    pkl: str | None = None
    device: str = "auto"  # 'auto' (cuda when available), 'cpu', 'cuda', 'cuda:N', 'mps'
    precision: str = "fp32"  # 'fp16' lets fp16 layers run in half on CUDA

    # Latent: a weighted blend of seeds ((seed, weight), ...); an int means ((seed, 1.0),).
    seeds: tuple = ((0, 1.0),)
    # Fractional seed-plane position (x, y), NVIDIA visualizer convention: see seed_xy_blend().
    seed_xy: tuple | None = None
    z: tuple | None = None  # [z_dim]
    w: tuple | None = None  # [w_dim] (every layer) or [num_ws][w_dim]; used as is, no truncation
    class_idx: int | None = None  # conditional models; None = NVIDIA visualizer's seeded pick
    w_offset: tuple | None = None  # added to the final ws: [w_dim] or [num_ws][w_dim]
    # StyleSpace: ((style layer, channel, delta), ...) added to those layers' styles (affine outputs).
    style_offsets: tuple = ()

    truncation_psi: float = 1.0
    truncation_cutoff: int | None = None

    # Style mixing: lerp ws[mix_layers] toward the mix source's ws by mix_strength.
    mix_seed: int | None = None
    mix_w: tuple | None = None  # [w_dim] or [num_ws][w_dim]; wins over mix_seed
    mix_layers: str = ""  # e.g. '4-7', 'coarse', 'middle,fine', '0,2,5'; '' = no mixing
    mix_strength: float = 1.0

    noise_mode: str = "const"
    noise_seed: int = 0
    noise_strength: float = 1.0
    noise_layer_strength: tuple = ()  # ((layer name, multiplier), ...); a dict is accepted

    # Feature-map view: layer None shows the output image.
    layer: str | None = None
    channel_mode: str = "rgb"  # 'rgb': channels channel..channel+2; 'one': channel; 'grid'
    channel: int = 0  # base channel (rgb), the channel (one), first channel (grid)
    grid_channels: int = 16  # how many channels a grid shows
    normalize: str = "none"  # 'none', 'minmax' (per channel), 'std' (per channel)
    gain_db: float = 0.0
    fft: bool = False  # show the power spectrum in dB instead

    # StyleGAN3 input transform (ignored by other architectures) and output scaling.
    transform_translate: tuple = (0.0, 0.0)
    transform_rotate: float = 0.0  # degrees
    transform_scale: float = 1.0
    output_scale: float = 1.0  # resize of the final image: nearest up, Lanczos down

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = _VALIDATORS[field.name](field.name, getattr(self, field.name))
            object.__setattr__(self, field.name, value)
        if sum(x is not None for x in (self.w, self.z, self.seed_xy)) > 1:
            raise ValueError("w, z, seed_xy: set at most one latent source")

    # -- derived values ------------------------------------------------------------------

    def seed_weights(self):
        """The ((seed, weight), ...) blend this request asks for (seed_xy resolved)."""
        if self.seed_xy is not None:
            return seed_xy_blend(*self.seed_xy)
        return self.seeds

    @property
    def mixing(self):
        """True when style mixing changes anything."""
        has_source = self.mix_seed is not None or self.mix_w is not None
        return has_source and self.mix_layers != "" and self.mix_strength > 0

    # -- JSON ----------------------------------------------------------------------------

    def to_dict(self):
        """Plain JSON-able dict (tuples become lists, noise_layer_strength a dict)."""
        out = {"version": JSON_VERSION}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "noise_layer_strength":
                value = dict(value)
            out[field.name] = _to_lists(value)
        return out

    def to_json(self, indent=None):
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data):
        """Build from to_dict() output; unknown keys are an error (they are likely typos)."""
        if not isinstance(data, dict):
            raise ValueError(f"request: expected a JSON object, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("version", JSON_VERSION)
        if version != JSON_VERSION:
            raise ValueError(f"version: unsupported request version {version!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names, key=str)
        if unknown:
            raise ValueError(f"{str(unknown[0])[:80]}: unknown request field")
        try:
            return cls(**data)
        except (TypeError, KeyError, IndexError, OverflowError, RecursionError) as exc:  # odd JSON values
            raise ValueError(f"request: malformed value ({type(exc).__name__})") from None

    @classmethod
    def from_json(cls, text):
        from models.limits import load_json  # size, nesting and integer length bounded first

        return cls.from_dict(load_json(text, "request"))


# -- helpers -----------------------------------------------------------------------------


def ws_rows(array):
    """An array meant as ws (a w, a direction) as float64 rows [N, w_dim]: a batch of 1 is dropped
    and a single vector becomes one row, which stands for every layer."""
    array = np.asarray(array, dtype=np.float64)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    return array[None] if array.ndim == 1 else array


def direction_sum(terms):
    """The sum of strength x rows over (strength, rows) terms, zero strengths left out: a request's
    w_offset, or None when nothing is added. One row broadcasts over num_ws rows; shapes that do not
    add up raise ValueError."""
    total = None
    for strength, rows in terms:
        if float(strength) == 0.0:
            continue
        term = float(strength) * ws_rows(rows)
        if total is not None and (term.ndim != 2 or term.shape[1] != total.shape[1]
                                  or term.shape[0] not in (1, total.shape[0]) and total.shape[0] != 1):
            raise ValueError(f"directions of shapes {list(total.shape)} and {list(term.shape)} do not add up")
        total = term if total is None else total + term
    return total


def seed_xy_blend(x, y):
    """The four seeds around (x, y) and their bilinear weights, as NVIDIA's visualizer does.

    Corners are (floor(x)+dx, floor(y)+dy), seed = (cx + cy * SEED_STEP_Y) mod 2**32, weight
    (1-|x-cx|)(1-|y-cy|); zero weights are dropped. The renderer blends them in W, after
    mapping and truncation, relative to w_avg (as the visualizer does).
    """
    blend = []
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        cx = math.floor(x) + dx
        cy = math.floor(y) + dy
        weight = (1 - abs(x - cx)) * (1 - abs(y - cy))
        if weight > 0:
            blend.append(((cx + cy * SEED_STEP_Y) & MAX_SEED, float(weight)))
    return tuple(blend)


_LAYER_TOKEN = re.compile(r"^(\d+)(?:-(\d+))?$")


def parse_mix_layers(spec):
    """Check a mix_layers spec; returns its canonical text (lower case, no spaces).

    Comma-separated items, each an index 'k', an inclusive range 'lo-hi', or a group name
    (coarse, middle, fine). Raises ValueError naming mix_layers.
    """
    if not isinstance(spec, str):
        raise ValueError(f"mix_layers: expected text like '4-7' or 'coarse', got {spec!r}")
    tokens = [t for t in spec.lower().replace(" ", "").split(",") if t]
    for token in tokens:
        if token in MIX_GROUPS:
            continue
        match = _LAYER_TOKEN.match(token)
        if not match:
            raise ValueError(
                f"mix_layers: {token!r} is not an index, a range lo-hi or one of "
                f"{', '.join(MIX_GROUPS)}"
            )
        lo, hi = int(match.group(1)), int(match.group(2) or match.group(1))
        if hi < lo:
            raise ValueError(f"mix_layers: range {token!r} is empty (hi < lo)")
    return ",".join(tokens)


def mix_indices(spec, ws_resolutions):
    """The sorted w indices a mix_layers spec picks for a network with these ws_resolutions."""
    num_ws = len(ws_resolutions)
    picked = set()
    for token in parse_mix_layers(spec).split(","):
        if not token:
            continue
        if token in MIX_GROUPS:
            lo_res, hi_res = MIX_GROUPS[token]
            group = [i for i, r in enumerate(ws_resolutions) if lo_res <= r <= hi_res]
            if not group:  # e.g. StyleGAN3 has no 4-8 px layers: say so rather than mix nothing
                raise ValueError(
                    f"mix_layers: no {token} layers ({lo_res}-{hi_res} px) in this network; "
                    f"its ws feed {min(ws_resolutions)}-{max(ws_resolutions)} px"
                )
            picked.update(group)
            continue
        match = _LAYER_TOKEN.match(token)
        lo, hi = int(match.group(1)), int(match.group(2) or match.group(1))
        if hi >= num_ws:
            raise ValueError(f"mix_layers: {token!r} is outside 0-{num_ws - 1} for this network")
        picked.update(range(lo, hi + 1))
    return sorted(picked)


# -- validation (one function per kind of field; each returns the canonical value) ------


def _real(name, value, lo=-math.inf, hi=math.inf):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value}")
    if not lo <= value <= hi:
        raise ValueError(f"{name}: {value} is outside [{lo}, {hi}]")
    return value


def _int(name, value, lo=-math.inf, hi=math.inf):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON writers sometimes say 3.0
        else:
            raise ValueError(f"{name}: expected an integer, got {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"{name}: {value} is outside [{lo}, {hi}]")
    return value


def _choice(options):
    def check(name, value):
        if value not in options:
            raise ValueError(f"{name}: {value!r} is not one of {', '.join(options)}")
        return value

    return check


def _optional(check):
    def wrapped(name, value):
        return None if value is None else check(name, value)

    return wrapped


def _bounded_real(lo, hi):
    return lambda name, value: _real(name, value, lo, hi)


def _bounded_int(lo, hi):
    return lambda name, value: _int(name, value, lo, hi)


def _sequence(name, value):
    if hasattr(value, "tolist"):  # numpy arrays and torch tensors
        value = value.tolist()
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name}: expected a list, got {type(value).__name__}")
    return list(value)


def _vector(name, value):
    items = _sequence(name, value)
    if not items:
        raise ValueError(f"{name}: must not be empty")
    # Latents live within a few units of the origin; 1e4 leaves room while keeping inf/NaN out
    # of the network's sums. A plain float in range (NaN fails the comparison) passes as it is:
    # a w of 18 x 512 values is validated on every edit in the window while a vector is used.
    return tuple(v if type(v) is float and -MAX_LATENT <= v <= MAX_LATENT
                 else _real(f"{name}[{i}]", v, -MAX_LATENT, MAX_LATENT) for i, v in enumerate(items))


def _is_row(value):
    return hasattr(value, "__iter__") and not isinstance(value, (str, bytes, dict))


def _vector_or_matrix(name, value):
    """[D] or [N][D] (a leading batch of 1 is dropped); stored as a tuple of rows."""
    rows = _sequence(name, value)
    if not rows:
        raise ValueError(f"{name}: must not be empty")
    if len(rows) == 1 and _is_row(rows[0]) and rows[0] and _is_row(list(rows[0])[0]):
        rows = list(rows[0])  # [1][N][D], e.g. a projector's w.npz
    if not _is_row(rows[0]):
        return (_vector(name, rows),)
    matrix = tuple(_vector(f"{name}[{i}]", row) for i, row in enumerate(rows))
    if len({len(row) for row in matrix}) != 1:
        raise ValueError(f"{name}: rows have different lengths")
    return matrix


def _seeds(name, value):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = [(value, 1.0)]
    pairs = _sequence(name, value)
    if not pairs:
        raise ValueError(f"{name}: must not be empty")
    if len(pairs) > 256:
        raise ValueError(f"{name}: at most 256 seeds, got {len(pairs)}")
    out = []
    for i, pair in enumerate(pairs):
        pair = _sequence(f"{name}[{i}]", pair)
        if len(pair) != 2:
            raise ValueError(f"{name}[{i}]: expected (seed, weight)")
        seed = _int(f"{name}[{i}] seed", pair[0], 0, MAX_SEED)
        out.append((seed, _real(f"{name}[{i}] weight", pair[1], -MAX_LATENT, MAX_LATENT)))
    return tuple(out)


def _pair(lo, hi):
    def check(name, value):
        items = _sequence(name, value)
        if len(items) != 2:
            raise ValueError(f"{name}: expected two numbers (x, y), got {len(items)}")
        return tuple(_real(name, v, lo, hi) for v in items)

    return check


def _layer_strengths(name, value):
    if isinstance(value, dict):
        value = value.items()
    out = {}
    for pair in _sequence(name, value):
        pair = _sequence(name, pair)
        if len(pair) != 2 or not isinstance(pair[0], str) or not pair[0]:
            raise ValueError(f"{name}: expected (layer name, multiplier) pairs")
        out[pair[0]] = _real(f"{name}[{pair[0]!r}]", pair[1], 0.0, 10.0)
    return tuple(sorted(out.items()))


def _style_offsets(name, value):
    """((layer, channel, delta), ...) sorted, one entry per channel (repeats add up), zeros left out."""
    total = {}
    for index, item in enumerate(_sequence(name, value)):
        item = _sequence(f"{name}[{index}]", item)
        if len(item) != 3 or not isinstance(item[0], str) or not item[0].strip():
            raise ValueError(f"{name}[{index}]: expected (style layer name, channel, delta)")
        key = (item[0].strip(), _int(f"{name}[{index}] channel", item[1], 0, 1 << 16))
        total[key] = total.get(key, 0.0) + _real(f"{name}[{index}] delta", item[2], -MAX_LATENT, MAX_LATENT)
    if len(total) > 4096:
        raise ValueError(f"{name}: at most 4096 channels, got {len(total)}")
    return tuple((layer, channel, delta) for (layer, channel), delta in sorted(total.items()) if delta != 0.0)


def _path(name, value):
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name}: expected a file path, got {value!r}")
    return value


def _device(name, value):
    if not isinstance(value, str) or not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        raise ValueError(f"{name}: {value!r} is not auto, cpu, cuda, cuda:N or mps")
    return value


def _layer_name(name, value):
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name}: expected a layer name like 'b16.conv1', got {value!r}")
    return value.strip()


def _bool(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    return value


_VALIDATORS = {
    "pkl": _optional(_path),
    "device": _device,
    "precision": _choice(PRECISIONS),
    "seeds": _seeds,
    "seed_xy": _optional(_pair(-1e7, 1e7)),
    "z": _optional(_vector),
    "w": _optional(_vector_or_matrix),
    "class_idx": _optional(_bounded_int(0, 1 << 20)),
    "w_offset": _optional(_vector_or_matrix),
    "style_offsets": _style_offsets,
    "truncation_psi": _bounded_real(-5.0, 5.0),
    "truncation_cutoff": _optional(_bounded_int(0, 1024)),
    "mix_seed": _optional(_bounded_int(0, MAX_SEED)),
    "mix_w": _optional(_vector_or_matrix),
    "mix_layers": lambda name, value: parse_mix_layers(value),
    "mix_strength": _bounded_real(0.0, 1.0),
    "noise_mode": _choice(NOISE_MODES),
    "noise_seed": _bounded_int(0, 2**63 - 1),
    "noise_strength": _bounded_real(0.0, 10.0),
    "noise_layer_strength": _layer_strengths,
    "layer": _optional(_layer_name),
    "channel_mode": _choice(CHANNEL_MODES),
    "channel": _bounded_int(0, 1 << 16),
    "grid_channels": _bounded_int(1, 1024),
    "normalize": _choice(NORMALIZE_MODES),
    "gain_db": _bounded_real(-100.0, 100.0),
    "fft": _bool,
    "transform_translate": _pair(-100.0, 100.0),
    "transform_rotate": _bounded_real(-3600.0, 3600.0),
    "transform_scale": _bounded_real(0.01, 100.0),
    "output_scale": _bounded_real(0.125, 8.0),
}


def _to_lists(value):
    if isinstance(value, tuple):
        return [_to_lists(v) for v in value]
    return value
