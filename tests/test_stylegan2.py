"""StyleGAN2 generators match NVIDIA's reference outputs; the explorer's extras (noise, cancel, hooks) behave."""

import json

import numpy as np
import pytest
import torch

from models import ops, upfirdn2d
from models.errors import RenderCancelled
from models.stylegan2 import Generator

FIXTURES = ["sg2ada_64", "sg3_sg2_64", "tf_sg2_64"]
PSI_SETTINGS = {"psi1p0": dict(), "psi0p7": dict(truncation_psi=0.7),
                "psi0p5_cutoff2": dict(truncation_psi=0.5, truncation_cutoff=2)}
_cache = {}


def _pkl(fixtures_dir, name):
    return fixtures_dir / f"{name}.pkl"


@pytest.fixture(params=FIXTURES)
def fixture(request, fixtures_dir):
    """(G_ema, reference arrays, manifest) for one fixture, loaded once per session."""
    name = request.param
    if name not in _cache:
        from models.loader import load_generator

        G = load_generator(_pkl(fixtures_dir, name))
        ref = dict(np.load(fixtures_dir / f"{name}_ref.npz"))
        manifest = json.loads((fixtures_dir / f"{name}_manifest.json").read_text())
        _cache[name] = (G, ref, manifest)
    return _cache[name]


def _z(seed, z_dim):
    return torch.from_numpy(np.random.RandomState(seed).randn(1, z_dim).astype(np.float32))


def _max_diff(a, b):
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


# ----------------------------------------------------------------------------
# Reference outputs.


@torch.no_grad()
def test_ws_match_reference(fixture):
    G, ref, _ = fixture
    for seed in ref["seeds"]:
        z = _z(int(seed), G.z_dim)
        assert torch.equal(z, torch.from_numpy(ref[f"z_seed{seed}"]))
        for tag, kwargs in PSI_SETTINGS.items():
            ws = G.mapping(z, torch.from_numpy(ref["c"]), **kwargs)
            assert _max_diff(ws, ref[f"ws_seed{seed}_{tag}"]) < 1e-5, (seed, tag)


@torch.no_grad()
def test_images_match_reference(fixture):
    G, ref, _ = fixture
    for seed in ref["seeds"]:
        for tag in ("psi1p0", "psi0p7"):
            img = G.synthesis(torch.from_numpy(ref[f"ws_seed{seed}_{tag}"]), noise_mode="const")
            assert _max_diff(img, ref[f"img_seed{seed}_{tag}_const"]) < 1e-4, (seed, tag)


@torch.no_grad()
def test_style_mixing_and_noise_none_match_reference(fixture):
    G, ref, _ = fixture
    k = int(ref["mix_k"])
    ws0 = G.mapping(_z(0, G.z_dim), None)
    ws1 = G.mapping(_z(1, G.z_dim), None)
    mixed = ws0.clone()
    mixed[:, k:] = ws1[:, k:]
    assert _max_diff(mixed, ref["ws_mix_seed0_seed1"]) < 1e-5
    assert _max_diff(G.synthesis(mixed, noise_mode="const"), ref["img_mix_seed0_seed1"]) < 1e-4

    none = G.synthesis(torch.from_numpy(ref["ws_seed0_psi1p0"]), noise_mode="none")
    assert _max_diff(none, ref["img_seed0_psi1p0_none"]) < 1e-4
    assert _max_diff(none, ref["img_seed0_psi1p0_const"]) > 1e-2  # noise really matters


@torch.no_grad()
def test_whole_generator_call_matches_reference(fixture):
    G, ref, _ = fixture
    img = G(_z(7, G.z_dim), None, truncation_psi=0.7, noise_mode="const")
    assert _max_diff(img, ref["img_seed7_psi0p7_const"]) < 1e-4


@torch.no_grad()
def test_layer_outputs_and_shapes_via_forward_hooks(fixture):
    G, ref, _ = fixture
    outputs, order = {}, []

    def hook(name):
        def record(_module, _inputs, output):
            outputs[name] = output
            order.append(name)
        return record

    handles = [module.register_forward_hook(hook(f"synthesis.{name}" if name else "synthesis"))
               for name, module in G.synthesis.named_modules()]
    try:
        G.synthesis(torch.from_numpy(ref["ws_seed0_psi1p0"]), noise_mode="const")
    finally:
        for handle in handles:
            handle.remove()

    def shape_of(value):
        if value is None:
            return None
        if isinstance(value, (tuple, list)):
            return [shape_of(v) for v in value]
        return list(value.shape)

    expected = json.loads(str(ref["feature_shapes_json"]))
    assert {name: shape_of(out) for name, out in outputs.items()} == expected
    assert order == json.loads(str(ref["feature_call_order_json"]))
    for i, name in enumerate(ref["feature_names"]):
        out = outputs[str(name)]
        out = out[0] if isinstance(out, tuple) else out
        assert _max_diff(out, ref[f"feat_{i}"]) < 1e-4, name


def test_state_dict_keys_and_shapes_equal_manifest(fixture):
    G, _, manifest = fixture
    entries = manifest["entries"]
    if isinstance(entries, dict):
        expected = entries["G_ema"]["state_dict_shapes"]
        assert {k: list(v.shape) for k, v in G.state_dict().items()} == expected
        return
    # TF pickle (G, D, Gs): every Gs variable but `lod` becomes exactly one tensor, and vice versa
    # (the FIR filters are design constants TF never stored).
    gs = entries[2]
    tf_vars = gs["variables"] + [v for c in gs["components"].values() for v in c["variables"]]
    tf_sizes = sorted(int(np.prod(shape)) for name, shape, *_ in tf_vars if name != "lod")
    own_sizes = sorted(v.numel() for k, v in G.state_dict().items() if not k.endswith("resample_filter"))
    assert own_sizes == tf_sizes


def test_tf_state_dict_keys_equal_the_pytorch_fixture(fixtures_dir):
    """The TF file converts to the very keys and shapes of the equivalent PyTorch network."""
    from models.loader import load_generator

    G = load_generator(_pkl(fixtures_dir, "tf_sg2_64"))
    manifest = json.loads((fixtures_dir / "sg2ada_64_manifest.json").read_text())
    keys = {k: list(v.shape) for k, v in G.state_dict().items()}
    expected = manifest["entries"]["G_ema"]["state_dict_shapes"]
    # Same kind of network (skip, 64x64, w 64); the TF one has 4 mapping layers, the ada one 2.
    mapping = lambda d: {k for k in d if k.startswith("mapping.fc")}  # noqa: E731
    assert {k: v for k, v in keys.items() if k not in mapping(keys)} == \
        {k: v for k, v in expected.items() if k not in mapping(expected)}
    assert mapping(keys) == {f"mapping.fc{i}.{p}" for i in range(4) for p in ("weight", "bias")}


@torch.no_grad()
def test_fp16_settings_run_in_float32_on_cpu(fixture):
    G, ref, _ = fixture
    img = G.synthesis(torch.from_numpy(ref["ws_seed0_psi1p0"]), noise_mode="const", force_fp32=False)
    assert img.dtype == torch.float32
    assert _max_diff(img, ref["img_seed0_psi1p0_const"]) < 1e-4


def test_info_and_ws_resolutions(fixture):
    G, ref, _ = fixture
    assert G.architecture == "stylegan2" and G.info["variant"] == "skip"
    json.dumps(G.info)
    assert G.synthesis.ws_resolutions == [4, 4, 8, 8, 16, 16, 32, 32, 64, 64]  # the paper's style groups
    assert len(G.synthesis.ws_resolutions) == G.num_ws == ref["ws_seed0_psi1p0"].shape[1]


# ----------------------------------------------------------------------------
# The explorer's extras, on small random networks.


def _small(architecture="skip", c_dim=0, **kwargs):
    torch.manual_seed(0)
    G = Generator(z_dim=16, c_dim=c_dim, w_dim=16, img_resolution=32, img_channels=3,
                  mapping_kwargs=dict(num_layers=2),
                  synthesis_kwargs=dict(channel_base=256, channel_max=32, architecture=architecture, **kwargs))
    with torch.no_grad():  # non-zero noise strengths, so noise visibly matters
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.5)
    return G.eval().requires_grad_(False)


@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
def test_architectures_construct_and_run(architecture):
    G = _small(architecture)
    keys = set(G.state_dict())
    assert ("synthesis.b16.torgb.weight" in keys) == (architecture == "skip")
    assert "synthesis.b32.torgb.weight" in keys
    assert ("synthesis.b16.skip.weight" in keys) == (architecture == "resnet")
    assert G.info["variant"] == architecture
    img = G(torch.randn(2, 16), None, noise_mode="const")
    assert img.shape == (2, 3, 32, 32) and torch.isfinite(img).all()
    assert G.num_ws == len(G.synthesis.ws_resolutions) == 8


def test_conditional_network_uses_its_label():
    G = _small(c_dim=8)
    assert "mapping.embed.weight" in G.state_dict()
    z = torch.randn(2, 16)
    c0, c1 = torch.eye(8)[:2], torch.eye(8)[2:4]
    ws0, ws1 = G.mapping(z, c0), G.mapping(z, c1)
    assert not torch.allclose(ws0, ws1)
    assert G(z, c0).shape == (2, 3, 32, 32)


def test_batch_matches_single_samples():
    """The grouped (fused) convolution treats each sample independently."""
    G = _small("resnet")
    ws = G.mapping(torch.randn(3, 16), None)
    batch = G.synthesis(ws, noise_mode="const")
    for i in range(3):
        single = G.synthesis(ws[i:i + 1], noise_mode="const")
        assert _max_diff(batch[i:i + 1], single) < 1e-5


def test_noise_strength_zero_equals_noise_mode_none():
    G = _small()
    ws = G.mapping(torch.randn(1, 16), None)
    none = G.synthesis(ws, noise_mode="none")
    assert torch.equal(G.synthesis(ws, noise_mode="const", noise_strength=0.0), none)
    assert torch.equal(G.synthesis(ws, noise_mode="random", noise_strength=0.0), none)
    assert not torch.equal(G.synthesis(ws, noise_mode="const"), none)


def test_noise_strength_dict_scales_named_layers_only():
    G = _small()
    ws = G.mapping(torch.randn(1, 16), None)
    outputs = {}
    G.synthesis.b16.conv0.register_forward_hook(lambda m, i, o: outputs.__setitem__("b16.conv0", o))
    G.synthesis.b8.conv1.register_forward_hook(lambda m, i, o: outputs.__setitem__("b8.conv1", o))
    G.synthesis(ws, noise_mode="const")
    before = dict(outputs)
    G.synthesis(ws, noise_mode="const", noise_strength={"b16.conv0": 0.0})
    assert torch.equal(outputs["b8.conv1"], before["b8.conv1"])  # upstream of the changed layer
    assert not torch.equal(outputs["b16.conv0"], before["b16.conv0"])
    # Doubling a layer's multiplier equals doubling its learned strength.
    doubled = G.synthesis(ws, noise_mode="const", noise_strength={"b16.conv0": 2.0})
    with torch.no_grad():
        G.synthesis.b16.conv0.noise_strength.mul_(2)
    assert _max_diff(doubled, G.synthesis(ws, noise_mode="const")) < 1e-6


def test_random_noise_follows_the_noise_generator():
    G = _small()
    ws = G.mapping(torch.randn(1, 16), None)
    a = G.synthesis(ws, noise_mode="random", noise_generator=torch.Generator().manual_seed(5))
    b = G.synthesis(ws, noise_mode="random", noise_generator=torch.Generator().manual_seed(5))
    c = G.synthesis(ws, noise_mode="random", noise_generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_should_stop_is_checked_before_each_block_and_cancels():
    G = _small()
    ws = G.mapping(torch.randn(1, 16), None)
    calls = []
    G.synthesis(ws, should_stop=lambda: calls.append(1) or False)
    assert len(calls) == len(G.synthesis.block_resolutions)

    ran = []
    G.synthesis.b16.register_forward_hook(lambda m, i, o: ran.append("b16"))
    with pytest.raises(RenderCancelled):
        G.synthesis(ws, should_stop=lambda: len(ran) > 0 or None)  # stop once b16 has run
    assert ran == ["b16"]  # b32 never ran


def test_generator_rebuilds_from_its_info():
    G = _small("resnet", c_dim=3)
    json.dumps(G.info)
    rebuilt = Generator(**G.info["init_kwargs"])
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in G.state_dict().items()}


def test_stylegan3_repo_defaults_clamp_and_fp16():
    """The stylegan3 repo's networks_stylegan2 defaults: conv_clamp 256, fp16 for the 4 highest resolutions."""
    G = Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=64, img_channels=3, channel_base=256, channel_max=32)
    assert G.synthesis.b64.conv1.conv_clamp == 256 and G.synthesis.b64.use_fp16 and not G.synthesis.b4.use_fp16
    ada = Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=64, img_channels=3,
                    synthesis_kwargs=dict(channel_base=256, channel_max=32))
    assert ada.synthesis.b64.conv1.conv_clamp is None and not ada.synthesis.b64.use_fp16


def test_conv_clamp_limits_layer_outputs():
    G = _small(conv_clamp=0.05)
    seen = []
    G.synthesis.b16.conv1.register_forward_hook(lambda m, i, o: seen.append(o))
    G.synthesis(G.mapping(torch.randn(1, 16), None))
    assert seen[0].abs().max() <= 0.05 + 1e-7


# ----------------------------------------------------------------------------
# ops: the fast paths agree with the plain definitions.


def _naive_upfirdn2d(x, f, up, down, pad):
    """Zero-stuff, pad/crop, true convolution with f, subsample: straight from the definition, in numpy."""
    x = x.numpy().astype(np.float64)
    f = f.numpy().astype(np.float64)
    n, c, h, w = x.shape
    up_x = np.zeros([n, c, h * up, w * up])
    up_x[:, :, ::up, ::up] = x
    px0, px1, py0, py1 = pad
    padded = np.pad(up_x, [(0, 0), (0, 0), (max(py0, 0), max(py1, 0)), (max(px0, 0), max(px1, 0))])
    padded = padded[:, :, max(-py0, 0): padded.shape[2] - max(-py1, 0), max(-px0, 0): padded.shape[3] - max(-px1, 0)]
    fh, fw = f.shape
    out_h, out_w = padded.shape[2] - fh + 1, padded.shape[3] - fw + 1
    kernel = f[::-1, ::-1]  # convolution = correlation with the flipped kernel
    out = np.zeros([n, c, out_h, out_w])
    for i in range(fh):
        for j in range(fw):
            out += kernel[i, j] * padded[:, :, i:i + out_h, j:j + out_w]
    return out[:, :, ::down, ::down]


@pytest.mark.parametrize("up,down,pad", [(1, 1, [1, 2, 0, 1]), (2, 1, [2, 1, 2, 1]), (1, 2, [1, 1, 1, 1]),
                                         (2, 2, [-1, 3, 2, -1]), (3, 1, [0, 0, 0, 0])])
def test_upfirdn2d_matches_definition(up, down, pad):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 7, 6)
    f = torch.rand(4, 3)  # asymmetric, so flips would show
    out = upfirdn2d.upfirdn2d(x, f, up=up, down=down, padding=pad)
    assert np.abs(out.numpy() - _naive_upfirdn2d(x, f, up, down, pad)).max() < 1e-5


def test_separable_filter_equals_its_outer_product():
    x = torch.randn(1, 2, 9, 9)
    taps = [1.0, 2.0, 4.0, 5.0, 4.0, 2.0, 1.0, 0.5]
    separable = upfirdn2d.setup_filter(taps)  # 8 taps: kept 1-D
    full = upfirdn2d.setup_filter(taps, separable=False)
    assert separable.ndim == 1 and full.ndim == 2
    assert _max_diff(upfirdn2d.upsample2d(x, separable), upfirdn2d.upsample2d(x, full)) < 1e-5


@pytest.mark.parametrize("k,up,down,groups", [(3, 1, 1, 1), (3, 2, 1, 1), (3, 1, 2, 1), (1, 2, 1, 1), (1, 1, 2, 1),
                                              (3, 2, 1, 2), (3, 2, 2, 1)])
@pytest.mark.parametrize("flip_weight", [True, False])
def test_conv2d_resample_fast_paths_match_the_general_case(k, up, down, groups, flip_weight):
    torch.manual_seed(2)
    x = torch.randn(2, 4, 8, 8)
    w = torch.randn(6, 4 // groups, k, k)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    padding = k // 2
    out = ops.conv2d_resample(x, w, f=f, up=up, down=down, padding=padding, groups=groups, flip_weight=flip_weight)
    # The general case spelt out: upsample with the filter, convolve, downsample with the filter.
    fw = 4
    p = [padding] * 4
    if up > 1:
        p = [p[0] + (fw + up - 1) // 2, p[1] + (fw - up) // 2, p[2] + (fw + up - 1) // 2, p[3] + (fw - up) // 2]
    if down > 1:
        p = [v + d for v, d in zip(p, [(fw - down + 1) // 2, (fw - down) // 2, (fw - down + 1) // 2, (fw - down) // 2])]
    y = upfirdn2d.upfirdn2d(x, f if up > 1 else None, up=up, padding=p, gain=up ** 2)
    y = torch.nn.functional.conv2d(y, w if flip_weight else w.flip([2, 3]), groups=groups)
    if down > 1:
        y = upfirdn2d.upfirdn2d(y, f, down=down)
    assert out.shape == y.shape == (2, 6, 8 * up // down, 8 * up // down)
    assert _max_diff(out, y) < 1e-4


@pytest.mark.parametrize("up,demodulate", [(1, True), (2, True), (1, False)])
def test_modulated_conv2d_fused_equals_unfused(up, demodulate):
    torch.manual_seed(3)
    x, weight, styles = torch.randn(3, 5, 8, 8), torch.randn(4, 5, 3, 3), torch.randn(3, 5)
    noise = torch.randn(3, 1, 8 * up, 8 * up)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    kwargs = dict(noise=noise, up=up, padding=1, resample_filter=f, demodulate=demodulate, flip_weight=up == 1)
    fused = ops.modulated_conv2d(x, weight, styles, fused_modconv=True, **kwargs)
    unfused = ops.modulated_conv2d(x, weight, styles, fused_modconv=False, **kwargs)
    assert _max_diff(fused, unfused) < 1e-4


def test_bias_act_lrelu_gain_and_clamp():
    x = torch.tensor([[-2.0, 0.5, 300.0]]).reshape(1, 3, 1, 1)
    b = torch.tensor([0.0, 0.5, 0.0])
    out = ops.bias_act(x, b, act="lrelu", gain=np.sqrt(2), clamp=256).flatten()
    expected = torch.tensor([-0.4 * np.sqrt(2), 1.0 * np.sqrt(2), 256.0], dtype=torch.float32)
    assert torch.allclose(out, expected, atol=1e-6)
