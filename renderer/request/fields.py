"""One declaration per control: a RenderRequest field's metadata (label, ranges, choices, CLI flag,
widget) and the checks its validator is built from."""

import dataclasses
import math
import numbers
import re
from dataclasses import dataclass
from pathlib import Path

MAX_SEED = 2**32 - 1  # np.random.RandomState accepts seeds in [0, 2**32)
MAX_LATENT = 1e4  # bound on every z, w, offset and seed-weight value
MAX_W_INDEX = 1023  # style-mixing indices: far past any network's num_ws (18 at 1024 px)

# What draws a field in the window (app/controls.py): a slider, an integer box, radio buttons, a
# checkbox; 'custom' is a widget its panel draws itself. None: the window does not edit the field.
WIDGETS = ("slider", "int", "radio", "checkbox", "custom")


@dataclass(frozen=True)
class Control:
    """A field's metadata. `low`/`high` bound what the request accepts; `soft` is the slider's range
    where narrower (a value typed or loaded may lie outside it). `flag` is the field's CLI option
    (None: none, or one written by hand in run_app.py because it is not a plain value)."""

    check: object  # check(name, value, control) -> the canonical value; raises ValueError naming the field
    label: str = ""
    low: float | None = None
    high: float | None = None
    soft: tuple | None = None
    choices: tuple = ()
    tooltip: str = ""
    flag: str | None = None
    widget: str | None = None
    optional: bool = False  # None is a valid value ("off")

    def validate(self, name, value):
        if value is None and self.optional:
            return None
        return self.check(name, value, self)

    @property
    def slider_range(self):
        """(low, high) for the window's slider: the soft range, else the hard one."""
        return self.soft or (self.low, self.high)


def control(default, check, **metadata):
    """A dataclass field with its Control: the one place a request field is declared."""
    spec = Control(check, **metadata)
    assert spec.widget in WIDGETS + (None,), spec.widget
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: default, metadata={"control": spec})
    return dataclasses.field(default=default, metadata={"control": spec})


def control_of(field):
    """The Control of a dataclass field."""
    return field.metadata["control"]


# -- checks (each returns the canonical value; `spec` supplies the range or the choices) ----------


def real(name, value, spec=None):
    lo, hi = _bounds(spec)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value}")
    if not lo <= value <= hi:
        raise ValueError(f"{name}: {value} is outside [{lo}, {hi}]")
    return value


def integer(name, value, spec=None):
    lo, hi = _bounds(spec)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON writers sometimes say 3.0
        else:
            raise ValueError(f"{name}: expected an integer, got {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"{name}: {value} is outside [{lo}, {hi}]")
    return value


def _bounds(spec):
    if spec is None:
        return -math.inf, math.inf
    return (-math.inf if spec.low is None else spec.low), (math.inf if spec.high is None else spec.high)


def choice(name, value, spec):
    if value not in spec.choices:
        raise ValueError(f"{name}: {value!r} is not one of {', '.join(spec.choices)}")
    return value


def boolean(name, value, spec=None):
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    return value


def sequence(name, value):
    if hasattr(value, "tolist"):  # numpy arrays and torch tensors
        value = value.tolist()
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name}: expected a list, got {type(value).__name__}")
    return list(value)


def vector(name, value, spec=None):
    items = sequence(name, value)
    if not items:
        raise ValueError(f"{name}: must not be empty")
    # Latents live within a few units of the origin; 1e4 leaves room while keeping inf/NaN out
    # of the network's sums. A plain float in range (NaN fails the comparison) passes as it is:
    # a w of 18 x 512 values is validated on every edit in the window while a vector is used.
    return tuple(v if type(v) is float and -MAX_LATENT <= v <= MAX_LATENT
                 else _latent(f"{name}[{i}]", v) for i, v in enumerate(items))


def _latent(name, value):
    return real(name, value, Control(real, low=-MAX_LATENT, high=MAX_LATENT))


def _is_row(value):
    return hasattr(value, "__iter__") and not isinstance(value, (str, bytes, dict))


def vector_or_matrix(name, value, spec=None):
    """[D] or [N][D] (a leading batch of 1 is dropped); stored as a tuple of rows."""
    rows = sequence(name, value)
    if not rows:
        raise ValueError(f"{name}: must not be empty")
    if len(rows) == 1 and _is_row(rows[0]) and rows[0] and _is_row(list(rows[0])[0]):
        rows = list(rows[0])  # [1][N][D], e.g. a projector's w.npz
    if not _is_row(rows[0]):
        return (vector(name, rows),)
    matrix = tuple(vector(f"{name}[{i}]", row) for i, row in enumerate(rows))
    if len({len(row) for row in matrix}) != 1:
        raise ValueError(f"{name}: rows have different lengths")
    return matrix


def seeds(name, value, spec=None):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = [(value, 1.0)]
    pairs = sequence(name, value)
    if not pairs:
        raise ValueError(f"{name}: must not be empty")
    if len(pairs) > 256:
        raise ValueError(f"{name}: at most 256 seeds, got {len(pairs)}")
    out = []
    seed_range = Control(integer, low=0, high=MAX_SEED)
    for i, pair in enumerate(pairs):
        pair = sequence(f"{name}[{i}]", pair)
        if len(pair) != 2:
            raise ValueError(f"{name}[{i}]: expected (seed, weight)")
        out.append((integer(f"{name}[{i}] seed", pair[0], seed_range), _latent(f"{name}[{i}] weight", pair[1])))
    return tuple(out)


def pair(name, value, spec):
    items = sequence(name, value)
    if len(items) != 2:
        raise ValueError(f"{name}: expected two numbers (x, y), got {len(items)}")
    return tuple(real(name, v, spec) for v in items)


def layer_strengths(name, value, spec=None):
    if isinstance(value, dict):
        value = value.items()
    out = {}
    multiplier = Control(real, low=0.0, high=10.0)
    for item in sequence(name, value):
        item = sequence(name, item)
        if len(item) != 2 or not isinstance(item[0], str) or not item[0]:
            raise ValueError(f"{name}: expected (layer name, multiplier) pairs")
        out[item[0]] = real(f"{name}[{item[0]!r}]", item[1], multiplier)
    return tuple(sorted(out.items()))


def style_offsets(name, value, spec=None):
    """((layer, channel, delta), ...) sorted, one entry per channel (repeats add up), zeros left out."""
    total = {}
    channel_range = Control(integer, low=0, high=1 << 16)
    for index, item in enumerate(sequence(name, value)):
        item = sequence(f"{name}[{index}]", item)
        if len(item) != 3 or not isinstance(item[0], str) or not item[0].strip():
            raise ValueError(f"{name}[{index}]: expected (style layer name, channel, delta)")
        key = (item[0].strip(), integer(f"{name}[{index}] channel", item[1], channel_range))
        total[key] = total.get(key, 0.0) + _latent(f"{name}[{index}] delta", item[2])
    if len(total) > 4096:
        raise ValueError(f"{name}: at most 4096 channels, got {len(total)}")
    return tuple((layer, channel, delta) for (layer, channel), delta in sorted(total.items()) if delta != 0.0)


def path(name, value, spec=None):
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name}: expected a file path, got {value!r}")
    return value


def device(name, value, spec=None):
    if not isinstance(value, str) or not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        raise ValueError(f"{name}: {value!r} is not auto, cpu, cuda, cuda:N or mps")
    return value


def layer_name(name, value, spec=None):
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name}: expected a layer name like 'b16.conv1', got {value!r}")
    return value.strip()


_LAYER_TOKEN = re.compile(r"^(\d+)(?:-(\d+))?$")


def index_tokens(text):
    """Indices and ranges in text like '0-2,5' -> sorted indices; a token that is not one -> (token, None)."""
    picked = set()
    for token in [t for t in text.lower().replace(" ", "").split(",") if t]:
        match = _LAYER_TOKEN.match(token)
        if not match:
            return token, None
        lo, hi = int(match.group(1)), int(match.group(2) or match.group(1))
        if hi < lo:
            raise ValueError(f"mix_layers: range {token!r} is empty (hi < lo)")
        if hi > MAX_W_INDEX:  # checked before the range is made: a file may say 0-99999999999
            raise ValueError(f"mix_layers: {token!r} goes past {MAX_W_INDEX}, more ws than any network has")
        picked.update(range(lo, hi + 1))
    return None, tuple(sorted(picked))


def w_indices(name, value, spec=None):
    """Sorted distinct w indices. Text of indices and ranges ('0-2,5', as files of earlier versions
    hold) converts directly; a named group ('coarse') depends on the network, so it is resolved where
    the network is known (renderer.request.mix_indices) and refused here."""
    if isinstance(value, str):
        token, indices = index_tokens(value)
        if indices is None:
            raise ValueError(f"{name}: {token!r} is not an index or a range lo-hi (a named group such as "
                             f"'coarse' needs the network: give its indices)")
        return indices
    indices = sequence(name, value)
    if len(indices) > MAX_W_INDEX + 1:
        raise ValueError(f"{name}: at most {MAX_W_INDEX + 1} indices, got {len(indices)}")
    index_range = Control(integer, low=0, high=MAX_W_INDEX)
    return tuple(sorted({integer(f"{name}[{i}]", v, index_range) for i, v in enumerate(indices)}))
