"""TF StyleGAN2 conversion rules hold beyond the fixture: resnet/orig, other sizes, labels, the mapping_fmaps trap."""

import numpy as np
import pytest
import torch

from models.errors import LoadError
from models.pickle_nvidia import TFNetwork
from models.stylegan2 import Generator
from models.tf_stylegan2 import from_tf


def _random_generator(architecture, resolution=32, c_dim=0, w_dim=32, layer_features=48, seed=0):
    """A PyTorch generator with every tensor randomised (so no conversion mistake can hide behind init values)."""
    torch.manual_seed(seed)
    G = Generator(z_dim=24, c_dim=c_dim, w_dim=w_dim, img_resolution=resolution, img_channels=3,
                  mapping_kwargs=dict(num_layers=3, layer_features=layer_features),
                  synthesis_kwargs=dict(channel_base=512, channel_max=32, architecture=architecture))
    with torch.no_grad():
        for name, t in G.state_dict().items():
            if not name.endswith("resample_filter"):
                t.copy_(torch.randn_like(t) * (0.5 if "noise_strength" in name else 1.0))
    return G.eval().requires_grad_(False)


def _to_tf(G, architecture, static_extra=None, drop_static=()):
    """Write G's weights the way TF StyleGAN2 stores them (inverting the documented name map), as a Gs TFNetwork."""
    gs_vars, syn_vars, map_vars = {}, {}, {}
    for key, t in G.state_dict().items():
        v = t.numpy().astype(np.float32)
        parts = key.split(".")
        if key == "mapping.w_avg":
            gs_vars["dlatent_avg"] = v
        elif parts[:2] == ["mapping", "embed"]:
            map_vars[f"LabelEmbed/{parts[2]}"] = v.T if parts[2] == "weight" else v
        elif parts[0] == "mapping":
            map_vars[f"Dense{parts[1][2:]}/{parts[2]}"] = v.T if parts[2] == "weight" else v
        elif key == "synthesis.b4.const":
            syn_vars["4x4/Const/const"] = v[None]
        elif parts[-1] == "resample_filter":
            continue
        else:
            res = int(parts[1][1:])
            layer, param = parts[2], ".".join(parts[3:])
            log2 = int(np.log2(res))
            scope = {"conv0": f"{res}x{res}/Conv0_up", "conv1": f"{res}x{res}/Conv1", "torgb": f"{res}x{res}/ToRGB",
                     "skip": f"{res}x{res}/Skip"}[layer]
            if res == 4 and layer == "conv1":
                scope = "4x4/Conv"
            if param == "weight":
                w = v.transpose(2, 3, 1, 0)  # [out, in, kh, kw] -> [kh, kw, in, out]
                syn_vars[f"{scope}/weight"] = w[::-1, ::-1] if layer == "conv0" else w
            elif param == "affine.weight":
                syn_vars[f"{scope}/mod_weight"] = v.T
            elif param == "affine.bias":
                syn_vars[f"{scope}/mod_bias"] = v - np.float32(1)
            elif param == "noise_const":
                index = 0 if res == 4 else 2 * log2 - (5 if layer == "conv0" else 4)
                syn_vars[f"noise{index}"] = v[None, None]
            else:
                syn_vars[f"{scope}/{param}"] = v
    mapping_kwargs = G.info["init_kwargs"]["mapping_kwargs"]
    static = dict(num_channels=3, resolution=G.img_resolution, label_size=G.c_dim, latent_size=G.z_dim,
                  dlatent_size=G.w_dim, mapping_layers=mapping_kwargs["num_layers"],
                  mapping_fmaps=mapping_kwargs["layer_features"], fmap_base=256, fmap_max=32,
                  architecture=architecture)
    static.update(static_extra or {})
    for name in drop_static:
        static.pop(name)
    synthesis = TFNetwork("G_synthesis", "G_synthesis_stylegan2", dict(static), {}, syn_vars, "")
    mapping = TFNetwork("G_mapping", "G_mapping", dict(static), {}, map_vars, "")
    gs_vars["lod"] = np.zeros([], np.float32)
    return TFNetwork("Gs", "G_main", dict(static), {"synthesis": synthesis, "mapping": mapping}, gs_vars, "")


@torch.no_grad()
@pytest.mark.parametrize("architecture,resolution", [("skip", 32), ("resnet", 32), ("orig", 16), ("resnet", 8)])
def test_round_trip_through_tf_layout_restores_the_network(architecture, resolution):
    G = _random_generator(architecture, resolution)
    converted = from_tf(_to_tf(G, architecture))
    assert converted.info["variant"] == architecture
    for key, value in G.state_dict().items():
        if key.endswith("affine.bias"):  # stored as b - 1 and read back + 1: exact up to one float32 ulp
            assert (converted.state_dict()[key] - value).abs().max() < 1e-6, key
        else:
            assert torch.equal(converted.state_dict()[key], value), key
    z = torch.randn(2, 24)
    diff = converted(z, None, noise_mode="const") - G(z, None, noise_mode="const")
    assert diff.abs().max() < 1e-4


@torch.no_grad()
def test_architecture_is_read_off_the_variables_when_the_kwarg_is_absent():
    G = _random_generator("resnet")
    converted = from_tf(_to_tf(G, "resnet", drop_static=["architecture"]))
    assert converted.info["variant"] == "resnet"


@torch.no_grad()
def test_mapping_fmaps_absent_means_tf_default_512_not_w_dim():
    G = _random_generator("skip", layer_features=512)
    converted = from_tf(_to_tf(G, "skip", drop_static=["mapping_fmaps"]))
    assert converted.mapping.fc0.weight.shape == (512, 24)
    z = torch.randn(1, 24)
    assert torch.equal(converted.mapping(z, None), G.mapping(z, None))


@torch.no_grad()
def test_label_embed_conditional_network_converts():
    G = _random_generator("skip", c_dim=5)
    converted = from_tf(_to_tf(G, "skip"))
    z, c = torch.randn(2, 24), torch.eye(5)[:2]
    assert torch.equal(converted.mapping(z, c), G.mapping(z, c))


@torch.no_grad()
def test_label_concat_follows_tf_stylegan2_math():
    """Original TF StyleGAN2: x = normalize(concat(z, c @ W)), then the dense layers."""
    G = _random_generator("skip", c_dim=5)
    tf_gs = _to_tf(G, "skip")
    mapping = tf_gs.components["mapping"]
    rng = np.random.RandomState(0)
    label_weight = rng.randn(5, 24).astype(np.float32)  # [label_size, latent_size]
    del mapping.variables["LabelEmbed/weight"], mapping.variables["LabelEmbed/bias"]
    mapping.variables["LabelConcat/weight"] = label_weight
    # The first dense layer now sees [z, c @ W]: latent_size * 2 = 48 inputs.
    mapping.variables["Dense0/weight"] = rng.randn(48, 48).astype(np.float32)
    converted = from_tf(tf_gs)

    z, c = rng.randn(2, 24).astype(np.float32), np.eye(5, dtype=np.float32)[[1, 3]]
    x = np.concatenate([z, c @ label_weight], axis=1).astype(np.float64)
    x = x / np.sqrt(np.mean(x ** 2, axis=1, keepdims=True) + 1e-8)
    for i in range(3):
        w, b = mapping.variables[f"Dense{i}/weight"], mapping.variables[f"Dense{i}/bias"]
        x = x @ (w * 0.01 / np.sqrt(w.shape[0])) + b * 0.01
        x = np.where(x >= 0, x, 0.2 * x) * np.sqrt(2)
    ws = converted.mapping(torch.from_numpy(z), torch.from_numpy(c))
    assert np.abs(ws[:, 0].numpy() - x).max() < 1e-4


def test_missing_variable_is_named():
    tf_gs = _to_tf(_random_generator("skip"), "skip")
    del tf_gs.components["synthesis"].variables["16x16/Conv1/mod_bias"]
    with pytest.raises(LoadError, match="16x16/Conv1/mod_bias"):
        from_tf(tf_gs)


def test_channel_layout_that_channel_base_cannot_express_is_refused():
    tf_gs = _to_tf(_random_generator("skip"), "skip", static_extra={"fmap_decay": 0.5})
    with pytest.raises(LoadError, match="fmap_decay"):
        from_tf(tf_gs)


def test_unknown_synthesis_network_is_refused():
    tf_gs = _to_tf(_random_generator("skip"), "skip")
    tf_gs.components["synthesis"].build_func_name = "G_synthesis_unknown"
    with pytest.raises(LoadError, match="G_synthesis_unknown"):
        from_tf(tf_gs)
