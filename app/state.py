"""ExplorerState: every value the user set, declared once, with undo/redo; the only source of RenderRequests."""

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from renderer.request import RenderRequest, field_default, request_controls
from renderer.request.latents import SEED_STEP_Y, direction_sum, seed_xy_blend

# Edits of the same control closer together than this are one undo step (a slider drag).
UNDO_COALESCE_SECONDS = 0.8
UNDO_DEPTH = 200


@dataclass(frozen=True)
class Param:
    """One user-settable value: its default, its (slider) range and the words shown beside its control."""

    name: str
    default: object
    label: str = ""
    low: float | None = None
    high: float | None = None
    tooltip: str = ""
    choices: tuple = ()
    widget: str | None = None  # how app/controls.py draws it (see renderer/request/fields.py WIDGETS)


# Where the window starts differently from a request's default.
WINDOW_DEFAULTS = {
    "mix_seed": 1,  # the box always shows a seed; mixing is switched by mix_enabled
    "normalize": "std",  # used for feature maps only (to_request): the output image is never normalised
}


def request_param(name):
    """The state value a RenderRequest field is edited through, made from the field's declaration."""
    spec = request_controls()[name]
    low, high = spec.slider_range
    return Param(name, WINDOW_DEFAULTS.get(name, field_default(name)), spec.label, low, high, spec.tooltip,
                 spec.choices, spec.widget)


# The request's part of the state: every field declared with a widget, under the field's name.
REQUEST_PARAMS = [request_param(name) for name, spec in request_controls().items() if spec.widget]
REQUEST_NAMES = tuple(p.name for p in REQUEST_PARAMS)

# What is not in a request: the seed plane and its blend, loaded vectors, animation, UI-only values.
PARAMS = REQUEST_PARAMS + [
    Param("seed_x", 0.0, "Seed", tooltip="Seed; fractional values blend neighbouring seeds"),
    Param("seed_y", 0.0, "Seed row", tooltip="Drag on the image to move through seed space"),
    Param("blend_seeds", (), "Blend", tooltip="Extra (seed, weight) pairs blended with the main seed"),
    Param("blend_space", "w", "Blend in", tooltip="Blend the seeds' z vectors or their w vectors",
          choices=("z", "w"), widget="radio"),
    # (kind 'z' or 'w', name, values): a loaded or frozen vector, used instead of the seeds.
    Param("latent", None, "Latent vector", tooltip="A z or w from a file, or the image's w frozen: used instead of the seeds"),
    # ((name, strength, limit, rows), ...): rows [1 or num_ws][w_dim], added to every w times strength.
    Param("directions", (), "Directions", tooltip="Directions in W, each added to the ws times its strength"),
    # ((layer, channel, strength, unit), ...): StyleSpace offsets of strength x unit (unit: the channel's std).
    Param("style_channels", (), "StyleSpace channels", tooltip="Style channels, each moved by strength x its std"),
    Param("animate", False, "Animate", tooltip="Walk through seeds on its own", widget="checkbox"),
    Param("animate_speed", 0.25, "Speed", 0.0, 4.0, "Seeds per second while animating", widget="slider"),
    Param("mix_enabled", False, "Style mixing", tooltip="Take the chosen layers' styles from the mix seed",
          widget="checkbox"),
    # The request's transform_translate, one slider per axis.
    Param("translate_x", 0.0, "Translate x", -1.0, 1.0, widget="slider"),
    Param("translate_y", 0.0, "Translate y", -1.0, 1.0, widget="slider"),
    Param("preview", True, "Preview while dragging", tooltip="Low-resolution frames while a control moves",
          widget="checkbox"),
]
PARAM_BY_NAME = {p.name: p for p in PARAMS}


def freeze(value):
    """Lists become tuples (recursively) so that a snapshot can never be changed behind our back."""
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    return value


class ExplorerState:
    """The values behind every control, plus undo and redo over them."""

    def __init__(self, clock=time.monotonic):
        self.values = {p.name: freeze(p.default) for p in PARAMS}
        self.version = 0  # bumps on every change; the app re-submits when it moves
        self._undo = []
        self._redo = []
        self._last_edit = (None, -1e9)
        self._clock = clock
        self.previous_network = {}  # the network-bound values before the last change of network

    def __getitem__(self, name):
        return self.values[name]

    def snapshot(self):
        return dict(self.values)

    def set(self, name, value, coalesce=True):
        """Set one value as one user edit; returns True when it changed anything."""
        return self.update({name: value}, coalesce=coalesce)

    def update(self, changes, coalesce=True):
        """Apply several values as one user edit (one undo step)."""
        for name in changes:
            if name not in PARAM_BY_NAME:
                raise KeyError(f"unknown state value {name!r}")
        changes = {k: freeze(v) for k, v in changes.items()}
        if all(self.values[k] == v for k, v in changes.items()):
            return False
        if "latent" not in changes and any(k in SEED_SOURCES and self.values[k] != v for k, v in changes.items()):
            changes["latent"] = None  # a seed edit goes back to the seeds from a loaded vector
        if changes.get("pkl", self.values["pkl"]) != self.values["pkl"]:
            # Vectors belong to a network's z and w spaces; another network may not even take their
            # shape. Kept aside, for when that network fails to open (restore_previous_network).
            self.previous_network = {name: self.values[name] for name in NETWORK_BOUND}
            changes.setdefault("latent", None)
            changes.setdefault("directions", ())
            changes.setdefault("style_channels", ())
        key = tuple(sorted(changes))
        now = self._clock()
        last_key, last_time = self._last_edit
        # A drag sends many values in a row: keep them as one undo step.
        if not (coalesce and key == last_key and now - last_time < UNDO_COALESCE_SECONDS and self._undo):
            self._undo.append(self.snapshot())
            del self._undo[:-UNDO_DEPTH]
        self._last_edit = (key, now)
        self._redo.clear()
        self.values.update(changes)
        self.version += 1
        return True

    def restore_previous_network(self, pkl):
        """A network that failed to open: back to `pkl` with the vectors it had, outside the undo
        history (the failed file never showed)."""
        self.values.update(self.previous_network, pkl=pkl)
        self.version += 1

    def adjust(self, changes):
        """Change values without an undo step of their own. For values that follow from the edit just
        made (they join its undo step: undo takes both back), from the network just loaded (adapting to
        it: undoing the change of network brings back the values that fit the old one), or from the
        animation (which would otherwise fill the history). Each caller says which."""
        for name in changes:
            if name not in PARAM_BY_NAME:
                raise KeyError(f"unknown state value {name!r}")
        changes = {k: freeze(v) for k, v in changes.items() if self.values[k] != freeze(v)}
        if changes:
            self.values.update(changes)
            self.version += 1
        return bool(changes)

    def can_undo(self):
        return bool(self._undo)

    def can_redo(self):
        return bool(self._redo)

    def undo(self):
        if not self._undo:
            return False
        self._redo.append(self.snapshot())
        self._restore(self._undo.pop())
        return True

    def redo(self):
        if not self._redo:
            return False
        self._undo.append(self.snapshot())
        self._restore(self._redo.pop())
        return True

    def _restore(self, snapshot):
        self.values = dict(snapshot)
        self._last_edit = (None, -1e9)
        self.version += 1

    def reset(self, keep=("pkl",)):
        """Every value back to its default (one undo step), except those in keep."""
        defaults = {p.name: freeze(p.default) for p in PARAMS if p.name not in keep}
        return self.update(defaults, coalesce=False)

    def seeds(self):
        """The seed blend as (seed, weight) pairs: the seed plane's neighbours plus any extra seeds."""
        pairs = list(seed_xy_blend(self["seed_x"], self["seed_y"]))
        pairs += [(int(s) % (1 << 32), float(w)) for s, w in self["blend_seeds"] if float(w) != 0]
        return pairs

    def to_request(self, device="auto", z_dim=None, precision="fp32"):
        """The RenderRequest for the current values (validated by RenderRequest itself).

        z_dim is needed only for blending in Z (the request blends seeds in W, so a Z blend
        is computed here with NVIDIA's seed convention and sent as z).
        """
        v = self.values
        latent = {}
        extras = [(s, w) for s, w in self["blend_seeds"] if float(w) != 0]
        if v["latent"] is not None:
            kind, _name, values = v["latent"]
            latent[kind] = values
        elif v["blend_space"] == "z" and z_dim and len(self.seeds()) > 1:
            latent["z"] = blend_z(self.seeds(), z_dim)
        elif extras:
            latent["seeds"] = self.seeds()
        elif float(v["seed_x"]).is_integer() and float(v["seed_y"]).is_integer():
            seed = (int(v["seed_x"]) + int(v["seed_y"]) * SEED_STEP_Y) % (1 << 32)
            latent["seeds"] = ((seed, 1.0),)
        else:
            latent["seed_xy"] = (v["seed_x"], v["seed_y"])
        window = {name: v[name] for name in REQUEST_NAMES}  # the request-shaped values, as they are
        if not (v["mix_enabled"] and v["mix_layers"]):
            window.update(mix_seed=None, mix_layers=())
        if v["layer"] is None:
            window["normalize"] = "none"  # normalising is for feature maps; the image is shown as made
        return RenderRequest(
            device=device, precision=precision, **latent, **window,
            w_offset=direction_offset(v["directions"]), style_offsets=style_offsets(v["style_channels"]),
            transform_translate=(v["translate_x"], v["translate_y"]),
        )

    def load_request(self, request, ws_resolutions=None):
        """Take a RenderRequest's values into the state (one undo step). Returns notes on what was approximated."""
        notes = []
        changes = {name: getattr(request, name) for name in REQUEST_NAMES}
        for name, unused in (("pkl", request.pkl is None), ("normalize", request.layer is None)):
            if unused:
                del changes[name]  # no network named: keep the open one; no layer: keep the view's choice
        changes["translate_x"], changes["translate_y"] = request.transform_translate
        changes["latent"] = None
        for kind in ("w", "z"):
            if getattr(request, kind) is not None:
                changes["latent"] = (kind, "the session", getattr(request, kind))
        changes["directions"] = ()
        if request.w_offset is not None:
            changes["directions"] = (("offset from the session", 1.0, DIRECTION_LIMIT, request.w_offset),)
        # The session's offsets at strength 1 (their channels' std is not known here).
        changes["style_channels"] = tuple((layer, channel, 1.0, delta) for layer, channel, delta in request.style_offsets)
        if request.mixing and request.mix_w is not None:
            notes.append("the session's mix_w is not editable here; style mixing is off")
        if request.seed_xy is not None:
            changes.update(seed_x=float(request.seed_xy[0]), seed_y=float(request.seed_xy[1]), blend_seeds=())
        else:
            (first, weight), *rest = request.seeds
            if weight != 1.0:
                notes.append(f"seed {first} weight {weight} taken as 1")
            changes.update(seed_x=float(first), seed_y=0.0, blend_seeds=tuple(rest))
        changes["mix_enabled"] = bool(request.mixing and request.mix_w is None and request.mix_seed is not None)
        if not changes["mix_enabled"]:
            del changes["mix_seed"], changes["mix_layers"]  # the window keeps its own
        elif ws_resolutions:
            changes["mix_layers"] = tuple(i for i in request.mix_layers if i < len(ws_resolutions))
        self.update(changes, coalesce=False)
        return notes

    def to_json_dict(self):
        return {name: _thaw(value) for name, value in self.values.items()}


# Values that pick the seeds: editing one leaves a loaded latent vector for the seeds again.
SEED_SOURCES = ("seed_x", "seed_y", "blend_seeds")
# Values that only make sense with the network they were made for.
NETWORK_BOUND = ("pkl", "latent", "directions", "style_channels")
# The strength slider's range for a direction (a loaded file's or one between two seeds' ws).
DIRECTION_LIMIT = 10.0


def direction_offset(directions):
    """The request's w_offset: the sum of strength x rows over the directions (None when nothing is added)."""
    return direction_sum((strength, rows) for _name, strength, _limit, rows in directions)


def style_offsets(channels):
    """The request's style_offsets: strength x unit per StyleSpace channel."""
    return tuple((layer, channel, strength * unit) for layer, channel, strength, unit in channels)


def blend_z(pairs, z_dim):
    """A weighted sum of the seeds' z (NVIDIA: RandomState(seed).randn(z_dim)), rescaled so that
    its spread stays that of one z (a plain weighted sum of independent normals shrinks)."""
    z = np.zeros(z_dim)
    for seed, weight in pairs:
        z += weight * np.random.RandomState(seed).randn(1, z_dim)[0]
    norm = math.sqrt(sum(w * w for _, w in pairs)) or 1.0
    return tuple(float(x) for x in z / norm)


def _thaw(value):
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def write_json_atomic(path, data):
    """Write JSON through a temporary file so that a crash never leaves half a session."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(path)
