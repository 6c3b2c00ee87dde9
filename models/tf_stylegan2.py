"""Convert an original TensorFlow StyleGAN2 Gs (read as inert data, no TensorFlow) to our StyleGAN2 Generator."""

import re

import numpy as np
import torch

from models import ops, stylegan2
from models.errors import LoadError

# TF synthesis build functions whose variables follow the StyleGAN2 naming.
SYNTHESIS_FUNCS = ("G_synthesis_stylegan2", "G_synthesis", "G_synthesis_stylegan_revised")

# Static kwargs that only steer TF's run time (truncation, training, graph building), not the weights.
RUNTIME_KWARGS = {
    "truncation_psi", "truncation_cutoff", "truncation_psi_val", "truncation_cutoff_val", "dlatent_avg_beta",
    "style_mixing_prob", "is_training", "is_validation", "return_dlatents", "is_template_graph", "components",
    "mapping_func", "synthesis_func", "randomize_noise", "fused_modconv", "structure", "force_clean_graph",
    "dtype", "dlatent_broadcast", "conditioning",
}


def _kwarg(kwargs, name, default):
    """TF's value for a static kwarg: the stored one, else TF's own default."""
    value = kwargs.get(name, default)
    return default if value is None else value


def _variables(network, prefix):
    """{'<prefix>/<local name>': float32 array} for one TF network's own variables."""
    return {f"{prefix}/{name}" if prefix else name: np.asarray(value, dtype=np.float32)
            for name, value in network.variables.items()}


def infer_architecture(tf_vars, resolution_log2, scope="synthesis/", rgb_layer="ToRGB"):
    """'resnet' if skip convs exist, 'skip' if every resolution has an RGB layer, else 'orig' (read off the variables).

    `scope` prefixes the block names ('synthesis/' in G, '' in D); `rgb_layer` is ToRGB in G, FromRGB in D.
    """
    if any(re.fullmatch(re.escape(scope) + r"\d+x\d+/Skip/weight", name) for name in tf_vars):
        return "resnet"
    has_rgb = [f"{scope}{2 ** r}x{2 ** r}/{rgb_layer}/weight" in tf_vars for r in range(2, resolution_log2 + 1)]
    return "skip" if all(has_rgb) else "orig"


def channel_base(kwargs, resolution_log2):
    """(channel_base, channel_max) of ours equal to TF's fmap_* channel layout; LoadError where none is.

    TF: nf(stage) = clip(int(fmap_base / 2**(stage * fmap_decay)), fmap_min, fmap_max), stage = log2(res) - 1;
    ours: min(channel_base // res, channel_max). They agree with channel_base = 2 * fmap_base when fmap_decay is 1.
    """
    fmap_base = int(_kwarg(kwargs, "fmap_base", 16 << 10))
    fmap_max = int(_kwarg(kwargs, "fmap_max", 512))
    fmap_min = int(_kwarg(kwargs, "fmap_min", 1))
    fmap_decay = float(_kwarg(kwargs, "fmap_decay", 1.0))
    base = fmap_base * 2
    for log2 in range(2, resolution_log2 + 1):
        tf_channels = int(np.clip(int(fmap_base / (2.0 ** ((log2 - 1) * fmap_decay))), fmap_min, fmap_max))
        if tf_channels != min(base // 2 ** log2, fmap_max):
            raise LoadError(f"unsupported channel layout (fmap_decay={fmap_decay}, fmap_min={fmap_min})")
    return base, fmap_max


def state_from_tf(module, tf_vars, source_of):
    """`module`'s state dict filled from TF variables; source_of(key) -> (TF name, transform), or None for ours."""
    state = {}
    for key, own in module.state_dict().items():
        source = source_of(key)
        if source is None:
            state[key] = own  # design constant (FIR filter), not stored by TF
            continue
        tf_name, transform = source
        if tf_name not in tf_vars:
            raise LoadError(f"missing TF variable {tf_name!r} (needed for {key})")
        value = TRANSFORMS[transform](tf_vars[tf_name])
        state[key] = torch.from_numpy(np.array(value, dtype=np.float32, order="C"))
    return state


def tf_init_kwargs(gs, tf_vars):
    """Init kwargs (stylegan2-ada layout) equivalent to a TF G_main's static kwargs, checked against its variables."""
    synthesis = gs.components["synthesis"]
    mapping = gs.components["mapping"]
    # G_main hands all its kwargs to both components; each component's own copy is what built it.
    syn_kwargs = {**gs.static_kwargs, **synthesis.static_kwargs}
    map_kwargs = {**gs.static_kwargs, **mapping.static_kwargs}

    resolution = int(_kwarg(syn_kwargs, "resolution", 1024))
    resolution_log2 = int(np.log2(resolution))
    if resolution < 4 or 2 ** resolution_log2 != resolution:
        raise LoadError(f"unsupported resolution {resolution}")
    z_dim = int(_kwarg(map_kwargs, "latent_size", 512))
    c_dim = int(_kwarg(map_kwargs, "label_size", 0))
    w_dim = int(_kwarg(map_kwargs, "dlatent_size", 512))
    img_channels = int(_kwarg(syn_kwargs, "num_channels", 3))

    for name, needed in (("normalize_latents", True), ("use_wscale", True)):
        if name in map_kwargs and bool(map_kwargs[name]) != needed:
            raise LoadError(f"unsupported TF kwarg {name}={map_kwargs[name]!r}")

    base, fmap_max = channel_base(syn_kwargs, resolution_log2)

    # The width of the hidden mapping layers is TF's mapping_fmaps (default 512, whatever dlatent_size is);
    # the stored weights say it best.
    num_layers = int(_kwarg(map_kwargs, "mapping_layers", 8))
    layer_features = int(_kwarg(map_kwargs, "mapping_fmaps", 512))
    if num_layers > 1 and "mapping/Dense0/weight" in tf_vars:
        layer_features = int(tf_vars["mapping/Dense0/weight"].shape[1])

    mapping_kwargs = dict(
        num_layers=num_layers,
        embed_features=None,
        layer_features=layer_features,
        activation=_kwarg(map_kwargs, "mapping_nonlinearity", "lrelu"),
        lr_multiplier=float(_kwarg(map_kwargs, "mapping_lrmul", 0.01)),
        w_avg_beta=float(_kwarg(gs.static_kwargs, "dlatent_avg_beta", 0.995)),
    )
    if c_dim > 0:
        if "mapping/LabelConcat/weight" in tf_vars:  # original StyleGAN2: concat, then normalise together
            mapping_kwargs["label_concat"] = True
        elif "mapping/LabelEmbed/weight" in tf_vars:  # stylegan2-ada TF: embed and normalise separately
            mapping_kwargs["embed_features"] = int(tf_vars["mapping/LabelEmbed/weight"].shape[1])
        else:
            raise LoadError(f"label_size={c_dim} but no label embedding variables in the mapping network")

    resample_kernel = _kwarg(syn_kwargs, "resample_kernel", [1, 3, 3, 1])
    synthesis_kwargs = dict(
        channel_base=base,
        channel_max=fmap_max,
        num_fp16_res=int(_kwarg(syn_kwargs, "num_fp16_res", 0)),
        conv_clamp=syn_kwargs.get("conv_clamp"),
        architecture=infer_architecture(tf_vars, resolution_log2),
        resample_filter=[float(v) for v in np.asarray(resample_kernel).ravel()],
        use_noise=True,
        activation=_kwarg(syn_kwargs, "nonlinearity", "lrelu"),
    )
    return dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=resolution, img_channels=img_channels,
                mapping_kwargs=mapping_kwargs, synthesis_kwargs=synthesis_kwargs, flavour="stylegan2-ada")


def _tf_source(key):
    """For one of our state-dict keys: (TF variable name, transform name), or None for design constants."""
    rules = [
        (r".*\.resample_filter", lambda: None),  # the FIR filter is a design constant, not stored by TF
        (r"mapping\.w_avg", lambda: ("dlatent_avg", "as_is")),
        (r"mapping\.embed\.weight", lambda: ("mapping/LabelEmbed/weight", "transpose")),
        (r"mapping\.embed\.bias", lambda: ("mapping/LabelEmbed/bias", "as_is")),
        (r"mapping\.fc(\d+)\.weight", lambda i: (f"mapping/Dense{i}/weight", "transpose")),
        (r"mapping\.fc(\d+)\.bias", lambda i: (f"mapping/Dense{i}/bias", "as_is")),
        (r"synthesis\.b4\.const", lambda: ("synthesis/4x4/Const/const", "first")),
        (r"synthesis\.b4\.conv1\.(.*)", lambda rest: _layer_source("synthesis/4x4/Conv", rest, noise_index=0)),
        (r"synthesis\.b(\d+)\.conv0\.(.*)", lambda r, rest: _layer_source(
            f"synthesis/{r}x{r}/Conv0_up", rest, noise_index=2 * int(np.log2(int(r))) - 5, flip=True)),
        (r"synthesis\.b(\d+)\.conv1\.(.*)", lambda r, rest: _layer_source(
            f"synthesis/{r}x{r}/Conv1", rest, noise_index=2 * int(np.log2(int(r))) - 4)),
        (r"synthesis\.b(\d+)\.torgb\.(.*)", lambda r, rest: _layer_source(f"synthesis/{r}x{r}/ToRGB", rest)),
        # A 1x1 kernel: the flip that TF's up-conv implies is a no-op, so none is applied.
        (r"synthesis\.b(\d+)\.skip\.weight", lambda r: (f"synthesis/{r}x{r}/Skip/weight", "conv")),
    ]
    return source_by_rules(rules, key)


def source_by_rules(rules, key):
    """What the first (regex, source) rule that matches all of `key` gives for its groups; LoadError if none does."""
    for pattern, source in rules:
        match = re.fullmatch(pattern, key)
        if match:
            return source(*match.groups())
    raise LoadError(f"no TF variable corresponds to {key!r}")


def _layer_source(scope, rest, noise_index=None, flip=False):
    """TF source of one modulated layer's parameter (weight, bias, affine.*, noise_*)."""
    if rest == "weight":
        return f"{scope}/weight", "conv_flip" if flip else "conv"
    if rest == "bias":
        return f"{scope}/bias", "as_is"
    if rest == "affine.weight":
        return f"{scope}/mod_weight", "transpose"
    if rest == "affine.bias":
        return f"{scope}/mod_bias", "plus_one"  # TF adds the 1 at run time; NVIDIA's PyTorch stores it
    if rest == "noise_strength":
        return f"{scope}/noise_strength", "as_is"
    if rest == "noise_const":
        return f"synthesis/noise{noise_index}", "noise"
    raise LoadError(f"no TF variable corresponds to {scope}/{rest}")


TRANSFORMS = {
    "as_is": lambda v: v,
    "transpose": lambda v: v.T,  # dense [in, out] -> [out, in]
    "conv": lambda v: v.transpose(3, 2, 0, 1),  # [kh, kw, in, out] -> [out, in, kh, kw]
    # TF's transposed up-conv uses the kernel flipped relative to NVIDIA's PyTorch one.
    "conv_flip": lambda v: v[::-1, ::-1].transpose(3, 2, 0, 1),
    "first": lambda v: v[0],  # const [1, C, 4, 4] -> [C, 4, 4]
    "noise": lambda v: v[0, 0],  # [1, 1, R, R] -> [R, R]
    "plus_one": lambda v: v + np.float32(1),
}


def _orig_torgb_aliases(tf_vars, resolution):
    """TF 'revised' synthesis names ToRGB per lod (ToRGB_lod0 = full resolution); give them per-res names."""
    aliases = {}
    for name, value in tf_vars.items():
        match = re.fullmatch(r"synthesis/ToRGB_lod(\d+)/(.*)", name)
        if match:
            r = resolution // (2 ** int(match.group(1)))
            aliases[f"synthesis/{r}x{r}/ToRGB/{match.group(2)}"] = value
    return aliases


def from_tf(gs):
    """A Generator with the weights of TF StyleGAN2 network Gs (a safe_pickle TFNetwork built by G_main)."""
    if gs.build_func_name != "G_main":
        raise LoadError(f"not a StyleGAN2 generator (build function {gs.build_func_name!r})")
    synthesis = gs.components.get("synthesis")
    mapping = gs.components.get("mapping")
    if synthesis is None or mapping is None:
        raise LoadError("TF generator lacks its mapping or synthesis component")
    if synthesis.build_func_name not in SYNTHESIS_FUNCS:
        raise LoadError(f"unsupported TF synthesis network {synthesis.build_func_name!r}")

    tf_vars = {**_variables(gs, ""), **_variables(synthesis, "synthesis"), **_variables(mapping, "mapping")}
    resolution = int(_kwarg({**gs.static_kwargs, **synthesis.static_kwargs}, "resolution", 1024))
    tf_vars.update(_orig_torgb_aliases(tf_vars, resolution))

    init_kwargs = tf_init_kwargs(gs, tf_vars)
    try:
        G = stylegan2.build(init_kwargs)
    except (TypeError, ValueError, KeyError) as err:
        raise LoadError(f"cannot build a StyleGAN2 generator from TF kwargs: {err}") from None

    label_concat = init_kwargs["mapping_kwargs"].get("label_concat", False)

    def source_of(key):
        if key == "mapping.embed.weight" and label_concat:
            return ("mapping/LabelConcat/weight", "transpose")  # y = labels @ W, W [label_size, latent_size]
        return _tf_source(key)

    stylegan2.load_state_dict_checked(G, state_from_tf(G, tf_vars, source_of))
    G.info["tf_static_kwargs"] = ops.plain_values(
        {k: v for k, v in gs.static_kwargs.items() if isinstance(v, (int, float, str, bool, list, type(None)))})
    return G
