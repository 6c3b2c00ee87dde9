"""StyleGAN (v1) from NVIDIA's TensorFlow pickles (G_style): init kwargs and weights for models/stylegan1.py."""

import math

import numpy as np
import torch

from models.errors import LoadError
from models.stylegan1 import build

# Hyper-parameters of the TF build functions (G_style, G_mapping, G_synthesis) when a pickle's
# static_kwargs leave them out. The official pickles store only num_channels, resolution and
# label_size, so everything else must come from here.
TF_DEFAULTS = {
    "num_channels": 3,
    "resolution": 1024,
    "label_size": 0,
    "latent_size": 512,
    "dlatent_size": 512,
    "mapping_layers": 8,
    "mapping_fmaps": 512,
    "mapping_lrmul": 0.01,
    "mapping_nonlinearity": "lrelu",
    "normalize_latents": True,
    "fmap_base": 8192,
    "fmap_decay": 1.0,
    "fmap_max": 512,
    "use_styles": True,
    "const_input_layer": True,
    "use_noise": True,
    "nonlinearity": "lrelu",
    "use_wscale": True,
    "use_pixel_norm": False,
    "use_instance_norm": True,
    "fused_scale": "auto",
    "blur_filter": [1, 2, 1],
    "structure": "auto",
    "dtype": "float32",
}


def init_kwargs_from_tf(static_kwargs):
    """Our constructor kwargs from a G_style static_kwargs dict (missing entries take TF defaults)."""
    tf = dict(TF_DEFAULTS)
    tf.update(static_kwargs)
    if not tf["use_styles"]:
        raise LoadError("StyleGAN v1 networks built with use_styles=False are not supported")
    if tf["dtype"] not in ("float32", "float16"):
        raise LoadError(f"StyleGAN v1: unsupported dtype {tf['dtype']!r}")
    for key in ("nonlinearity", "mapping_nonlinearity"):
        if tf[key] not in ("lrelu", "relu"):
            raise LoadError(f"StyleGAN v1: unsupported {key} {tf[key]!r}")
    if tf["fused_scale"] not in (True, False, "auto"):
        raise LoadError(f"StyleGAN v1: unsupported fused_scale {tf['fused_scale']!r}")
    resolution = int(tf["resolution"])
    if resolution < 4 or resolution & (resolution - 1):
        raise LoadError(f"StyleGAN v1: resolution {resolution} is not a power of two >= 4")
    blur = tf["blur_filter"]
    return {
        "z_dim": int(tf["latent_size"]),
        "c_dim": int(tf["label_size"]),
        "w_dim": int(tf["dlatent_size"]),
        "img_resolution": resolution,
        "img_channels": int(tf["num_channels"]),
        "mapping_layers": int(tf["mapping_layers"]),
        "mapping_fmaps": int(tf["mapping_fmaps"]),
        "mapping_lrmul": float(tf["mapping_lrmul"]),
        "mapping_nonlinearity": tf["mapping_nonlinearity"],
        "normalize_latents": bool(tf["normalize_latents"]),
        "fmap_base": int(tf["fmap_base"]),
        "fmap_decay": float(tf["fmap_decay"]),
        "fmap_max": int(tf["fmap_max"]),
        "const_input_layer": bool(tf["const_input_layer"]),
        "use_noise": bool(tf["use_noise"]),
        "nonlinearity": tf["nonlinearity"],
        "use_wscale": bool(tf["use_wscale"]),
        "use_pixel_norm": bool(tf["use_pixel_norm"]),
        "use_instance_norm": bool(tf["use_instance_norm"]),
        "fused_scale": tf["fused_scale"],
        "blur_filter": [float(v) for v in blur] if blur else None,
        # 'fixed' builds only the final ToRGB; 'linear'/'recursive'/'auto' build one per resolution.
        "progressive_torgb": tf["structure"] != "fixed",
    }


def _tf_to_torch_names(G):
    """{TF variable path: (our state-dict key, how to reshape)} for a generator G built by build()."""
    names = {"dlatent_avg": ("mapping.w_avg", "copy"), "lod": ("synthesis.lod", "copy")}
    mapping = G.mapping
    if mapping.c_dim:
        names["mapping/LabelConcat/weight"] = ("mapping.embed.weight", "dense")
    for idx in range(mapping.num_layers):
        names[f"mapping/Dense{idx}/weight"] = (f"mapping.fc{idx}.weight", "dense")
        names[f"mapping/Dense{idx}/bias"] = (f"mapping.fc{idx}.bias", "copy")
    synthesis = G.synthesis
    names["synthesis/lod"] = (None, "skip")  # G_style overwrites it with its own lod before running
    tf_layer = {"const": "Const", "dense": "Dense", "conv": "Conv", "conv0_up": "Conv0_up", "conv1": "Conv1"}
    layer_idx = 0
    for res in synthesis.block_resolutions:
        block = getattr(synthesis, f"b{res}")
        for name in block.layer_names:
            ours = f"synthesis.b{res}.{name}"
            tf = f"synthesis/{res}x{res}/{tf_layer[name]}"
            layer = getattr(block, name)
            if layer.kind == "const":
                names[f"{tf}/const"] = (f"{ours}.const", "const")
            elif layer.kind == "dense":
                names[f"{tf}/weight"] = (f"{ours}.weight", "dense")
            else:
                names[f"{tf}/weight"] = (f"{ours}.weight", "conv")
            if layer.use_noise:
                names[f"synthesis/noise{layer_idx}"] = (f"{ours}.noise_const", "noise")
                names[f"{tf}/Noise/weight"] = (f"{ours}.noise_strength", "copy")
            names[f"{tf}/bias"] = (f"{ours}.bias", "copy")
            names[f"{tf}/StyleMod/weight"] = (f"{ours}.affine.weight", "dense")
            names[f"{tf}/StyleMod/bias"] = (f"{ours}.affine.bias", "copy")
            layer_idx += 1
        if hasattr(block, "torgb"):
            lod = synthesis.resolution_log2 - int(round(math.log2(res)))
            names[f"synthesis/ToRGB_lod{lod}/weight"] = (f"synthesis.b{res}.torgb.weight", "conv")
            names[f"synthesis/ToRGB_lod{lod}/bias"] = (f"synthesis.b{res}.torgb.bias", "copy")
    return names


def _convert(value, how):
    value = np.asarray(value, dtype=np.float32)
    if how == "dense":  # TF [in, out] -> torch [out, in]
        value = value.T
    elif how == "conv":  # TF [kh, kw, in, out] -> torch [out, in, kh, kw]
        value = value.transpose(3, 2, 0, 1)
    elif how == "const":  # [1, C, 4, 4] -> [C, 4, 4]
        value = value[0]
    elif how == "noise":  # [1, 1, H, W] -> [H, W]
        value = value[0, 0]
    return torch.from_numpy(np.array(value, dtype=np.float32, order="C"))  # copies; keeps 0-d shapes


def _tf_variables(gs):
    """All of Gs's variables keyed 'name', 'mapping/name', 'synthesis/name'."""
    found = {}
    for name, value in gs.variables.items():
        found[name] = value
    for comp_key, comp in gs.components.items():
        for name, value in comp.variables.items():
            # Components store names relative to their own scope; tolerate a scope prefix too.
            for prefix in (f"{comp.name}/", "G_synthesis/", "G_mapping/"):
                if name.startswith(prefix):
                    name = name[len(prefix):]
                    break
            found[f"{comp_key}/{name}"] = value
    return found


def from_tf(gs):
    """Our Generator (eval, no grad) from NVIDIA's TF `Gs` network (build func 'G_style')."""
    if gs.build_func_name.split(".")[-1] != "G_style":
        raise LoadError(f"not a StyleGAN v1 generator: build function {gs.build_func_name!r}")
    if set(gs.components) != {"synthesis", "mapping"}:
        raise LoadError(f"StyleGAN v1 generator has components {sorted(gs.components)}, "
                        "expected mapping and synthesis")
    static_kwargs = dict(gs.static_kwargs)
    init_kwargs = init_kwargs_from_tf(static_kwargs)
    G = build(init_kwargs)
    variables = _tf_variables(gs)
    names = _tf_to_torch_names(G)
    unexpected = [name for name in variables if name not in names]
    missing = [name for name in names if name not in variables and names[name][1] != "skip"]
    if unexpected or missing:
        raise LoadError(f"StyleGAN v1 variables do not match the architecture from static_kwargs: "
                        f"unexpected {unexpected[:5]}, missing {missing[:5]}")
    state = G.state_dict()
    for tf_name, (key, how) in names.items():
        if how == "skip" or tf_name not in variables:
            continue
        tensor = _convert(variables[tf_name], how)
        if tuple(tensor.shape) != tuple(state[key].shape):
            raise LoadError(f"StyleGAN v1 variable {tf_name} has shape {list(np.shape(variables[tf_name]))}, "
                            f"expected one giving {list(state[key].shape)}")
        state[key] = tensor
    G.load_state_dict(state)
    G.info["format"] = "tf-stylegan"
    G.info["tf_static_kwargs"] = {k: v for k, v in static_kwargs.items() if _json_scalar(v)}
    return G


def _json_scalar(value):
    return isinstance(value, (bool, int, float, str, type(None))) or (
        isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value))
