"""Renderer: faithful frames, style mixing by hand, named groups, capture, feature views, caches, errors."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from models.stylegan2 import Generator
from renderer.display import image_to_uint8
from renderer.renderer import Renderer
from renderer.request import RenderRequest, mix_indices
from renderer_standin import nudged_stylegan2, renderer_for, standin_loader

SG2_FIXTURES = ["sg2ada_64", "sg3_sg2_64", "tf_sg2_64"]
ALL_FIXTURES = SG2_FIXTURES + ["sg3_t_64"]


@pytest.fixture(scope="module")
def small_sg2():
    return nudged_stylegan2(seed=3)


def reference(fixtures_dir, name):
    return np.load(fixtures_dir / f"{name}_ref.npz")


@pytest.fixture(scope="module")
def fx_renderer():
    """One renderer for the fixture tests, so each network file is loaded once."""
    pytest.importorskip("models.loader")
    return Renderer("cpu")


# -- faithful path ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_plain_seed_frame_equals_gen_images(fixtures_dir, fx_renderer, name):
    renderer = fx_renderer
    ref = reference(fixtures_dir, name)
    cases = [(0, 1.0, "1p0"), (42, 0.7, "0p7")]
    if name == "sg3_t_64":
        cases = cases[1:]  # slow on CPU; seed 0 psi 1 is rendered by the transform test
    for seed, psi, tag in cases:
        frame = renderer.render(RenderRequest(pkl=str(fixtures_dir / f"{name}.pkl"), seeds=seed, truncation_psi=psi))
        assert frame.error is None, frame.error
        expected = image_to_uint8(torch.from_numpy(ref[f"img_seed{seed}_psi{tag}_const"]))[0].numpy()
        assert frame.image.shape == expected.shape
        assert np.abs(frame.image.astype(int) - expected.astype(int)).max() <= 1


def test_cutoff_and_no_noise_follow_the_reference(fixtures_dir, fx_renderer):
    renderer = fx_renderer
    ref = reference(fixtures_dir, "sg2ada_64")
    pkl = str(fixtures_dir / "sg2ada_64.pkl")
    ws = renderer.compute_ws(RenderRequest(pkl=pkl, seeds=7, truncation_psi=0.5, truncation_cutoff=2))
    np.testing.assert_allclose(ws.numpy(), ref["ws_seed7_psi0p5_cutoff2"], atol=1e-5)
    frame = renderer.render(RenderRequest(pkl=pkl, seeds=0, noise_mode="none"))
    expected = image_to_uint8(torch.from_numpy(ref["img_seed0_psi1p0_none"]))[0].numpy()
    assert np.abs(frame.image.astype(int) - expected.astype(int)).max() <= 1


def test_fixture_style_mix_equals_reference(fixtures_dir, fx_renderer):
    renderer = fx_renderer
    ref = reference(fixtures_dir, "sg2ada_64")
    k = int(ref["mix_k"])
    num_ws = ref["ws_seed0_psi1p0"].shape[1]
    request = RenderRequest(pkl=str(fixtures_dir / "sg2ada_64.pkl"), seeds=0, mix_seed=1, mix_layers=f"{k}-{num_ws - 1}")
    np.testing.assert_allclose(renderer.compute_ws(request).numpy(), ref["ws_mix_seed0_seed1"], atol=1e-5)
    expected = image_to_uint8(torch.from_numpy(ref["img_mix_seed0_seed1"]))[0].numpy()
    assert np.abs(renderer.render(request).image.astype(int) - expected.astype(int)).max() <= 1


def test_stylegan3_input_transform(fixtures_dir, fx_renderer):
    pytest.importorskip("models.stylegan3")
    renderer = fx_renderer
    ref = reference(fixtures_dir, "sg3_t_64")
    tx, ty, angle = (float(v) for v in ref["transform_translate_angle"])
    request = RenderRequest(pkl=str(fixtures_dir / "sg3_t_64.pkl"), seeds=0,
                            transform_translate=(tx, ty), transform_rotate=angle)
    frame = renderer.render(request)
    assert frame.error is None, frame.error
    expected = image_to_uint8(torch.from_numpy(ref["img_seed0_psi1p0_const_transform"]))[0].numpy()
    assert np.abs(frame.image.astype(int) - expected.astype(int)).max() <= 1
    # the transform is set per request: the next plain request is untransformed again
    plain = renderer.render(RenderRequest(pkl=request.pkl, seeds=0))
    expected = image_to_uint8(torch.from_numpy(ref["img_seed0_psi1p0_const"]))[0].numpy()
    assert np.abs(plain.image.astype(int) - expected.astype(int)).max() <= 1


# -- capture and the layer list -----------------------------------------------------------


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_layer_list_and_captures_match_fixture_shapes(fixtures_dir, fx_renderer, name):
    renderer = fx_renderer
    ref = reference(fixtures_dir, name)
    shapes = json.loads(str(ref["feature_shapes_json"]))
    frame = renderer.render(RenderRequest(pkl=str(fixtures_dir / f"{name}.pkl"), seeds=0))
    assert frame.layers, frame.error
    for layer, shape, resolution in frame.layers:
        expected = shapes[f"synthesis.{layer}"]
        expected = expected[0] if isinstance(expected[0], list) else expected
        assert list(shape) == expected, layer
        assert resolution == shape[-1]
    four_d = [k for k, v in shapes.items() if k.startswith("synthesis.") and len(_first_shape(v)) == 4]
    assert {f"synthesis.{n}" for n, _, _ in frame.layers} == set(four_d)
    for i, feature_name in enumerate(str(n) for n in ref["feature_names"]):
        feature = ref[f"feat_{i}"]
        frame = renderer.render(RenderRequest(pkl=str(fixtures_dir / f"{name}.pkl"), seeds=0, layer=feature_name))
        assert frame.error is None, frame.error
        assert frame.tensor_shape == feature.shape
        assert frame.stats["mean"] == pytest.approx(float(feature.mean()), abs=1e-4)
        assert frame.stats["max"] == pytest.approx(float(feature.max()), abs=1e-4)


def _first_shape(shape):
    return shape[0] if shape and isinstance(shape[0], list) else (shape or [])


def test_capture_stops_the_pass(net_file):
    loader = standin_loader(resolution=64)
    renderer = Renderer("cpu", load=loader)
    renderer.render(RenderRequest(pkl=net_file))  # first pass also records the layer list
    synthesis = loader.built[0].synthesis
    before = synthesis.blocks_run
    frame = renderer.render(RenderRequest(pkl=net_file, layer="b8.conv1", channel_mode="one", channel=1))
    assert frame.error is None
    assert frame.tensor_shape == (1, 4, 8, 8)
    assert synthesis.blocks_run - before == 1  # b4 finished, b8 stopped inside, b16+ never ran


def test_unknown_layer_names_it_and_lists_valid_ones(small_sg2, net_file):
    frame = renderer_for(small_sg2).render(RenderRequest(pkl=net_file, layer="b16.conv9"))
    assert frame.image is None
    assert "b16.conv9" in frame.error and "b4.conv1" in frame.error


# -- latents, mixing, noise ---------------------------------------------------------------


@pytest.mark.parametrize("layers", ["0-2", "4-7", "coarse", "middle", "fine", "1,5,8"])
def test_mixing_equals_ws_by_hand(small_sg2, net_file, layers):
    G = small_sg2
    renderer = renderer_for(G)
    unmixed = renderer.render(RenderRequest(pkl=net_file, seeds=11, truncation_psi=0.8))

    def mapped(seed):
        z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).float()
        return G.mapping(z, None, truncation_psi=0.8)

    idx = mix_indices(layers, G.synthesis.ws_resolutions)
    assert idx
    for strength in (1.0, 0.4):
        ws = mapped(11)
        ws[:, idx] = ws[:, idx] + strength * (mapped(12)[:, idx] - ws[:, idx])
        expected = image_to_uint8(G.synthesis(ws, noise_mode="const"))[0].numpy()
        request = RenderRequest(pkl=net_file, seeds=11, truncation_psi=0.8, mix_seed=12, mix_layers=idx,
                                mix_strength=strength)
        frame = renderer.render(request)
        assert frame.error is None, frame.error
        assert np.abs(frame.image.astype(int) - expected.astype(int)).max() <= 1
        assert (frame.image != unmixed.image).any()


def test_seed_blend_is_relative_to_w_avg(small_sg2, net_file):
    renderer = renderer_for(small_sg2)
    w_avg = small_sg2.mapping.w_avg
    ws = {s: renderer.compute_ws(RenderRequest(pkl=net_file, seeds=s)) for s in (100, 101, 200, 201)}
    blended = renderer.compute_ws(RenderRequest(pkl=net_file, seed_xy=(0.25, 1.5)))
    expected = w_avg + 0.375 * (ws[100] - w_avg) + 0.125 * (ws[101] - w_avg) + 0.375 * (ws[200] - w_avg) + 0.125 * (ws[201] - w_avg)
    torch.testing.assert_close(blended, expected)
    half = renderer.compute_ws(RenderRequest(pkl=net_file, seeds=[(100, 0.5)]))
    torch.testing.assert_close(half, w_avg + 0.5 * (ws[100] - w_avg))


def test_explicit_z_w_and_offset(small_sg2, net_file):
    renderer = renderer_for(small_sg2)
    z = np.random.RandomState(5).randn(small_sg2.z_dim)
    from_z = renderer.compute_ws(RenderRequest(pkl=net_file, z=z))
    from_seed = renderer.compute_ws(RenderRequest(pkl=net_file, seeds=5))
    torch.testing.assert_close(from_z, from_seed)
    from_w = renderer.compute_ws(RenderRequest(pkl=net_file, w=from_seed[0].numpy(), w_offset=[0.5] * 16))
    torch.testing.assert_close(from_w, from_seed + 0.5)
    frame = renderer.render(RenderRequest(pkl=net_file, z=[0.0] * 3))
    assert frame.error.startswith("z:") and "z_dim is 16" in frame.error


def test_random_noise_is_reproducible(small_sg2, net_file):
    renderer = renderer_for(small_sg2)
    request = RenderRequest(pkl=net_file, seeds=1, noise_mode="random", noise_seed=4)
    first, again = renderer.render(request), renderer_for(small_sg2).render(request)
    assert np.array_equal(first.image, again.image)
    other = renderer.render(RenderRequest(pkl=net_file, seeds=1, noise_mode="random", noise_seed=5))
    assert not np.array_equal(first.image, other.image)


def test_noise_strengths(small_sg2, net_file):
    renderer = renderer_for(small_sg2)
    base = dict(pkl=net_file, seeds=1)
    none = renderer.render(RenderRequest(**base, noise_mode="none")).image
    zero = renderer.render(RenderRequest(**base, noise_strength=0.0)).image
    assert np.array_equal(none, zero)
    noisy = ["b4.conv1"] + [f"b{r}.conv{i}" for r in (8, 16, 32, 64) for i in (0, 1)]
    all_zero = {name: 0.0 for name in noisy}
    assert np.array_equal(none, renderer.render(RenderRequest(**base, noise_layer_strength=all_zero)).image)
    one_layer = renderer.render(RenderRequest(**base, noise_layer_strength={"b32.conv1": 3.0})).image
    plain = renderer.render(RenderRequest(**base)).image
    assert not np.array_equal(one_layer, plain)
    bad = renderer.render(RenderRequest(**base, noise_layer_strength={"b32.torgb": 2.0}))
    assert "b32.torgb" in bad.error and "noise_layer_strength" in bad.error


# -- views --------------------------------------------------------------------------------


def test_feature_views(small_sg2, net_file):
    renderer = renderer_for(small_sg2)
    base = dict(pkl=net_file, seeds=2, layer="b16.conv1")  # 16 channels at 16x16
    rgb = renderer.render(RenderRequest(**base, normalize="minmax"))
    assert rgb.image.shape == (16, 16, 3)
    assert rgb.image.min() == 0 and rgb.image.max() == 255
    one = renderer.render(RenderRequest(**base, channel_mode="one", channel=7))
    assert (one.image[..., 0] == one.image[..., 1]).all() and (one.image[..., 1] == one.image[..., 2]).all()
    assert one.stats["sel_max"] <= one.stats["max"]
    grid = renderer.render(RenderRequest(**base, channel_mode="grid", grid_channels=9))
    assert grid.image.shape == (48, 48, 3)
    quiet = renderer.render(RenderRequest(**base)).image.astype(int)
    louder = renderer.render(RenderRequest(**base, gain_db=20.0)).image.astype(int)
    assert np.abs(louder - 128).mean() > np.abs(quiet - 128).mean()
    fft = renderer.render(RenderRequest(**base, fft=True))
    assert fft.image.shape == (16, 16, 3) and fft.image.max() == 255
    scaled = renderer.render(RenderRequest(**base, output_scale=2.0))
    assert scaled.image.shape == (32, 32, 3)
    bad = renderer.render(RenderRequest(**base, channel=15))
    assert bad.error.startswith("channel:")


def test_preview_is_the_accumulated_low_resolution_image(small_sg2, net_file):
    frame = renderer_for(small_sg2).render(RenderRequest(pkl=net_file, seeds=3), preview_resolution=8)
    assert frame.preview and frame.image.shape == (64, 64, 3)
    assert frame.tensor_shape == (1, 3, 8, 8)
    block = np.asarray(frame.image[:8, :8])
    assert (block == block[0, 0]).all()  # nearest-neighbour upscaled 8x8


# -- caches and errors --------------------------------------------------------------------


def test_caches_network_and_mapping(net_file):
    loader = standin_loader()
    renderer = Renderer("cpu", load=loader)
    for psi in (1.0, 1.0, 0.5):
        assert renderer.render(RenderRequest(pkl=net_file, seeds=9, truncation_psi=psi)).error is None
    assert len(loader.built) == 1
    assert loader.built[0].mapping.calls == 2  # one per (seed, psi)
    renderer.render(RenderRequest(pkl=net_file, seeds=9, precision="fp16"))
    assert len(loader.built) == 2  # network cached per precision too


def test_errors_come_back_as_text(small_sg2, net_file, tmp_path):
    renderer = renderer_for(small_sg2)
    missing = renderer.render(RenderRequest(pkl=str(tmp_path / "nope.pkl")))
    assert missing.image is None and "nope.pkl" in missing.error
    unconditional = renderer.render(RenderRequest(pkl=net_file, class_idx=3))
    assert unconditional.error.startswith("class_idx:")
    wrong_w = renderer.render(RenderRequest(pkl=net_file, w=[0.0] * 5))
    assert wrong_w.error.startswith("w:")
    out_of_range = renderer.render(RenderRequest(pkl=net_file, mix_seed=1, mix_layers="3-30"))
    assert out_of_range.error.startswith("mix_layers:")
    assert renderer.render(RenderRequest(pkl=net_file)).error is None


def test_conditional_network_labels(net_file):
    torch.manual_seed(4)
    G = Generator(z_dim=8, c_dim=5, w_dim=8, img_resolution=16, img_channels=3,
                  synthesis_kwargs=dict(channel_base=128, channel_max=8)).eval().requires_grad_(False)
    renderer = renderer_for(G)
    rnd = np.random.RandomState(6)
    z = torch.from_numpy(rnd.randn(1, 8)).float()
    picked = rnd.randint(5)  # NVIDIA's visualizer: the class drawn right after z
    c = torch.zeros(1, 5)
    c[0, picked] = 1
    torch.testing.assert_close(renderer.compute_ws(RenderRequest(pkl=net_file, seeds=6)), G.mapping(z, c))
    c = torch.zeros(1, 5)
    c[0, 2] = 1
    torch.testing.assert_close(renderer.compute_ws(RenderRequest(pkl=net_file, seeds=6, class_idx=2)), G.mapping(z, c))
    assert renderer.render(RenderRequest(pkl=net_file, seeds=6, class_idx=5)).error.startswith("class_idx:")
    assert renderer.render(RenderRequest(pkl=net_file, z=[0.0] * 8)).error.startswith("class_idx: required")


def test_preview_of_stylegan1_uses_its_level_torgb(fixtures_dir, fx_renderer):
    request = RenderRequest(pkl=str(fixtures_dir / "sg1_64.pkl"), seeds=1)
    frame = fx_renderer.render(request, preview_resolution=32)
    assert frame.error is None, frame.error
    assert frame.preview and frame.tensor_shape == (1, 3, 32, 32) and frame.image.shape == (64, 64, 3)


def tiny_sg2(architecture, resolution=32):
    """A small orig/resnet StyleGAN2 nudged off its init (noise, biases and skips all matter)."""
    torch.manual_seed(5)
    G = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=resolution, img_channels=3,
                  synthesis_kwargs=dict(channel_base=256, channel_max=16, architecture=architecture))
    with torch.no_grad():
        for param in G.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    return G.set_reference(False).eval().requires_grad_(False)


def likeness(preview, full, size):
    """Correlation of a preview's pixels with the full frame averaged down to the preview's size."""
    factor = full.shape[0] // size
    small_full = full.astype(float).reshape(size, factor, size, factor, 3).mean(axis=(1, 3))
    small_preview = preview.astype(float)[::factor, ::factor]  # nearest-upscaled: one sample per block
    return np.corrcoef(small_preview.ravel(), small_full.ravel())[0, 1]


@pytest.mark.parametrize("architecture, bound_at_half", [("orig", 0.9), ("resnet", 0.96)])
def test_orig_and_resnet_preview_is_a_reduced_render_like_the_full_frame(net_file, architecture, bound_at_half):
    G = tiny_sg2(architecture)
    request = RenderRequest(pkl=net_file, seeds=1)
    preview = renderer_for(G).render(request, preview_resolution=8)
    half = renderer_for(G).render(request, preview_resolution=16)
    full = renderer_for(G).render(request)  # fresh renderers: a cached full frame would skip the preview
    assert preview.error is None, preview.error
    assert preview.preview and half.preview and not full.preview
    assert preview.tensor_shape == (1, 3, 8, 8) and preview.image.shape == full.image.shape == (32, 32, 3)
    assert preview.image.std() > 10  # a picture, not a blank
    assert not np.array_equal(preview.image, full.image)
    # Measured on these tiny nets (seed 1): orig 0.82 / 0.94, resnet 0.90 / 0.98 at 8 / 16 px; with
    # conv0's kernel applied unflipped 0.68 / 0.86 and 0.82 / 0.95 (bigger nets: PSNR in bench/render.py).
    assert likeness(preview.image, full.image, 8) > 0.7
    assert likeness(half.image, full.image, 16) > bound_at_half


def test_reduced_preview_follows_noise_settings(net_file):
    renderer = renderer_for(tiny_sg2("orig"))
    const = renderer.render(RenderRequest(pkl=net_file, seeds=1), preview_resolution=8)
    silent = renderer.render(RenderRequest(pkl=net_file, seeds=1, noise_mode="none"), preview_resolution=8)
    assert const.preview and silent.preview and not np.array_equal(const.image, silent.image)
    random = RenderRequest(pkl=net_file, seeds=1, noise_mode="random", noise_seed=4)
    first = renderer.render(random, preview_resolution=8)
    assert first.preview and np.array_equal(first.image, renderer.render(random, preview_resolution=8).image)


def test_stylegan3_preview_is_a_reduced_render_like_the_full_frame(fixtures_dir, fx_renderer):
    request = RenderRequest(pkl=str(fixtures_dir / "sg3_t_64.pkl"), seeds=0, transform_rotate=10.0)
    preview = fx_renderer.render(request, preview_resolution=32)
    full = fx_renderer.render(request)
    assert preview.error is None, preview.error
    assert preview.preview and not full.preview
    assert preview.tensor_shape == (1, 3, 32, 32) and preview.image.shape == full.image.shape == (64, 64, 3)
    assert preview.image.std() > 1  # SG3-T's random-weight image is faint (raw std ~0.02 here)
    assert likeness(preview.image, full.image, 32) > 0.95  # measured 0.999 (0.975 at 16 px)
    unrotated = fx_renderer.render(dataclasses.replace(request, transform_rotate=0.0), preview_resolution=32)
    assert not np.array_equal(unrotated.image, preview.image)  # the input transform reaches the reduced pass


def test_worker_sends_the_reduced_preview_then_the_full_frame(net_file):
    from renderer.worker import RenderWorker

    G = tiny_sg2("resnet")
    frames = []
    request = RenderRequest(pkl=net_file, seeds=2)
    with RenderWorker(renderer_for(G), preview=True, preview_resolution=8, num_threads=0,
                      on_frame=frames.append) as worker:
        worker.submit(request)
        assert worker.wait_idle(timeout=30)
    assert [frame.preview for frame in frames] == [True, False]
    assert frames[0].tensor_shape == (1, 3, 8, 8) and frames[1].tensor_shape == (1, 3, 32, 32)
    assert np.array_equal(frames[1].image, renderer_for(G).render(request).image)


@pytest.mark.parametrize("architecture, stop_at", [("orig", 3), ("stylegan3", 5)])
def test_reduced_preview_can_be_cancelled_inside_the_reduced_part(fixtures_dir, net_file, architecture, stop_at):
    """orig: checks before b4, b8, then b16, the first block run without upsampling; stylegan3: a
    check before the input and before each layer, every one of them reduced."""
    if architecture == "stylegan3":
        renderer, request, resolution = Renderer("cpu"), RenderRequest(pkl=str(fixtures_dir / "sg3_t_64.pkl")), 32
    else:
        renderer, request, resolution = renderer_for(tiny_sg2("orig")), RenderRequest(pkl=net_file), 8
    checks = []

    def stop_late():
        checks.append(1)
        return len(checks) >= stop_at

    frame = renderer.render(request, should_stop=stop_late, preview_resolution=resolution)
    assert frame.cancelled and frame.image is None and len(checks) == stop_at
    assert renderer.render(request, preview_resolution=resolution).preview  # and it still works afterwards


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_unavailable_device_is_a_clear_error(small_sg2, net_file):
    frame = renderer_for(small_sg2).render(RenderRequest(pkl=net_file, device="cuda"))
    assert frame.error.startswith("device: cuda is not available")


@pytest.mark.parametrize("resolution, preview_px", [(512, 32), (1024, 64), (256, 32)])
def test_stylegan3_previews_are_a_sixteenth_of_the_image(net_file, resolution, preview_px):
    # A StyleGAN3 reduced pass costs more per pixel than StyleGAN2's early exit (512-1024 channels up to
    # high rates): asked for 64 px, it renders at a 16th of the image size, 32 px at least.
    from models import stylegan3

    torch.manual_seed(0)
    G = stylegan3.build(dict(stylegan3.train_defaults("t", resolution), channel_base=4096, channel_max=8)).eval()
    frame = renderer_for(G).render(RenderRequest(pkl=net_file, seeds=1), preview_resolution=64)
    assert frame.error is None and frame.preview
    assert frame.tensor_shape[-1] == preview_px and frame.image.shape == (resolution, resolution, 3)


def test_prepare_for_drags_makes_the_preview_and_keeps_only_what_the_network_prepared(net_file):
    # The worker's idle-time first preview: StyleGAN3 keeps its layers' fixed-weight transforms
    # from it, so the first preview of a drag is as quick as the later ones. Nothing else changes.
    from models import stylegan3
    from renderer.scheduler import prepare_for_drags

    torch.manual_seed(4)
    G = stylegan3.build(dict(stylegan3.train_defaults("t", 64), channel_base=2048, channel_max=64)).eval()
    renderer = renderer_for(G, recent_frames_bytes=0)  # the full frame below is rendered again, not recalled
    request = RenderRequest(pkl=net_file, seeds=3)
    full = renderer.render(request)
    assert "_reduced_fixed" not in G.synthesis.L2_36_64.__dict__
    assert prepare_for_drags(renderer, request, 32)
    assert "_reduced_fixed" in G.synthesis.L2_36_64.__dict__
    preview = renderer.render(dataclasses.replace(request, seeds=4), preview_resolution=32)
    assert preview.preview and preview.error is None
    assert np.array_equal(renderer.render(request).image, full.image)  # the cached full frame is as it was
    # Not for a layer view, and a cancel or an error is just False (the real render reports it).
    assert not prepare_for_drags(renderer, dataclasses.replace(request, layer="L2_36_64"), 32)
    assert not prepare_for_drags(renderer, request, 32, should_stop=lambda: True)
    assert not prepare_for_drags(renderer, dataclasses.replace(request, pkl=net_file + ".missing"), 32)


def test_prepare_for_drags_reserves_heap_for_the_block_caches_rerenders(small_sg2, net_file, monkeypatch):
    import renderer.scheduler as scheduler_module

    reserved = []
    monkeypatch.setattr(scheduler_module, "reserve_heap", reserved.append)
    renderer = renderer_for(small_sg2)
    request = RenderRequest(pkl=net_file, seeds=3)
    renderer.render(request)
    assert scheduler_module.prepare_for_drags(renderer, request, 8)
    cache = next(iter(renderer.sessions.values())).block_cache
    largest = max(entry.x.numel() * 4 for entry in cache.entries.values())
    # pre-noise, new output, conv0 before its filter; and the next previews' temporaries
    assert reserved == [3 * largest + scheduler_module.PREVIEW_HEAP_HEADROOM]
    assert cache.rerender_growth() == 3 * largest


def test_auto_preview_is_an_eighth_of_a_big_image_and_none_for_a_small_one(small_sg2, net_file):
    # For a network's first frame, before the window knows its size: a preview where it is big.
    big = renderer_for(tiny_sg2("skip", resolution=256))
    frame = big.render(RenderRequest(pkl=net_file, seeds=1), preview_resolution="auto")
    assert frame.preview and frame.tensor_shape == (1, 3, 32, 32) and frame.image.shape == (256, 256, 3)
    frame = renderer_for(small_sg2).render(RenderRequest(pkl=net_file, seeds=1), preview_resolution="auto")
    assert not frame.preview and frame.error is None  # 32 px: the full frame straight away


@pytest.mark.parametrize("channels_last", [False, True])
def test_statistics_are_those_of_the_values_whatever_their_layout(channels_last):
    from renderer.display import _stats

    torch.manual_seed(0)
    x = torch.randn(1, 24, 40, 40) * 3 + 5
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x = x[0]
    stats = _stats(x, x[4:7])
    for prefix, t in (("", x), ("sel_", x[4:7])):
        t64 = t.double()
        assert stats[prefix + "mean"] == pytest.approx(float(t64.mean()), rel=1e-6)
        assert stats[prefix + "std"] == pytest.approx(float(t64.std(unbiased=False)), rel=1e-6)
        assert stats[prefix + "min"] == float(t.min()) and stats[prefix + "max"] == float(t.max())


def reference_view(x, channels, normalize, gain_db, fft, grid):
    """The Layers view as the README describes it, in float64 numpy: [K, H, W] channels -> uint8 [H', W', 3]."""
    from renderer.display import FFT_RANGE_DB

    maps = x[channels].double().numpy()
    if fft:
        power = np.abs(np.fft.fftshift(np.fft.fft2(maps), axes=(-2, -1))) ** 2
        db = 10 * np.log10(np.maximum(power, 1e-20)) + gain_db
        top = db.max(axis=(1, 2), keepdims=True) - gain_db
        shown = (db - top) / (FFT_RANGE_DB / 2) + 1
    else:
        if normalize == "minmax":
            lo, hi = maps.min(axis=(1, 2), keepdims=True), maps.max(axis=(1, 2), keepdims=True)
            maps = (maps - lo) / np.maximum(hi - lo, 1e-8) * 2 - 1
        elif normalize == "std":
            maps = (maps - maps.mean(axis=(1, 2), keepdims=True)) / (2 * maps.std(axis=(1, 2), keepdims=True))
        shown = maps * 10 ** (gain_db / 20)
    if grid:  # near-square, row by row, empty cells at the display minimum
        count, h, w = shown.shape
        cols = int(np.ceil(np.sqrt(count)))
        rows = int(np.ceil(count / cols))
        canvas = np.full((rows * h, cols * w), -1.0)
        for k in range(count):
            canvas[(k // cols) * h:(k // cols + 1) * h, (k % cols) * w:(k % cols + 1) * w] = shown[k]
        shown = canvas[None]
    pixels = np.clip(shown * 127.5 + 128, 0, 255).astype(np.uint8)
    return np.repeat(pixels, 3, axis=0).transpose(1, 2, 0) if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)


@pytest.mark.parametrize("channels_last, size", [(False, (24, 20)), (True, (24, 20)), (True, (23, 19))])
@pytest.mark.parametrize("mode, channel, count", [("grid", 3, 5), ("one", 6, 1), ("rgb", 2, 3)])
@pytest.mark.parametrize("normalize, gain_db, fft", [
    ("none", 0.0, False), ("minmax", 0.0, False), ("std", 6.0, False), ("std", 0.0, True), ("none", -12.0, True)])
def test_layer_views_match_a_float64_reference(channels_last, size, mode, channel, count, normalize, gain_db, fft):
    from renderer.display import to_view

    torch.manual_seed(1)
    x = torch.randn(1, 12, *size) * 0.6 + torch.linspace(-1, 1, size[1])  # structure along W, for the FFT
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    request = RenderRequest(layer="b16.conv1", channel_mode=mode, channel=channel, grid_channels=count,
                            normalize=normalize, gain_db=gain_db, fft=fft)
    image, stats = to_view(x, request, is_image=False)
    expected = reference_view(x[0], slice(channel, channel + count), normalize, gain_db, fft, mode == "grid")
    assert image.shape == expected.shape and image.dtype == np.uint8
    difference = np.abs(image.astype(int) - expected.astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01  # float32 against float64 at pixel edges
    assert stats["sel_max"] == pytest.approx(float(x[0, channel:channel + count].max()))


def test_principal_directions_are_the_axes_of_w_largest_variance_first(fixtures_dir):
    from renderer.session import PCA_COMPONENTS

    request = RenderRequest(pkl=str(fixtures_dir / "sg2ada_64.pkl"))
    components, sigmas = Renderer("cpu").principal_directions(request)
    assert components.shape[0] == sigmas.shape[0] == PCA_COMPONENTS
    np.testing.assert_allclose(components @ components.T, np.eye(PCA_COMPONENTS), atol=1e-9)  # orthonormal
    assert (np.diff(sigmas) <= 0).all() and sigmas[-1] > 0
    again, _ = Renderer("cpu").principal_directions(request)
    np.testing.assert_array_equal(again, components)  # seeded: the same directions every time
    # On fresh samples (other seeds), w spreads along each axis by about its sigma, and along the
    # first axis more than along a random direction.
    renderer = Renderer("cpu")
    ws = np.stack([renderer.compute_ws(dataclasses.replace(request, seeds=seed))[0, 0].numpy()
                   for seed in range(1000, 1400)]).astype(np.float64)
    spread = (ws - ws.mean(axis=0)) @ components[:3].T
    np.testing.assert_allclose(spread.std(axis=0), sigmas[:3], rtol=0.2)
    random_axis = np.random.RandomState(0).randn(components.shape[1])
    assert ((ws - ws.mean(axis=0)) @ (random_axis / np.linalg.norm(random_axis))).std() < 0.8 * sigmas[0]
