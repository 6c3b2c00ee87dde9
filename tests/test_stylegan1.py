"""StyleGAN (v1): the TF fixture against NVIDIA's reference outputs, the fused upscale, the extras."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from models import load_generator
from models.errors import LoadError, RenderCancelled
from models.loader import save_safetensors
from models.safe_pickle import read_pickle
from models.stylegan1 import build
from models.tf_stylegan1 import from_tf, init_kwargs_from_tf

WS_ATOL = 1e-5
IMG_ATOL = 5e-4
IMG_RTOL_OF_MAX = 1e-5  # max |ours - ref| relative to max |ref|

# Tensor names in the reference npz -> our layer names (the block outputs, i.e. after StyleMod).
ACTIVATIONS = {
    "act_4x4_const": "b4.const",
    "act_4x4": "b4.conv",
    "act_16x16": "b16.conv1",
    "act_32x32": "b32.conv1",
}


def _read_gs(path):
    """NVIDIA's TF pickle is (G, D, Gs); Gs (the averaged weights) is what people render with."""
    return read_pickle(path)[2]


@pytest.fixture(scope="module")
def sg1(fixtures_dir):
    return load_generator(fixtures_dir / "sg1_64.pkl")


@pytest.fixture(scope="module")
def ref(fixtures_dir):
    return np.load(fixtures_dir / "sg1_64_ref.npz", allow_pickle=False)


@pytest.fixture(scope="module")
def ws_psi1(sg1, ref):
    return sg1.mapping(torch.from_numpy(ref["z"]), None)


@pytest.fixture(scope="module")
def ws_psi07(sg1, ref):
    return sg1.mapping(torch.from_numpy(ref["z"]), None, truncation_psi=0.7, truncation_cutoff=8)


def assert_image_close(ours, expected):
    ours = ours.detach().cpu().numpy()
    assert ours.shape == expected.shape
    err = np.abs(ours - expected).max()
    assert err < IMG_ATOL
    assert err / np.abs(expected).max() < IMG_RTOL_OF_MAX


def test_contract_attributes(sg1):
    G = sg1
    assert G.architecture == "stylegan"
    assert (G.z_dim, G.c_dim, G.w_dim, G.num_ws, G.img_resolution, G.img_channels) == (64, 0, 64, 10, 64, 3)
    assert G.info["format"] == "tf-stylegan"
    assert G.info["default_truncation_psi"] == 0.7
    assert G.info["default_truncation_cutoff"] == 8
    json.dumps(G.info)
    assert G.synthesis.ws_resolutions == [4, 4, 8, 8, 16, 16, 32, 32, 64, 64]
    assert not G.training
    assert not any(p.requires_grad for p in G.parameters())
    assert G.mapping.w_avg.shape == (64,)
    assert G.synthesis.layer_names()[:3] == ["b4.const", "b4.conv", "b8.conv0_up"]


def test_mapping_matches_reference(ws_psi1, ws_psi07, ref):
    np.testing.assert_allclose(ws_psi1.numpy(), ref["dlatents"], rtol=0, atol=WS_ATOL)
    np.testing.assert_allclose(ws_psi07.numpy(), ref["dlatents_psi07"], rtol=0, atol=WS_ATOL)
    # Cutoff 8 leaves the last two layers untruncated; PyTorch semantics: cutoff None = all layers.
    np.testing.assert_array_equal(ws_psi07[:, 8:].numpy(), ws_psi1[:, 8:].numpy())


def test_truncation_cutoff_none_means_every_layer(sg1, ref):
    z = torch.from_numpy(ref["z"])
    ws = sg1.mapping(z, None, truncation_psi=0.5)
    expected = sg1.mapping.w_avg + (sg1.mapping(z, None) - sg1.mapping.w_avg) * 0.5
    torch.testing.assert_close(ws, expected)


@pytest.mark.parametrize("psi, key", [(1.0, "images_psi1"), (0.7, "images_psi07")])
def test_images_match_reference(sg1, ref, psi, key):
    img = sg1(torch.from_numpy(ref["z"]), None, truncation_psi=psi, truncation_cutoff=8, noise_mode="const")
    assert_image_close(img, ref[key])


def test_default_truncation_from_info_gives_g_style_default(sg1, ref):
    info = sg1.info
    img = sg1(torch.from_numpy(ref["z"][:1]), None, truncation_psi=info["default_truncation_psi"],
              truncation_cutoff=info["default_truncation_cutoff"])
    assert_image_close(img, ref["images_psi07"][:1])


def test_zero_noise_image_matches_reference(sg1, ws_psi1, ref):
    assert_image_close(sg1.synthesis(ws_psi1, noise_mode="none"), ref["images_psi1_zero_noise"])


def test_style_mixing_matches_reference(sg1, ws_psi1, ref):
    k = int(ref["mix_layer"])
    mixed = torch.cat([ws_psi1[0:1, :k], ws_psi1[1:2, k:]], dim=1)
    np.testing.assert_allclose(mixed.numpy(), ref["mix_dlatents"], rtol=0, atol=WS_ATOL)
    mix_ws = torch.from_numpy(ref["mix_dlatents"])
    assert_image_close(sg1.synthesis(mix_ws, noise_mode="const"), ref["mix_image"])
    assert_image_close(sg1.synthesis(mix_ws, noise_mode="none"), ref["mix_image_zero_noise"])


@pytest.mark.parametrize("tag", ["psi1", "psi07"])
def test_intermediate_activations_are_captured_by_hooks(sg1, ws_psi1, ws_psi07, ref, tag):
    captured = {}
    handles = [
        sg1.synthesis.get_submodule(name).register_forward_hook(
            lambda module, args, out, name=name: captured.__setitem__(name, out))
        for name in ACTIVATIONS.values()
    ]
    try:
        sg1.synthesis(ws_psi1 if tag == "psi1" else ws_psi07, noise_mode="const")
    finally:
        for handle in handles:
            handle.remove()
    for key, name in ACTIVATIONS.items():
        expected = ref[f"{key}_{tag}"]
        ours = captured[name].numpy()
        assert ours.shape == expected.shape, name
        assert np.abs(ours - expected).max() / np.abs(expected).max() < IMG_RTOL_OF_MAX, name


def test_noise_strength_zero_equals_noise_mode_none(sg1, ws_psi1):
    ws = ws_psi1[:2]
    none = sg1.synthesis(ws, noise_mode="none")
    const = sg1.synthesis(ws, noise_mode="const")
    assert (const - none).abs().max() > 1e-2
    torch.testing.assert_close(sg1.synthesis(ws, noise_mode="const", noise_strength=0.0), none, rtol=0, atol=0)
    all_zero = {name: 0.0 for name in sg1.synthesis.layer_names()}
    torch.testing.assert_close(sg1.synthesis(ws, noise_mode="random", noise_strength=all_zero), none,
                               rtol=0, atol=0)
    # A dict only touches the layers it names.
    one_layer = sg1.synthesis(ws, noise_mode="const", noise_strength={"b64.conv1": 0.0})
    assert (one_layer - const).abs().max() > 1e-3
    assert (one_layer - none).abs().max() > 1e-3


def test_random_noise_is_reproducible_with_a_generator(sg1, ws_psi1):
    ws = ws_psi1[:1]
    a = sg1.synthesis(ws, noise_mode="random", noise_generator=torch.Generator().manual_seed(5))
    b = sg1.synthesis(ws, noise_mode="random", noise_generator=torch.Generator().manual_seed(5))
    c = sg1.synthesis(ws, noise_mode="random", noise_generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a - c).abs().max() > 1e-3


def test_should_stop_raises_render_cancelled(sg1, ws_psi1):
    seen = []
    handle = sg1.synthesis.b8.register_forward_hook(lambda module, args, out: seen.append("b8"))
    calls = []

    def stop_at_third_block():
        calls.append(1)
        return len(calls) >= 3

    try:
        with pytest.raises(RenderCancelled):
            sg1.synthesis(ws_psi1[:1], should_stop=stop_at_third_block)
    finally:
        handle.remove()
    assert len(calls) == 3 and seen == ["b8"]
    # A should_stop that never fires changes nothing.
    torch.testing.assert_close(sg1.synthesis(ws_psi1[:1], should_stop=lambda: False),
                               sg1.synthesis(ws_psi1[:1]), rtol=0, atol=0)


def test_build_from_init_kwargs_round_trips_state_dict(sg1, ws_psi1):
    init_kwargs = json.loads(json.dumps(sg1.info["init_kwargs"]))
    G2 = build(init_kwargs)
    assert set(G2.state_dict()) == set(sg1.state_dict())
    G2.load_state_dict(sg1.state_dict())
    torch.testing.assert_close(G2.synthesis(ws_psi1[:1]), sg1.synthesis(ws_psi1[:1]), rtol=0, atol=0)


def test_safetensors_round_trip(sg1, ws_psi1, tmp_path):
    path = tmp_path / "sg1.safetensors"
    save_safetensors(sg1, path)
    G2 = load_generator(path)
    assert G2.architecture == "stylegan" and G2.info["format"] == "stylescope-safetensors"
    assert G2.info["default_truncation_psi"] == 0.7 and G2.info["default_truncation_cutoff"] == 8
    torch.testing.assert_close(G2.synthesis(ws_psi1[:1]), sg1.synthesis(ws_psi1[:1]), rtol=0, atol=0)
    torch.testing.assert_close(G2.mapping.w_avg, sg1.mapping.w_avg, rtol=0, atol=0)


def test_from_tf_gives_the_same_generator_as_load_generator(sg1, tf_gs, ws_psi1):
    G = from_tf(tf_gs)
    assert G.info["format"] == "tf-stylegan"
    torch.testing.assert_close(G.synthesis(ws_psi1[:1]), sg1.synthesis(ws_psi1[:1]), rtol=0, atol=0)


def test_state_dict_names_mirror_tf_scopes(sg1):
    keys = set(sg1.state_dict())
    for key in ["mapping.w_avg", "mapping.fc0.weight", "mapping.fc7.bias", "synthesis.lod",
                "synthesis.b4.const.const", "synthesis.b4.const.noise_const", "synthesis.b4.conv.weight",
                "synthesis.b8.conv0_up.affine.weight", "synthesis.b64.conv1.noise_strength",
                "synthesis.b64.torgb.weight", "synthesis.b4.torgb.bias"]:
        assert key in keys, key


def test_lod_one_shows_the_upscaled_lower_resolution_image(sg1, ws_psi1):
    captured = {}
    handle = sg1.synthesis.b32.register_forward_hook(lambda module, args, out: captured.__setitem__("x", out))
    sg1.synthesis.lod.fill_(1.0)
    try:
        img = sg1.synthesis(ws_psi1[:1])
    finally:
        sg1.synthesis.lod.fill_(0.0)
        handle.remove()
    expected = sg1.synthesis.b32.torgb(captured["x"]).repeat_interleave(2, 2).repeat_interleave(2, 3)
    torch.testing.assert_close(img, expected)


# --- Conversion errors and conditional networks -------------------------------------------------


def _fake_tf_network(name, func, static_kwargs, variables, components=None):
    return SimpleNamespace(name=name, build_func_name=func, static_kwargs=dict(static_kwargs),
                           variables=dict(variables), components=dict(components or {}))


def _copy_gs(gs, mapping_variables=None, static_kwargs=None, synthesis_variables=None):
    mapping = gs.components["mapping"]
    synthesis = gs.components["synthesis"]
    comps = {
        "synthesis": _fake_tf_network(synthesis.name, synthesis.build_func_name, synthesis.static_kwargs,
                                      synthesis_variables or synthesis.variables),
        "mapping": _fake_tf_network(mapping.name, mapping.build_func_name, mapping.static_kwargs,
                                    mapping_variables or mapping.variables),
    }
    return _fake_tf_network(gs.name, gs.build_func_name, static_kwargs or gs.static_kwargs, gs.variables, comps)


@pytest.fixture(scope="module")
def tf_gs(fixtures_dir):
    return _read_gs(fixtures_dir / "sg1_64.pkl")


def test_wrong_build_function_is_a_load_error(tf_gs):
    fake = _copy_gs(tf_gs)
    fake.build_func_name = "G_synthesis_stylegan2"
    with pytest.raises(LoadError, match="G_synthesis_stylegan2"):
        from_tf(fake)


def test_variables_not_matching_static_kwargs_are_a_load_error(tf_gs):
    with pytest.raises(LoadError, match="shape"):
        from_tf(_copy_gs(tf_gs, static_kwargs=dict(tf_gs.static_kwargs, fmap_max=32)))
    variables = dict(tf_gs.components["synthesis"].variables)
    del variables["8x8/Conv1/bias"]
    with pytest.raises(LoadError, match="8x8/Conv1/bias"):
        from_tf(_copy_gs(tf_gs, synthesis_variables=variables))


def test_missing_static_kwargs_take_tf_defaults():
    kwargs = init_kwargs_from_tf({"num_channels": 3, "resolution": 1024, "label_size": 0})
    assert (kwargs["z_dim"], kwargs["w_dim"], kwargs["mapping_fmaps"], kwargs["fmap_base"]) == (512, 512, 512, 8192)
    assert kwargs["mapping_lrmul"] == 0.01 and kwargs["fused_scale"] == "auto"
    assert kwargs["blur_filter"] == [1.0, 2.0, 1.0]


def _numpy_mapping(z, c, embed, dense_layers, lrmul=0.01):
    x = np.concatenate([z, c @ embed], axis=1)
    x = x / np.sqrt((x ** 2).mean(axis=1, keepdims=True) + 1e-8)
    for weight, bias in dense_layers:
        x = x @ (weight * np.sqrt(2) / np.sqrt(weight.shape[0]) * lrmul) + bias * lrmul
        x = np.where(x > 0, x, 0.2 * x)
    return x


def test_conditional_network_embeds_labels(tf_gs):
    rng = np.random.RandomState(3)
    label_size = 3
    mapping_vars = dict(tf_gs.components["mapping"].variables)
    mapping_vars["LabelConcat/weight"] = rng.randn(label_size, 64).astype(np.float32)
    mapping_vars["Dense0/weight"] = rng.randn(128, 64).astype(np.float32)  # z and embedded labels
    gs = _copy_gs(tf_gs, mapping_variables=mapping_vars,
                  static_kwargs=dict(tf_gs.static_kwargs, label_size=label_size))
    G = from_tf(gs)
    assert G.c_dim == label_size
    z = rng.randn(2, 64).astype(np.float32)
    c = np.eye(label_size, dtype=np.float32)[[0, 2]]
    ws = G.mapping(torch.from_numpy(z), torch.from_numpy(c))
    dense = [(mapping_vars[f"Dense{i}/weight"], mapping_vars[f"Dense{i}/bias"]) for i in range(8)]
    expected = _numpy_mapping(z.astype(np.float64), c, mapping_vars["LabelConcat/weight"], dense)
    np.testing.assert_allclose(ws[:, 0].numpy(), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError):
        G.mapping(torch.from_numpy(z), None)


# --- 128 px: the fused upscale convolution ------------------------------------------------------


@pytest.fixture(scope="module")
def sg1_128():
    init_kwargs = init_kwargs_from_tf({"num_channels": 3, "resolution": 128, "label_size": 0, "latent_size": 32,
                                       "dlatent_size": 32, "mapping_fmaps": 32, "fmap_base": 256,
                                       "fmap_max": 32})
    G = build(init_kwargs)
    gen = torch.Generator().manual_seed(128)
    with torch.no_grad():
        for name, tensor in G.state_dict().items():
            if tensor.ndim > 0:  # leave lod at 0
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.5 + (1.0 if "const" in name else 0.0))
    return G


def _tf_fused_kernel(weight3):
    """TF's summed 4x4 kernel [4, 4, out, in] from a scaled 3x3 kernel [3, 3, in, out]."""
    w = weight3.transpose(0, 1, 3, 2)
    w = np.pad(w, [(1, 1), (1, 1), (0, 0), (0, 0)])
    return w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]


def _transposed_conv_stride2_same(x, kernel4):
    """conv2d_transpose by definition: out[2y + ky - 1, 2x + kx - 1] += x[y, x] * K[ky, kx] (SAME pad 1)."""
    n, _, h, w = x.shape
    buf = np.zeros((n, kernel4.shape[2], 2 * h + 2, 2 * w + 2))
    for ky in range(4):
        for kx in range(4):
            buf[:, :, ky:ky + 2 * h:2, kx:kx + 2 * w:2] += np.einsum("nihw,oi->nohw", x, kernel4[ky, kx])
    return buf[:, :, 1:2 * h + 1, 1:2 * w + 1]


def _reference_up_layer(x, w, layer):
    """The whole Conv0_up layer in float64 numpy, written out from STYLEGAN1.md (noise_mode const)."""
    weight3 = (layer.weight * layer.weight_gain).double().numpy().transpose(2, 3, 1, 0)  # [3,3,in,out]
    y = _transposed_conv_stride2_same(x, _tf_fused_kernel(weight3))
    f = np.outer([1, 2, 1], [1, 2, 1]) / 16.0
    padded = np.pad(y, [(0, 0), (0, 0), (1, 1), (1, 1)])
    height, width = y.shape[2:]
    y = sum(f[i, j] * padded[:, :, i:i + height, j:j + width] for i in range(3) for j in range(3))
    y = y + layer.noise_const.double().numpy()[None, None] * layer.noise_strength.double().numpy()[None, :, None, None]
    y = y + layer.bias.double().numpy()[None, :, None, None]
    y = np.where(y > 0, y, 0.2 * y)
    y = y - y.mean(axis=(2, 3), keepdims=True)
    y = y / np.sqrt((y ** 2).mean(axis=(2, 3), keepdims=True) + 1e-8)
    a_weight = layer.affine.weight.double().numpy()
    style = w @ (a_weight.T / np.sqrt(a_weight.shape[1])) + layer.affine.bias.double().numpy()
    c = y.shape[1]
    return y * (style[:, :c, None, None] + 1) + style[:, c:, None, None]


def test_128px_network_runs_and_uses_the_fused_upscale(sg1_128):
    G = sg1_128
    assert G.num_ws == 12 and G.synthesis.ws_resolutions[-2:] == [128, 128]
    assert G.synthesis.b128.conv0_up.fused and not G.synthesis.b64.conv0_up.fused
    captured = {}
    layer = G.synthesis.b128.conv0_up
    pre = layer.register_forward_pre_hook(lambda module, args: captured.__setitem__("in", args))
    post = layer.register_forward_hook(lambda module, args, out: captured.__setitem__("out", out))
    try:
        img = G(torch.randn(2, 32, generator=torch.Generator().manual_seed(0)), None, noise_mode="const")
    finally:
        pre.remove()
        post.remove()
    assert img.shape == (2, 3, 128, 128) and torch.isfinite(img).all()
    x, w = captured["in"][0], captured["in"][1]
    assert x.shape[2:] == (64, 64)
    expected = _reference_up_layer(x.double().numpy(), w.double().numpy(), layer)
    ours = captured["out"].numpy()
    assert np.abs(ours - expected).max() / np.abs(expected).max() < 1e-5


def test_fused_upscale_equals_upsample_then_flipped_kernel_not_the_same_kernel(sg1_128):
    layer = sg1_128.synthesis.b128.conv0_up
    x = torch.randn(2, layer.in_channels, 16, 16, generator=torch.Generator().manual_seed(1))
    fused = layer.conv(x, None).numpy()
    weight = layer.weight * layer.weight_gain
    by_definition = _transposed_conv_stride2_same(
        x.double().numpy(), _tf_fused_kernel(weight.double().numpy().transpose(2, 3, 1, 0)))
    np.testing.assert_allclose(fused, by_definition, rtol=0, atol=1e-4 * np.abs(by_definition).max())
    upsampled = x.repeat_interleave(2, 2).repeat_interleave(2, 3)
    flipped = torch.nn.functional.conv2d(upsampled, weight.flip(2, 3), padding=1).numpy()
    np.testing.assert_allclose(fused, flipped, rtol=0, atol=1e-4 * np.abs(flipped).max())
    same_kernel = torch.nn.functional.conv2d(upsampled, weight, padding=1).numpy()
    assert np.abs(fused - same_kernel).max() > 0.1 * np.abs(fused).max()


def test_dense_input_layer_when_const_input_layer_is_off():
    init_kwargs = init_kwargs_from_tf({"resolution": 8, "latent_size": 16, "dlatent_size": 16,
                                       "mapping_fmaps": 16, "fmap_base": 64, "fmap_max": 8,
                                       "const_input_layer": False})
    G = build(init_kwargs)
    layer = G.synthesis.b4.dense
    assert not hasattr(G.synthesis.b4, "const") and "synthesis.b4.dense.weight" in G.state_dict()
    w = torch.randn(2, 16, generator=torch.Generator().manual_seed(2))
    # TF: dense(w0, 16 C, gain sqrt(2) / 4) with wscale, reshaped to [N, C, 4, 4].
    expected = (w.double().numpy() @ layer.weight.double().numpy().T * (np.sqrt(2) / 4 / np.sqrt(16)))
    np.testing.assert_allclose(layer.conv(None, w).numpy(), expected.reshape(2, 8, 4, 4), rtol=1e-5, atol=1e-6)
    img = G(torch.randn(2, 16), None)
    assert img.shape == (2, 3, 8, 8) and torch.isfinite(img).all()
