"""RenderRequest: the frozen, validated description of everything that decides one frame.

Each field is declared once, with its metadata (renderer/request/fields.py): the validator, the
window's widget and reset, the state's defaults and the CLI flags are all made from it."""

import dataclasses
import json
from dataclasses import dataclass

from renderer.request import fields as check
from renderer.request.fields import MAX_SEED, control, control_of
from renderer.request.latents import seed_xy_blend

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

    # Each field: control(default, check, label=, low=/high= (what is accepted), soft= (the slider's
    # range where narrower), choices=, tooltip=, flag= (CLI), widget= (app/controls.py)).

    # The network: file (None = the embedded default model), device and precision.
    pkl: str | None = control(None, check.path, optional=True, label="Network file", widget="custom",
                              tooltip="None: the embedded default model")
    # 'auto' (cuda when available), 'cpu', 'cuda', 'cuda:N', 'mps'
    device: str = control("auto", check.device, label="Device")
    precision: str = control("fp32", check.choice, choices=PRECISIONS, flag="--precision",
                             tooltip="fp16 lets fp16 layers run in half on CUDA")

    # Latent: a weighted blend of seeds ((seed, weight), ...); an int means ((seed, 1.0),).
    seeds: tuple = control(((0, 1.0),), check.seeds)
    # Fractional seed-plane position (x, y), NVIDIA visualizer convention: see seed_xy_blend().
    seed_xy: tuple | None = control(None, check.pair, optional=True, low=-1e7, high=1e7)
    z: tuple | None = control(None, check.vector, optional=True)  # [z_dim]
    # [w_dim] (every layer) or [num_ws][w_dim]; used as is, no truncation
    w: tuple | None = control(None, check.vector_or_matrix, optional=True)
    # Conditional models; None = NVIDIA visualizer's seeded pick.
    class_idx: int | None = control(None, check.integer, optional=True, low=0, high=1 << 20, label="Class",
                                    flag="--class", widget="custom",
                                    tooltip="Conditional networks: the class label (off: picked from the seed)")
    # Added to the final ws: [w_dim] or [num_ws][w_dim].
    w_offset: tuple | None = control(None, check.vector_or_matrix, optional=True)
    # StyleSpace: ((style layer, channel, delta), ...) added to those layers' styles (affine outputs).
    style_offsets: tuple = control((), check.style_offsets)

    truncation_psi: float = control(1.0, check.real, low=-5.0, high=5.0, soft=(-1.0, 2.0), label="Truncation psi",
                                    flag="--psi", widget="slider", tooltip="Pull w toward the average (1: off)")
    truncation_cutoff: int | None = control(None, check.integer, optional=True, low=0, high=1024, label="Cutoff",
                                            flag="--cutoff", widget="custom",
                                            tooltip="Apply psi to the first N ws only (off: all)")

    # Style mixing: lerp ws[mix_layers] toward the mix source's ws by mix_strength.
    mix_seed: int | None = control(None, check.integer, optional=True, low=0, high=MAX_SEED, label="Mix seed",
                                   flag="--mix-seed", widget="int", tooltip="The style-mixing source seed")
    mix_w: tuple | None = control(None, check.vector_or_matrix, optional=True)  # wins over mix_seed
    # Sorted w indices, () = no mixing. The CLI's text ('4-7', 'coarse', 'middle,fine') is turned
    # into indices by mix_indices once the network is known.
    mix_layers: tuple = control((), check.w_indices, label="Mixed layers", flag="--mix-layers", widget="custom",
                                tooltip="Indices of the ws taken from the mix seed")
    mix_strength: float = control(1.0, check.real, low=0.0, high=1.0, label="Mix strength", flag="--mix-strength",
                                  widget="slider", tooltip="0: the main seed, 1: the mix seed's styles")

    noise_mode: str = control("const", check.choice, choices=NOISE_MODES, label="Noise mode", flag="--noise-mode",
                              widget="radio", tooltip="const: the learned fixed noise; random: seeded")
    noise_seed: int = control(0, check.integer, low=0, high=2**63 - 1, label="Noise seed", flag="--noise-seed",
                              widget="int", tooltip="Seed of the random noise")
    noise_strength: float = control(1.0, check.real, low=0.0, high=10.0, soft=(0.0, 4.0), label="Noise strength",
                                    flag="--noise-strength", widget="slider",
                                    tooltip="Multiplies every layer's learned strength")
    # ((layer name, multiplier), ...); a dict is accepted.
    noise_layer_strength: tuple = control((), check.layer_strengths, label="Per-layer noise", widget="custom",
                                          tooltip="(layer, multiplier) pairs")

    # Feature-map view: layer None shows the output image.
    layer: str | None = control(None, check.layer_name, optional=True, label="Layer", flag="--layer",
                                widget="custom", tooltip="Show this layer's feature maps instead of the image")
    # 'rgb': channels channel..channel+2; 'one': channel; 'grid': grid_channels from channel.
    channel_mode: str = control("rgb", check.choice, choices=CHANNEL_MODES, label="View", widget="radio",
                                tooltip="rgb: three channels; one: a channel; grid: many")
    channel: int = control(0, check.integer, low=0, high=1 << 16, soft=(0, 4096), label="Base channel",
                           widget="slider", tooltip="The first channel shown")
    grid_channels: int = control(16, check.integer, low=1, high=1024, soft=(1, 256), label="Grid channels",
                                 widget="slider", tooltip="How many channels the grid shows")
    normalize: str = control("none", check.choice, choices=NORMALIZE_MODES, label="Normalise", flag="--normalize",
                             widget="radio", tooltip="Per channel: min-max, or +-2 std to the display range")
    gain_db: float = control(0.0, check.real, low=-100.0, high=100.0, soft=(-40.0, 40.0), label="Gain",
                             flag="--gain-db", widget="slider", tooltip="Brightens (or, with FFT, shifts) the view")
    fft: bool = control(False, check.boolean, label="FFT", flag="--fft", widget="checkbox",
                        tooltip="Show the power spectrum in dB")

    # StyleGAN3 input transform (ignored by other architectures) and output scaling.
    transform_translate: tuple = control((0.0, 0.0), check.pair, low=-100.0, high=100.0)
    transform_rotate: float = control(0.0, check.real, low=-3600.0, high=3600.0, soft=(-180.0, 180.0), label="Rotate",
                                      flag="--rotate", widget="slider", tooltip="StyleGAN3 input rotation in degrees")
    transform_scale: float = control(1.0, check.real, low=0.01, high=100.0, soft=(0.25, 4.0), label="Scale",
                                     flag="--scale", widget="slider", tooltip="StyleGAN3 input scale")
    # Resize of the final image: nearest up, Lanczos down.
    output_scale: float = control(1.0, check.real, low=0.125, high=8.0, flag="--output-scale",
                                  tooltip="Resize the written image by this factor")

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = control_of(field).validate(field.name, getattr(self, field.name))
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
        return has_source and bool(self.mix_layers) and self.mix_strength > 0

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
    def from_dict(cls, data, ws_resolutions=None):
        """Build from to_dict() output; unknown keys are an error (they are likely typos).

        Files of earlier versions hold mix_layers as text: indices and ranges ('0-2,5') convert
        directly; a named group ('coarse') is resolved with ws_resolutions, the network's, where the
        caller knows it, else refused with one line (its layers depend on the network)."""
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
        if isinstance(data.get("mix_layers"), str) and ws_resolutions:
            data["mix_layers"] = mix_indices(data["mix_layers"], ws_resolutions)
        try:
            return cls(**data)
        except (TypeError, KeyError, IndexError, OverflowError, RecursionError) as exc:  # odd JSON values
            raise ValueError(f"request: malformed value ({type(exc).__name__})") from None

    @classmethod
    def from_json(cls, text):
        from models.limits import load_json  # size, nesting and integer length bounded first

        return cls.from_dict(load_json(text, "request"))


# -- the declarations, for the window and the CLI -----------------------------------------


def request_controls():
    """{field name: Control} in declaration order."""
    return {field.name: control_of(field) for field in dataclasses.fields(RenderRequest)}


def field_default(name):
    """A field's declared default."""
    return RenderRequest.__dataclass_fields__[name].default


# -- style-mixing layers: text at the edges (CLI, old files), indices everywhere else ----------


def mix_indices(spec, ws_resolutions):
    """The sorted w indices that text such as '4-7', '0,2,5', 'coarse' or 'middle,fine' picks for a
    network with these ws_resolutions (a group: the ws feeding its resolutions). ValueError naming
    mix_layers for anything else, or indices the network does not have."""
    if not isinstance(spec, str):
        raise ValueError(f"mix_layers: expected text like '4-7' or 'coarse', got {spec!r}")
    picked = set()
    for token in [t for t in spec.lower().replace(" ", "").split(",") if t]:
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
        bad, indices = check.index_tokens(token)
        if indices is None:
            raise ValueError(f"mix_layers: {bad!r} is not an index, a range lo-hi or one of {', '.join(MIX_GROUPS)}")
        if indices and indices[-1] >= len(ws_resolutions):
            raise ValueError(f"mix_layers: {token!r} is outside 0-{len(ws_resolutions) - 1} for this network")
        picked.update(indices)
    return sorted(picked)


def check_mix_layers(indices, num_ws):
    """The indices as a list; ValueError naming mix_layers when the network has fewer ws."""
    outside = [i for i in indices if i >= num_ws]
    if outside:
        raise ValueError(f"mix_layers: {outside[0]} is outside 0-{num_ws - 1} for this network")
    return list(indices)


def _to_lists(value):
    if isinstance(value, tuple):
        return [_to_lists(v) for v in value]
    return value
