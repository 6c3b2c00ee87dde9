"""SeFa, StyleSpace and learned directions (renderer/directions.py, models/style_space.py)."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from models import stylegan1, stylegan2, stylegan3, style_space
from renderer import directions
from renderer.renderer import Renderer
from renderer.request import RenderRequest
from conftest import ROOT
from renderer_standin import nudged_stylegan2, renderer_for


def random_network(family):
    """A randomly initialised generator of the family, built here (no fixture, no file)."""
    torch.manual_seed(11)
    if family == "v1":
        G = stylegan1.Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=32, img_channels=3,
                                mapping_layers=2, mapping_fmaps=16, fmap_base=256, fmap_max=16)
    elif family == "v2":
        G = stylegan2.Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=32, img_channels=3,
                                synthesis_kwargs=dict(channel_base=256, channel_max=16))
    else:
        G = stylegan3.build(dict(stylegan3.train_defaults("t", 64), z_dim=16, w_dim=16, channel_base=512,
                                 channel_max=16))
    with torch.no_grad():  # affine weights of different scales per layer: the per-channel normalisation matters
        for name, param in G.named_parameters():
            if name.endswith("affine.weight"):
                param.mul_(torch.rand([]) * 4 + 0.25)
    return G.eval().requires_grad_(False)


def closed_form(G, keep):
    """The SeFa closed form, independently: the style affines found by parameter name (ToRGB and
    SG3's input left out), each row (one style channel) scaled to unit length, the right singular
    vectors of the stack. keep(name) picks layers by their parameter name."""
    rows = []
    for name, param in G.synthesis.named_parameters():
        if not name.endswith("affine.weight") or "torgb" in name or name.startswith("input."):
            continue
        if getattr(G.synthesis, name.split(".")[0], None) is not None and getattr(
                G.synthesis.get_submodule(name.rsplit(".", 2)[0]), "is_torgb", False):
            continue
        if keep(name):
            rows.append(param.double().numpy())
    matrix = np.concatenate(rows)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    _, _, right = np.linalg.svd(matrix, full_matrices=False)
    return right


@pytest.mark.parametrize("family", ["v1", "v2", "v3"])
def test_sefa_equals_the_closed_form_on_a_random_network(family):
    G = random_network(family)
    found, values = directions.sefa_directions(G.synthesis, "all")
    expected = closed_form(G, lambda name: True)
    for k in range(3):
        assert abs(float(found[k] @ expected[k])) >= 0.999, (family, k)
    assert np.all(np.diff(values) <= 1e-9) and np.allclose(np.linalg.norm(found, axis=1), 1)


def test_sefa_of_a_layer_range_uses_those_layers_and_edits_only_their_ws():
    G = random_network("v2")
    # ws 0-3 feed b4.conv1, b8.conv0, b8.conv1, b16.conv0 (w 1 and 3 also ToRGBs, left out).
    found, _ = directions.sefa_directions(G.synthesis, "0-3")
    expected = closed_form(G, lambda name: name.split(".")[0] in ("b4", "b8") or name.startswith("b16.conv0"))
    assert all(abs(float(found[k] @ expected[k])) >= 0.999 for k in range(3))
    rows = directions.sefa_rows(G.synthesis, "0-3", 0)
    assert rows.shape == (G.num_ws, G.w_dim)
    assert np.abs(rows[4:]).max() == 0 and np.allclose(rows[:4], found[0])
    assert directions.sefa_rows(G.synthesis, "all", 1).shape == (1, G.w_dim)
    with pytest.raises(ValueError, match="outside"):
        directions.sefa_rows(G.synthesis, "all", G.w_dim)


@pytest.fixture(scope="module")
def default_renderer():
    return Renderer(device="cpu")


def brightness(renderer, request):
    frame = renderer.render(request)
    assert frame.error is None, frame.error
    return float(frame.image.mean())


def test_a_direction_learned_from_bright_and_dark_seeds_brightens_new_seeds(default_renderer):
    base = RenderRequest()
    light = {seed: brightness(default_renderer, RenderRequest(seeds=seed)) for seed in range(40)}
    ranked = sorted(light, key=light.get)
    direction = directions.learned_direction(default_renderer, base, ranked[-12:], ranked[:12])
    assert direction.shape == (default_renderer.load(base)[1].w_dim,) and np.isclose(np.linalg.norm(direction), 1)
    brighter = 0
    for seed in range(1000, 1010):
        plain = brightness(default_renderer, RenderRequest(seeds=seed))
        edited = brightness(default_renderer, RenderRequest(seeds=seed, w_offset=direction * 6.0))
        brighter += edited > plain
    assert brighter >= 9


def test_an_orthogonalised_learned_direction_is_orthogonal_to_the_others():
    rng = np.random.RandomState(0)
    positive, negative = rng.randn(8, 6) + [2, 1, 0, 0, 0, 0], rng.randn(8, 6) - [2, 1, 0, 0, 0, 0]
    plain = directions.fit_direction(positive, negative)
    other = np.eye(6)[0]
    conditioned = directions.fit_direction(positive, negative, [other])
    assert plain[0] > 0.5 and abs(conditioned @ other) < 1e-9 and np.isclose(np.linalg.norm(conditioned), 1)
    with pytest.raises(ValueError, match="nothing is left"):
        directions.fit_direction(positive, negative, list(np.eye(6)))
    with pytest.raises(ValueError, match="positive and one negative"):
        directions.fit_direction(positive, [])


def test_a_stylespace_edit_on_a_fine_layer_rerenders_from_that_layer(net_file):
    G = nudged_stylegan2(seed=5).set_reference(False)  # 64 px, on the fast path
    renderer = renderer_for(G, recent_frames_bytes=0)
    base = RenderRequest(pkl=net_file, seeds=3)
    first = renderer.render(base)
    (session,) = renderer.sessions.values()
    cache = session.block_cache
    assert first.reused_blocks == 0
    edit = RenderRequest(pkl=net_file, seeds=3, style_offsets=[("b64.conv1", 2, 3.0)])
    edited = renderer.render(edit)
    # b4-b32 come from the cache; of b64 only conv1 reruns (its conv0 output is kept): no whole block.
    assert cache.blocks_seen == 5 and cache.blocks_run == 0 and cache.layers_run == 1 and cache.images_run == 0
    assert np.abs(edited.image.astype(int) - first.image.astype(int)).max() > 0
    middle = renderer.render(RenderRequest(pkl=net_file, seeds=3, style_offsets=[("b16.conv0", 2, 3.0)]))
    assert middle.reused_blocks == 2 and cache.blocks_run == 3
    back = renderer.render(base)
    assert np.array_equal(back.image, first.image)
    uncached = Renderer("cpu", load=lambda path, device="cpu": G, recent_frames_bytes=0)
    uncached._block_cache_lock.acquire()  # as if another thread held the cache: a plain pass
    assert np.array_equal(uncached.render(edit).image, edited.image)


@pytest.mark.parametrize("fixture", ["sg1_64.pkl", "sg3_t_64.pkl"])
def test_stylespace_edits_on_v1_and_stylegan3_restart_at_the_edited_stage(fixtures_dir, fixture):
    renderer = Renderer(device="cpu", recent_frames_bytes=0)
    base = RenderRequest(pkl=str(fixtures_dir / fixture), seeds=2)
    first = renderer.render(base)
    _, G = renderer.load(base)
    last = style_space.style_layers(G.synthesis)[-1][0]
    edited = renderer.render(RenderRequest(pkl=base.pkl, seeds=2, style_offsets=[(last, 0, 4.0)]))
    assert edited.error is None and edited.reused_blocks > 0
    assert np.abs(edited.image.astype(int) - first.image.astype(int)).max() > 0
    assert np.array_equal(renderer.render(base).image, first.image)


def test_style_offsets_in_a_request_round_trip_and_bad_ones_say_why(default_renderer):
    request = RenderRequest(style_offsets=[("b8.conv0", 3, 1.5), ("b8.conv0", 3, 0.5), ("b4.conv1", 0, 0.0)])
    assert request.style_offsets == (("b8.conv0", 3, 2.0),)
    assert RenderRequest.from_json(request.to_json()) == request
    for bad, words in [([("b8.conv0", 3)], "expected"), ([("b8.conv0", 1, float("nan"))], "finite"),
                       ("b8.conv0", "list")]:
        with pytest.raises(ValueError, match=words):
            RenderRequest(style_offsets=bad)
    assert default_renderer.render(RenderRequest(style_offsets=[("b9.conv0", 1, 1.0)])).error.startswith(
        "style_offsets: no style layer named 'b9.conv0'")
    assert "outside 0-31" in default_renderer.render(RenderRequest(style_offsets=[("b8.conv0", 99, 1.0)])).error


def test_channel_search_statistics_and_examples(default_renderer):
    request = RenderRequest()
    channels = directions.style_channel_counts(default_renderer, request)
    assert directions.parse_channel("b16.conv0:5", channels) == ("b16.conv0", 5)
    assert directions.parse_channel(" 2 : 7 ", channels) == (list(channels)[2], 7)
    for bad in ["b16.conv0", "b99.conv0:1", "b16.conv0:999", "40:1"]:
        with pytest.raises(ValueError, match="style channel"):
            directions.parse_channel(bad, channels)
    stats = directions.style_statistics(default_renderer, request)
    assert directions.style_statistics(default_renderer, request) is stats  # computed once per network
    assert set(stats) == set(channels) and all(std.shape == (channels[n],) for n, (_, std) in stats.items())
    # Examples that share one channel's extreme value: that channel ranks first.
    _, G = default_renderer.load(request)
    seeds = list(range(200))
    ws = torch.cat([directions.seed_ws(default_renderer, request, s) for s in seeds])
    values = style_space.styles_of(G.synthesis, ws)["b32.conv0"][:, 7].numpy()
    top = [seeds[i] for i in np.argsort(values)[-5:]]
    ranked = directions.example_channels(default_renderer, request, top, top=5)
    assert ranked[0][:2] == ("b32.conv0", 7) and ranked[0][3] > 1.0


def test_cli_writes_sefa_and_learned_directions_and_renders_a_style_edit(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "run_app.py", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)

    sefa = run("directions", "--method", "sefa", "--layers", "coarse", "--num", "3", "--out", str(tmp_path / "d.npy"))
    assert sefa.returncode == 0, sefa.stderr
    array = np.load(tmp_path / "d.npy")
    assert array.shape[0] == 3 and array.ndim == 3 and np.abs(array[:, 4:]).max() == 0
    svm = run("directions", "--method", "svm", "--positive", "1,5,9", "--negative", "2,3,4",
              "--out", str(tmp_path / "b.npy"))
    assert svm.returncode == 0, svm.stderr
    assert np.load(tmp_path / "b.npy").ndim == 1
    frame = run("frame", "--seed", "3", "--style", "b64.conv0:3=8", "--style", "2:1=-5", "--out", str(tmp_path / "f.png"))
    assert frame.returncode == 0, frame.stderr
    from renderer import png_metadata

    request = png_metadata.read_png_metadata(tmp_path / "f.png").request()
    assert [item[:2] for item in request.style_offsets] == [("b64.conv0", 3), ("b8.conv1", 1)]
    bad = run("frame", "--seed", "3", "--style", "b64.conv0:3", "--out", str(tmp_path / "g.png"))
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "LAYER:CHANNEL=SIGMAS" in bad.stderr
    assert not (tmp_path / "g.png").exists()


def test_stylespace_statistics_equal_those_of_the_sampled_styles(default_renderer):
    request = RenderRequest()
    stats = directions.style_statistics(default_renderer, request)
    _, G = default_renderer.load(request)
    generator = torch.Generator().manual_seed(0)
    z = torch.randn([directions.STYLE_SAMPLES, G.z_dim], generator=generator)
    styles = style_space.styles_of(G.synthesis, G.mapping(z, None))
    for name, values in styles.items():
        np.testing.assert_allclose(stats[name][0], values.double().mean(dim=0).numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(stats[name][1], values.double().std(dim=0).numpy(), rtol=1e-4, atol=1e-5)


def test_style_channels_in_the_state_make_request_offsets_undo_and_load_from_a_session():
    from app.state import ExplorerState

    state = ExplorerState()
    state.set("style_channels", [("b16.conv1", 28, -8.0, 0.5)], coalesce=False)
    state.set("style_channels", [("b16.conv1", 28, -8.0, 0.5), ("b64.conv0", 31, 2.0, 1.5)], coalesce=False)
    request = state.to_request()
    assert request.style_offsets == (("b16.conv1", 28, -4.0), ("b64.conv0", 31, 3.0))
    state.undo()
    assert state.to_request().style_offsets == (("b16.conv1", 28, -4.0),)
    loaded = ExplorerState()
    loaded.load_request(RenderRequest.from_json(request.to_json()))
    assert loaded.to_request().style_offsets == request.style_offsets
    loaded.set("pkl", "other.pkl")  # another network: its channels are not these
    assert loaded["style_channels"] == ()


def test_the_windows_sweep_video_and_grid_of_one_style_channel(tmp_path, default_renderer):
    from renderer import png_metadata
    from renderer.exporter import direction_grid_work, direction_sweep_work

    request = RenderRequest(style_offsets=[("b64.conv0", 31, 8.0)])
    video = direction_sweep_work(request, tmp_path / "sweep.gif", 4, 10, 8)
    video(default_renderer, None, None)
    assert (tmp_path / "sweep.gif").stat().st_size > 0
    grid = direction_grid_work(request, "0,1", 3, tmp_path / "grid.png")
    grid(default_renderer, None, None)
    picture = png_metadata.read_png_image(tmp_path / "grid.png")
    assert picture.shape == (128, 192, 3)
    plain = default_renderer.render(RenderRequest(seeds=1)).image
    np.testing.assert_array_equal(picture[64:, 64:128], plain)  # the middle column: no edit
    assert np.abs(picture[64:, :64].astype(int) - plain.astype(int)).max() > 0
    with pytest.raises(ValueError, match="a direction or a StyleSpace channel"):
        direction_grid_work(RenderRequest(), "0", 3, tmp_path / "none.png")
