"""StyleGAN3: sg3_t_64 matches NVIDIA's outputs; T and R layouts match NVIDIA's; lean path == reference."""

import json
import threading
import time

import numpy as np
import pytest
import torch

from models import fast_stylegan3, filtered_lrelu, stylegan3
from models.errors import RenderCancelled
from models.filtered_lrelu import filtered_lrelu_fast, filtered_lrelu_reference

WS_ATOL = 1e-5
IMG_ATOL = 1e-4


@pytest.fixture(scope="module")
def ref(fixtures_dir):
    return np.load(fixtures_dir / "sg3_t_64_ref.npz")


def load(fixtures_dir, key=None, reference=False):
    """sg3_t_64 through the project's loader, switched to the requested path."""
    from models.loader import load_generator

    G = load_generator(fixtures_dir / "sg3_t_64.pkl", key=key) if key else load_generator(fixtures_dir / "sg3_t_64.pkl")
    assert isinstance(G, stylegan3.Generator)
    return G.set_reference(reference)


@pytest.fixture(scope="module")
def G(fixtures_dir):
    return load(fixtures_dir)


def max_diff(a, b):
    return float((torch.as_tensor(a) - torch.as_tensor(b)).abs().max())


def tiny_kwargs(cfg, res=32, base=1024, cmax=32):
    """A small network with train.py's structure (R: doubled channels, 1x1 convs, radial filters)."""
    kwargs = dict(z_dim=16, w_dim=16, c_dim=0, img_resolution=res, img_channels=3,
                  mapping_kwargs=dict(num_layers=2), channel_base=base, channel_max=cmax,
                  magnitude_ema_beta=0.999)
    if cfg == "r":
        kwargs.update(conv_kernel=1, channel_base=2 * base, channel_max=2 * cmax, use_radial_filters=True)
    return kwargs


def perturbed(G, seed=0):
    """Move buffers and biases away from their init values so that every code path matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in G.named_buffers():
            if name.endswith("magnitude_ema"):
                t.copy_(0.5 + 1.5 * torch.rand([], generator=gen))
            if name.endswith("w_avg"):
                t.copy_(0.3 * torch.randn(t.shape, generator=gen))
        for name, p in G.named_parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen) * (p.std() if p.numel() > 1 else 1))
    return G


# ----------------------------------------------------------------------------
# The fixture: NVIDIA's own outputs.


def test_loads_as_stylegan3_t_with_nvidia_state_dict(fixtures_dir, G):
    manifest = json.loads((fixtures_dir / "sg3_t_64_manifest.json").read_text())
    shapes = manifest["entries"]["G_ema"]["state_dict_shapes"]
    state = G.state_dict()
    assert list(state) == list(shapes)
    assert {k: list(v.shape) for k, v in state.items()} == shapes
    assert G.architecture == "stylegan3-t" == G.info["architecture"]
    assert G.info["format"] == "stylegan3"
    json.dumps(G.info)
    assert (G.z_dim, G.c_dim, G.w_dim, G.num_ws, G.img_resolution, G.img_channels) == (64, 0, 64, 16, 64, 3)
    assert G.synthesis.ws_resolutions == [16] * 5 + [32] * 4 + [64] * 7
    assert G.synthesis.L14_64_3.up_filter is None and G.synthesis.L14_64_3.down_filter is None


def test_designed_filters_equal_the_stored_ones(fixtures_dir, G):
    # The loaded network uses NVIDIA's stored filters; building from kwargs must design the same ones.
    built = stylegan3.build(G.info["init_kwargs"])
    for name, stored in G.named_buffers():
        if name.endswith("_filter"):
            assert max_diff(dict(built.named_buffers())[name], stored) < 1e-7, name


@torch.no_grad()
@pytest.mark.parametrize("seed", [0, 1, 7, 42])
def test_mapping_matches(G, ref, seed):
    z = torch.from_numpy(ref[f"z_seed{seed}"])
    c = torch.from_numpy(ref["c"])
    assert max_diff(G.mapping(z, c), ref[f"ws_seed{seed}_psi1p0"]) < WS_ATOL
    assert max_diff(G.mapping(z, c, truncation_psi=0.7), ref[f"ws_seed{seed}_psi0p7"]) < WS_ATOL
    ws = G.mapping(z, c, truncation_psi=0.5, truncation_cutoff=2)
    assert max_diff(ws, ref[f"ws_seed{seed}_psi0p5_cutoff2"]) < WS_ATOL


@torch.no_grad()
@pytest.mark.parametrize("reference", [False, True])
def test_images_match(fixtures_dir, ref, reference):
    G = load(fixtures_dir, reference=reference)
    for seed in ref["seeds"]:
        for psi in ("1p0", "0p7"):
            img = G.synthesis(torch.from_numpy(ref[f"ws_seed{seed}_psi{psi}"]), noise_mode="const")
            assert img.shape == (1, 3, 64, 64) and img.dtype == torch.float32
            assert max_diff(img, ref[f"img_seed{seed}_psi{psi}_const"]) < IMG_ATOL, (seed, psi)
    img = G.synthesis(torch.from_numpy(ref["ws_mix_seed0_seed1"]))
    assert max_diff(img, ref["img_mix_seed0_seed1"]) < IMG_ATOL
    # Whole G, from z: mapping + synthesis.
    img = G(torch.from_numpy(ref["z_seed7"]), torch.from_numpy(ref["c"]), truncation_psi=0.7)
    assert max_diff(img, ref["img_seed7_psi0p7_const"]) < IMG_ATOL


@torch.no_grad()
def test_noise_arguments_change_nothing(G, ref):
    ws = torch.from_numpy(ref["ws_seed0_psi1p0"])
    const = G.synthesis(ws, noise_mode="const")
    assert max_diff(G.synthesis(ws, noise_mode="none"), ref["img_seed0_psi1p0_none"]) < IMG_ATOL
    noisy = G.synthesis(ws, noise_mode="random", noise_strength={"L3_36_32": 5.0},
                        noise_generator=torch.Generator().manual_seed(3))
    assert torch.equal(noisy, const)
    with pytest.raises(ValueError):
        G.synthesis(ws, noise_mode="loud")


@torch.no_grad()
def test_training_generator_differs_and_matches(fixtures_dir, ref):
    G_train = load(fixtures_dir, key="G")
    # NVIDIA's G image comes from G's own mapping, which differs from G_ema's.
    img = G_train(torch.from_numpy(ref["z_seed0"]), torch.from_numpy(ref["c"]))
    assert max_diff(img, ref["img_G_nonema_seed0_psi1p0_const"]) < IMG_ATOL
    assert max_diff(img, ref["img_seed0_psi1p0_const"]) > 100 * IMG_ATOL


@torch.no_grad()
def test_user_transform_as_gen_images_writes_it(G, ref):
    tx, ty, angle = (float(v) for v in ref["transform_translate_angle"])
    matrix = stylegan3.input_transform(translate=(tx, ty), rotate_deg=angle)
    assert max_diff(matrix, ref["transform_matrix"]) < 1e-6
    ws = torch.from_numpy(ref["ws_seed0_psi1p0"])
    G.synthesis.input.transform.copy_(matrix)
    try:
        img = G.synthesis(ws)
    finally:
        G.synthesis.input.transform.copy_(torch.eye(3))
    assert max_diff(img, ref["img_seed0_psi1p0_const_transform"]) < IMG_ATOL
    # The same per call, leaving the buffer alone.
    img = G.synthesis(ws, input_transform=matrix)
    assert max_diff(img, ref["img_seed0_psi1p0_const_transform"]) < IMG_ATOL
    assert torch.equal(G.synthesis.input.transform, torch.eye(3))
    assert max_diff(G.synthesis(ws), ref["img_seed0_psi1p0_const"]) < IMG_ATOL
    # scale > 1 zooms in: the inverse matrix shrinks sampling coordinates.
    assert torch.allclose(stylegan3.input_transform(scale=2.0), torch.diag(torch.tensor([0.5, 0.5, 1.0])))


@torch.no_grad()
def test_every_submodule_output_shape_and_order(G, ref):
    shapes, order = {}, []

    def hook(name):
        def record(module, args, output):
            shapes[name] = list(output.shape)
            order.append(name)
        return record

    handles = [m.register_forward_hook(hook("synthesis" + (f".{n}" if n else "")))
               for n, m in G.synthesis.named_modules()]
    try:
        G.synthesis(torch.from_numpy(ref["ws_seed0_psi1p0"]))
    finally:
        for h in handles:
            h.remove()
    assert shapes == json.loads(str(ref["feature_shapes_json"]))
    assert order == json.loads(str(ref["feature_call_order_json"]))


@torch.no_grad()
def test_captured_features_match(G, ref):
    captured = {}
    modules = dict(G.named_modules())
    handles = [modules[name].register_forward_hook(lambda m, a, out, name=name: captured.update({name: out}))
               for name in ref["feature_names"]]
    try:
        G.synthesis(torch.from_numpy(ref["ws_seed0_psi1p0"]))
    finally:
        for h in handles:
            h.remove()
    for i, name in enumerate(ref["feature_names"]):
        assert max_diff(captured[name], ref[f"feat_{i}"]) < IMG_ATOL, name


@torch.no_grad()
def test_should_stop_cancels_before_a_layer(G, ref):
    ws = torch.from_numpy(ref["ws_seed0_psi1p0"])
    seen = []

    def stop_after_three():
        seen.append(1)
        return len(seen) > 3

    with pytest.raises(RenderCancelled):
        G.synthesis(ws, should_stop=stop_after_three)
    assert len(seen) == 4  # input, L0, L1 ran; stopped before L2
    with pytest.raises(RenderCancelled):
        G.synthesis(ws, should_stop=lambda: True)


# ----------------------------------------------------------------------------
# Layouts of full-size networks, against facts from NVIDIA's code and its module summaries.

T1024_LAYERS = ["L0_36_512", "L1_36_512", "L2_52_512", "L3_52_512", "L4_84_512", "L5_148_512", "L6_148_512",
                "L7_276_323", "L8_276_203", "L9_532_128", "L10_1044_81", "L11_1044_51", "L12_1044_32",
                "L13_1024_32", "L14_1024_3"]

# (name, parameters, buffers) per module of NVIDIA's StyleGAN3-R 1024 G (print_module_summary).
R1024_SUMMARY = [
    ("mapping.fc0", 262656, 0), ("mapping.fc1", 262656, 0), ("mapping", 0, 512),
    ("synthesis.input.affine", 2052, 0), ("synthesis.input", 1048576, 3081),
    ("synthesis.L0_36_1024", 1049600, 157), ("synthesis.L1_36_1024", 1049600, 157),
    ("synthesis.L2_52_1024", 1049600, 169), ("synthesis.L3_52_1024", 1049600, 157),
    ("synthesis.L4_84_1024", 1049600, 169), ("synthesis.L5_148_1024", 1049600, 169),
    ("synthesis.L6_148_1024", 1049600, 157), ("synthesis.L7_276_645", 661125, 169),
    ("synthesis.L8_276_406", 262276, 157), ("synthesis.L9_532_256", 104192, 169),
    ("synthesis.L10_1044_161", 41377, 169), ("synthesis.L11_1044_102", 16524, 157),
    ("synthesis.L12_1044_64", 6592, 25), ("synthesis.L13_1024_64", 4160, 25),
    ("synthesis.L14_1024_3", 195, 1),
]
R1024_AFFINE_PARAMS = [525312] * 8 + [330885, 208278, 131328, 82593, 52326, 32832, 32832]


def own_counts(module):
    return (sum(p.numel() for p in module.parameters(recurse=False)),
            sum(b.numel() for b in module.buffers(recurse=False)))


def test_t1024_layer_names():
    G = stylegan3.build(stylegan3.train_defaults("t"))
    assert G.synthesis.layer_names == T1024_LAYERS
    assert G.architecture == "stylegan3-t"
    assert all(getattr(G.synthesis, n).weight.shape[2:] == (3, 3) for n in T1024_LAYERS[:-1])


def test_r1024_matches_nvidia_module_summary():
    G = stylegan3.build(stylegan3.train_defaults("r"))
    assert G.architecture == "stylegan3-r" == G.info["architecture"]
    modules = dict(G.named_modules())
    # The summary counts each module's own tensors; a layer's buffers are magnitude_ema, the up
    # filter and the down filter (radial 2-D unless critically sampled).
    for name, params, buffers in R1024_SUMMARY:
        assert own_counts(modules[name]) == (params, buffers), name
    for (name, _, _), affine in zip(R1024_SUMMARY[5:], R1024_AFFINE_PARAMS, strict=True):
        layer = modules[name]
        assert own_counts(layer.affine) == (affine, 0), name
        assert layer.weight.shape[2:] == (1, 1)
        if layer.down_filter is not None:
            assert layer.down_filter.ndim == (1 if layer.is_critically_sampled else 2), name
    assert sum(p.numel() for p in G.parameters()) == 15093151
    assert sum(b.numel() for b in G.buffers()) == 5600
    # NVIDIA's summary shows float16 from L5 on (sampling rate * 2**4 > 1024).
    assert [modules[n].use_fp16 for n, _, _ in R1024_SUMMARY[5:]] == [False] * 5 + [True] * 10
    # The state dict holds what NVIDIA's R would: same names as T, 1x1 weights, 2-D radial filters.
    t_keys = list(stylegan3.build(stylegan3.train_defaults("t")).state_dict())
    r_keys = list(G.state_dict())
    assert [k.split(".")[-1] for k in r_keys] == [k.split(".")[-1] for k in t_keys]
    assert G.state_dict()["synthesis.L0_36_1024.down_filter"].shape == (12, 12)


def test_radial_filter_is_symmetric_lowpass():
    f = stylegan3.design_lowpass_filter(12, cutoff=8.0, width=8.0, fs=64, radial=True)
    assert f.shape == (12, 12)
    assert abs(float(f.sum()) - 1) < 1e-6
    assert torch.allclose(f, f.t()) and torch.allclose(f, f.flip(0)) and torch.allclose(f, f.flip(1))
    # Low-pass: the centre carries the largest weights, and rotating the grid by 90 degrees changes nothing.
    assert float(f[5:7, 5:7].min()) == float(f.max())
    assert torch.allclose(f, f.rot90(1, [0, 1]))


# ----------------------------------------------------------------------------
# Lean path == zero-stuffing reference.


@pytest.mark.parametrize("up,down,fu_taps,fd_taps,padding", [
    (2, 2, 12, 12, [11, 10, 11, 10]),
    (4, 2, 24, 12, [-6, -9, -6, -9]),
    (2, 1, 12, 1, [3, 2, 1, 4]),
    (1, 1, 0, 0, [0, 0, 0, 0]),
    (3, 2, 7, 5, [-2, 5, 0, 1]),
])
@pytest.mark.parametrize("radial", [False, True])
def test_fast_filtered_lrelu_equals_reference(up, down, fu_taps, fd_taps, padding, radial):
    gen = torch.Generator().manual_seed(up * 10 + down)
    x = torch.randn([2, 5, 14, 17], generator=gen) * 3
    b = torch.randn([5], generator=gen)
    fu = torch.rand([fu_taps], generator=gen) if fu_taps else None
    fd = None
    if fd_taps > 1:
        fd = torch.rand([fd_taps, fd_taps] if radial else [fd_taps], generator=gen)
    args = dict(fu=fu, fd=fd, b=b, up=up, down=down, padding=padding, gain=2 ** 0.5, slope=0.2, clamp=4.0)
    expected = filtered_lrelu_reference(x, **args)
    for tile_elements in (None, 1, 300):  # whole image, one output sample per tile, a few
        got = filtered_lrelu_fast(x, tile_elements=tile_elements, **args)
        assert got.shape == expected.shape
        # Outputs reach ~100 here; float32 summation order differs, so compare relatively.
        assert max_diff(got, expected) < 1e-5 * (1 + float(expected.abs().max()))


def random_filtered_lrelu_case(seed):
    """Random shapes, up/down factors 1/2/4, paddings (negative too), 1-D or 2-D down filters or none."""
    gen = torch.Generator().manual_seed(seed)

    def pick(lo, hi):
        return int(torch.randint(lo, hi + 1, [], generator=gen))

    up, down = (1, 2, 4)[seed % 3], (1, 2, 4)[(seed // 3) % 3]
    fu = None if up == 1 and seed % 4 == 0 else torch.rand([pick(1, 6) * up], generator=gen)
    fd_taps = pick(1, 6) * down
    fd = None if down == 1 and seed % 4 == 1 else \
        torch.rand([fd_taps, fd_taps] if seed % 2 else [fd_taps], generator=gen)
    x = torch.randn([pick(1, 2), pick(1, 20), pick(3, 23), pick(3, 23)], generator=gen) * 3
    fu_size, fd_size = (1 if f is None else f.shape[-1] for f in (fu, fd))
    while True:  # paddings that leave a non-empty output
        padding = [pick(-4, fu_size + fd_size) for _ in range(4)]
        axes = ((x.shape[3], *padding[:2]), (x.shape[2], *padding[2:]))
        if all(n * up + p0 + p1 - fu_size + 1 >= fd_size and min(n * up + p0, n * up + p1) > 0
               for n, p0, p1 in axes):
            break
    args = dict(fu=fu, fd=fd, b=torch.randn([x.shape[1]], generator=gen), up=up, down=down, padding=padding,
                gain=(1.0, 2 ** 0.5)[seed % 2], slope=(0.2, 1.0)[seed % 5 == 4], clamp=(4.0, None)[seed % 3 == 2])
    return x, args, pick(1, 400)


@pytest.mark.parametrize("seed", range(36))
def test_tiled_filtered_lrelu_equals_reference_on_random_cases(seed):
    x, args, tile_elements = random_filtered_lrelu_case(seed)
    expected = filtered_lrelu_reference(x, **args)
    scale = 1e-5 * (1 + float(expected.abs().max()))
    for elements in (None, tile_elements):
        got = filtered_lrelu_fast(x.contiguous(memory_format=torch.channels_last), tile_elements=elements, **args)
        assert got.shape == expected.shape
        assert max_diff(got, expected) < scale


@pytest.mark.parametrize("seed", range(12))
def test_tile_plan_from_bands_of_input_rows(seed):
    # What the lean StyleGAN3 layer does: feed each row tile only the input rows it reads, and
    # carry extra zero channels that the output leaves out.
    from models.filtered_lrelu import TilePlan

    x, args, tile_elements = random_filtered_lrelu_case(seed)
    if args["fu"] is None and args["fd"] is None and args["up"] == args["down"] == 1:
        return  # the pure activation case never reaches the tile plan
    expected = filtered_lrelu_reference(x, **args)
    padded = torch.cat([x, torch.zeros([x.shape[0], 3, *x.shape[2:]])], dim=1)
    padded = padded.contiguous(memory_format=torch.channels_last)
    bias = torch.cat([args["b"], torch.zeros(3)])
    plan = TilePlan(padded.shape, x.dtype, x.device, args["fu"], args["fd"], args["up"], args["down"],
                    args["padding"], args["gain"], tile_elements)
    out = torch.full_like(expected, float("nan"))
    for rows in plan.row_tiles:
        top, bottom = plan.input_rows(rows)
        plan.fill_rows(out, padded[:, :, top:bottom].clone(), bias, rows, args["slope"], args["clamp"], x_top=top)
    assert max_diff(out, expected) < 1e-5 * (1 + float(expected.abs().max()))


def fused(x, args, bands=1):
    """filtered_lrelu through the fused kernel, per sample, in `bands` bands of output rows each
    given only the input rows it reads (as the lean layer does)."""
    from models import cpu_kernels

    fd = None if args["fd"] is None else args["fd"].numpy()
    plan = cpu_kernels.Plan(x.shape[2], x.shape[3], None if args["fu"] is None else args["fu"].numpy(), fd,
                              args["up"], args["down"], args["padding"], args["gain"])
    out = np.full([x.shape[0], plan.out_h, plan.out_w, x.shape[1]], np.nan, np.float32)
    rows = x.permute(0, 2, 3, 1).contiguous().numpy()
    for n in range(x.shape[0]):
        for o0, o1 in filtered_lrelu.even_splits(plan.out_h, -(-plan.out_h // bands)):
            top, bottom = plan.input_rows(o0, o1)
            plan.run(rows[n, top:bottom].copy(), args["b"].numpy(), out[n], o0, o1, top, args["slope"], args["clamp"])
    return torch.from_numpy(out).permute(0, 3, 1, 2)


@pytest.mark.parametrize("seed", range(36))
def test_fused_kernel_equals_reference_on_random_cases(seed, monkeypatch):
    from models import cpu_kernels

    x, args, tile_elements = random_filtered_lrelu_case(seed)
    if not cpu_kernels.supports(args["fu"], args["up"], args["down"]):
        assert args["up"] % args["down"]  # the only shapes it leaves to the torch path
        return
    expected = filtered_lrelu_reference(x, **args)
    scale = 1e-5 * (1 + float(expected.abs().max()))
    for tile_values, bands in ((cpu_kernels.TILE_VALUES, 1), (tile_elements // 8 + 1, 3)):
        monkeypatch.setattr(cpu_kernels, "TILE_VALUES", tile_values)  # one column tile, or many
        got = fused(x, args, bands)
        assert got.shape == expected.shape
        assert max_diff(got, expected) < scale


@pytest.mark.parametrize("terms", [2, 3, 4, 5])
@pytest.mark.parametrize("up", [2, 4])
def test_fused_kernel_runs_mirrored_terms_together(terms, up, monkeypatch):
    # R's radial filters: 12x12, mirrored along both axes, 2-4 separable terms, which the kernel
    # takes in one pass (five terms are left to the per-term loop).
    from models import cpu_kernels

    gen = torch.Generator().manual_seed(terms * 10 + up)
    halves = torch.rand([terms, 6], generator=gen, dtype=torch.float64)
    mirrored = torch.cat([halves, halves.flip(1)], dim=1)
    fd = torch.einsum("rh,rw->hw", mirrored, mirrored * torch.rand([terms, 1], generator=gen)).float()
    x = torch.randn([1, 9, 13, 21], generator=gen) * 3
    args = dict(fu=torch.rand([6 * up], generator=gen), fd=fd, b=torch.randn([9], generator=gen), up=up, down=2,
                padding=[8, 7, 9, 6], gain=2 ** 0.5, slope=0.2, clamp=4.0)
    plan = cpu_kernels.Plan(13, 21, args["fu"].numpy(), fd.numpy(), up, 2, args["padding"], args["gain"])
    assert len(plan.down_w) == terms
    assert plan.mirrored_terms == (terms <= 4)
    expected = filtered_lrelu_reference(x, **args)
    # Bands of 3-5 output rows: groups of four, two and single output rows, each in its own pass.
    for tile_values, bands in ((cpu_kernels.TILE_VALUES, 1), (40, 3), (cpu_kernels.TILE_VALUES, 5)):
        monkeypatch.setattr(cpu_kernels, "TILE_VALUES", tile_values)
        got = fused(x, args, bands)
        assert max_diff(got, expected) < 1e-5 * (1 + float(expected.abs().max()))


def test_radial_filter_splits_into_few_separable_terms():
    from models import cpu_kernels

    G = stylegan3.build(stylegan3.train_defaults("r", 256))
    for name in G.synthesis.layer_names:
        fd = getattr(G.synthesis, name).down_filter
        if fd is None or fd.ndim != 2:
            continue
        along_w, along_h = cpu_kernels.down_terms(fd.numpy())
        assert 2 <= len(along_w) <= 4  # 144 taps become at most 4 x (12 + 12)
        rebuilt = np.einsum("rh,rw->hw", along_h.astype(np.float64), along_w.astype(np.float64))
        flipped = fd.numpy()[::-1, ::-1]
        assert np.abs(rebuilt - flipped).sum() <= cpu_kernels.RANK_TOLERANCE * np.abs(flipped).sum()
    # A filter with no structure keeps all its terms and is still exact.
    random = np.random.default_rng(0).random([5, 5])
    along_w, along_h = cpu_kernels.down_terms(random)
    assert len(along_w) == 5
    assert np.allclose(np.einsum("rh,rw->hw", along_h, along_w), random[::-1, ::-1], atol=1e-6)


@torch.no_grad()
@pytest.mark.parametrize("cfg", ["t", "r"])
@pytest.mark.parametrize("small_pieces", [False, True])
@pytest.mark.parametrize("path", ["fused", "tiled"])
def test_in_process_network_fast_equals_reference(cfg, small_pieces, path, monkeypatch):
    from models import cpu_kernels

    if path == "tiled":  # what runs without numba, and for shapes the kernel does not take
        monkeypatch.setattr(cpu_kernels, "supports", lambda *args: False)
    if small_pieces:  # what 1024 px does: bands of rows, groups of channels, tiles of conv rows
        from models import filtered_lrelu

        monkeypatch.setattr(filtered_lrelu, "TILE_ELEMENTS", 5000)
        monkeypatch.setattr(fast_stylegan3, "FUSED_BAND_VALUES", 2000)
        monkeypatch.setattr(cpu_kernels, "TILE_VALUES", 64)
    torch.manual_seed(1)
    G = perturbed(stylegan3.build(tiny_kwargs(cfg)))
    assert G.architecture == f"stylegan3-{cfg}"
    if cfg == "r":
        layers = [getattr(G.synthesis, n) for n in G.synthesis.layer_names]
        assert all(layer.weight.shape[2:] == (1, 1) for layer in layers)
        assert [layer.down_filter is not None and layer.down_filter.ndim == 2 for layer in layers[:-1]] == \
            [not layer.is_critically_sampled for layer in layers[:-1]]
        # Doubled channels relative to T with the same (undoubled) train.py base.
        t_layers = stylegan3.build(tiny_kwargs("t")).synthesis.layer_names
        assert [int(n.split("_")[2]) for n in G.synthesis.layer_names[:-1]] == \
            [min(2 * int(n.split("_")[2]), 64) for n in t_layers[:-1]]
    z = torch.randn([2, G.z_dim], generator=torch.Generator().manual_seed(5))
    ws = G.mapping(z, None, truncation_psi=0.8)
    fast = G.synthesis(ws)
    single = G.synthesis(ws[1:])
    slow = G.set_reference(True).synthesis(ws)
    assert fast.shape == (2, 3, 32, 32)
    assert float(fast.std()) > 1e-3
    assert max_diff(fast, slow) < 1e-4
    assert max_diff(single, slow[1:]) < 1e-4


@torch.no_grad()
@pytest.mark.parametrize("cfg", ["t", "r"])
def test_fused_loops_split_over_threads_give_the_same_image(cfg, monkeypatch):
    # The fused filter splits its column tiles, Winograd its tile rows, over torch's thread count.
    from models import cpu_kernels

    monkeypatch.setattr(cpu_kernels, "TILE_VALUES", 64)  # many column tiles to split
    torch.manual_seed(1)
    G = perturbed(stylegan3.build(tiny_kwargs(cfg)))
    ws = G.mapping(torch.randn([1, G.z_dim], generator=torch.Generator().manual_seed(5)), None)
    one = G.synthesis(ws).clone()
    # Three workers for our loops; torch's own kernels stay on one thread (with more, oneDNN's
    # reductions may round differently, which is not what this test is about).
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    three = G.synthesis(ws)
    assert torch.equal(one, three)


def test_split_and_run_parallel():
    from models import cpu_kernels

    for count, parts in ((10, 3), (2, 5), (7, 1)):
        runs = cpu_kernels.split(count, parts)
        assert len(runs) == min(count, parts) and all(b > a for a, b in runs)
        assert [i for a, b in runs for i in range(a, b)] == list(range(count))
    done = []
    cpu_kernels.run_parallel([lambda i=i: done.append(i) for i in range(4)])
    assert sorted(done) == [0, 1, 2, 3]
    with pytest.raises(ZeroDivisionError):
        cpu_kernels.run_parallel([lambda: None, lambda: 1 / 0])
    # The first job runs on the calling thread (no hand-off); the rest on the pool.
    threads = []
    cpu_kernels.run_parallel([lambda: threads.append(threading.get_ident()) for _ in range(3)])
    assert threads.count(threading.get_ident()) == 1 and len(threads) == 3
    # A failing first job still waits for the others: nothing writes into buffers after the raise.
    finished = []
    def slow():
        time.sleep(0.2)
        finished.append(True)
    with pytest.raises(ZeroDivisionError):
        cpu_kernels.run_parallel([lambda: 1 / 0, slow])
    assert finished == [True]


@torch.no_grad()
@pytest.mark.parametrize("path", ["fused", "tiled"])
def test_kept_layer_buffers_never_overwrite_what_someone_holds(path, monkeypatch):
    # Layers write into two buffers kept between frames; a layer output a hook kept (the layer
    # view does) and the images handed out must survive the next frames unchanged.
    from models import cpu_kernels

    if path == "tiled":
        monkeypatch.setattr(cpu_kernels, "supports", lambda *args: False)
    torch.manual_seed(2)
    G = perturbed(stylegan3.build(tiny_kwargs("t")))
    ws = [G.mapping(torch.randn([1, G.z_dim]), None) for _ in range(3)]
    fresh = [G.synthesis(w) for w in ws]  # reference images, and the buffers now exist
    name = G.synthesis.layer_names[3]
    held = {}
    handle = getattr(G.synthesis, name).register_forward_hook(lambda m, a, out: held.setdefault("out", out))
    first = G.synthesis(ws[0])
    handle.remove()
    copy = held["out"].clone()
    second = G.synthesis(ws[1])
    third = G.synthesis(ws[2])
    assert torch.equal(held["out"], copy)  # not overwritten by the frames after it
    assert torch.equal(first, fresh[0]) and torch.equal(second, fresh[1]) and torch.equal(third, fresh[2])
    assert max_diff(first, second) > 1e-3
    # With nothing held, the frames reuse the two buffers: no new memory per frame.
    kept = [b.data_ptr() for b in G.synthesis._kept]
    G.synthesis(ws[0])
    assert [b.data_ptr() for b in G.synthesis._kept] == kept


@torch.no_grad()
def test_small_chunks_give_the_same_image(G, ref, monkeypatch):
    # At 1024 px the lean path splits channels and conv rows; force that on the small fixture.
    from models import filtered_lrelu

    monkeypatch.setattr(filtered_lrelu, "TILE_ELEMENTS", 3000)
    img = G.synthesis(torch.from_numpy(ref["ws_seed1_psi0p7"]))
    assert max_diff(img, ref["img_seed1_psi0p7_const"]) < IMG_ATOL


def test_unknown_option_is_a_load_error():
    from models.errors import LoadError

    with pytest.raises(LoadError, match="frobnicate"):
        stylegan3.build(dict(tiny_kwargs("t"), frobnicate=3))


@torch.no_grad()
@pytest.mark.parametrize("cfg", ["t", "r"])
def test_layer_checkpoints_resume_exactly_within_their_budget(cfg):
    # A pass with a StageCache starts at the last kept layer input whose upstream is unchanged; the
    # image equals an uncached pass bit for bit, and the kept inputs stay within the budget.
    from models.stage_cache import StageCache

    torch.manual_seed(3)
    G = stylegan3.build(dict(stylegan3.train_defaults(cfg, 64), channel_base=1024, channel_max=64))
    ws = G.mapping(torch.randn(1, G.z_dim), None).clone()
    other = G.mapping(torch.randn(1, G.z_dim), None)
    layers = len(G.synthesis.layer_names)
    for budget in (0, 1 << 20, 1 << 30):
        cache = checkpoints = StageCache(checkpoint_budget=budget)
        image = G.synthesis(ws, block_cache=cache)
        assert torch.equal(image, G.synthesis(ws))
        assert checkpoints.stages_run == layers
        inputs = sum(x.untyped_storage().nbytes() for x in checkpoints.inputs.values())
        assert inputs <= budget and cache.nbytes() >= inputs + image.numel() * 4
        image.fill_(7)  # the caller's copy: the kept output stays as it was
        assert torch.equal(G.synthesis(ws, block_cache=cache), G.synthesis(ws)) and checkpoints.stages_run == 0
        for first in (layers, layers - 3, 5, 0):  # the w index that feeds layer first - 1
            changed = ws.clone()
            changed[:, first:] = other[:, first:]
            out = G.synthesis(changed, block_cache=cache)
            assert torch.equal(out, G.synthesis(changed))
            start = checkpoints.start
            assert start <= max(first - 1, 0) and checkpoints.stages_run == layers - start
            if budget == 0:
                assert start == 0  # nothing kept but the output
            if budget == 1 << 30:
                assert start == max(first - 1, 0)  # every layer input fits
            assert torch.equal(G.synthesis(ws, block_cache=cache), G.synthesis(ws))  # and back
    transform = stylegan3.input_transform((0.2, 0.1), 15)
    assert torch.equal(G.synthesis(ws, block_cache=cache, input_transform=transform),
                       G.synthesis(ws, input_transform=transform))
    assert checkpoints.stages_run == layers
    G.set_reference(True)  # another path: nothing kept from the lean one is used
    assert torch.equal(G.synthesis(ws, block_cache=cache), G.synthesis(ws)) and checkpoints.stages_run == layers
    G.set_reference(False)


def test_choose_checkpoints_prefers_cheap_big_savings():
    from models.stage_cache import choose_checkpoints

    costs = [1, 1, 1, 10, 10]
    assert choose_checkpoints(costs, [0, 1, 1, 1, 1], 0) == []
    assert choose_checkpoints(costs, [0, 1, 1, 1, 1], 10) == [1, 2, 3, 4]
    # Keeping layer 4's input saves the most re-rendering of the pairs that fit.
    assert choose_checkpoints(costs, [0, 5, 5, 5, 5], 5) == [4]


@torch.no_grad()
@pytest.mark.parametrize("cfg", ["t", "r"])
def test_reduced_pass_fast_convolutions_match_the_modulated_weight(cfg, monkeypatch):
    # Previews run T's 3x3 convolutions through Winograd with the fixed weight's transform kept (styles
    # on the input, demodulation on the output) and R's 1x1 ones as matrix products: the same image as
    # the per-sample modulated weights within float rounding; a weight change is picked up.
    torch.manual_seed(4)
    G = stylegan3.build(dict(stylegan3.train_defaults(cfg, 64), channel_base=2048, channel_max=64))
    ws = G.mapping(torch.randn(1, G.z_dim), None)
    fast = stylegan3.reduced_synthesis(G.synthesis, ws, 32)
    if cfg == "t":
        assert G.synthesis.L2_36_64.__dict__["_reduced_fixed"][1].shape[0] == 36  # the transform, kept
    with monkeypatch.context() as patch:
        patch.setattr(fast_stylegan3, "fixed_weight_pays", lambda layer, x: False)
        plain = stylegan3.reduced_synthesis(G.synthesis, ws, 32)
        assert (fast - plain).abs().max() <= 1e-5 * plain.abs().max()
        G.synthesis.L3_36_64.weight.mul_(-0.5)
        changed = stylegan3.reduced_synthesis(G.synthesis, ws, 32)
    assert not torch.allclose(changed, plain)
    assert (stylegan3.reduced_synthesis(G.synthesis, ws, 32) - changed).abs().max() <= 1e-5 * changed.abs().max()


@torch.no_grad()
def test_reduced_pass_margins_only_touch_the_edges():
    # The reduced pass keeps REDUCED_MARGIN samples beyond the image instead of the real layers' 10
    # (at the first layers' rates most of their grid): the image's middle is as with full margins.
    torch.manual_seed(5)
    G = stylegan3.build(dict(stylegan3.train_defaults("t", 64), channel_base=2048, channel_max=64))
    ws = G.mapping(torch.randn(1, G.z_dim), None)
    trimmed = stylegan3.reduced_synthesis(G.synthesis, ws, 32)
    full = stylegan3.reduced_synthesis(G.synthesis, ws, 32, margin=None)
    assert trimmed.shape == full.shape == (1, 3, 32, 32)
    scale = full.abs().max()
    assert (trimmed - full)[..., 6:-6, 6:-6].abs().max() <= 0.05 * scale  # measured 0.03 (0.14 at the edge)
    assert (trimmed - full).abs().mean() <= 0.01 * scale
