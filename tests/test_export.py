"""Exports: atomic writes, PNG metadata, grids and videos made through the real renderer."""

import dataclasses
import errno
import hashlib
import json
import threading
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from renderer import export_jobs, grids, latent_files, png_metadata, sequences
from renderer.export_jobs import ExportCancelled, ExportError, atomic_output
from renderer.request import RenderRequest

ROOT = Path(__file__).resolve().parent.parent


def leftovers(folder):
    """Everything in a folder (partial files are hidden dot-files, so list them all)."""
    return sorted(p.name for p in Path(folder).iterdir())


# ---------------------------------------------------------------- atomic writing


def test_atomic_output_renames_at_the_end(tmp_path):
    target = tmp_path / "out.bin"
    with atomic_output(target) as temp_name:
        Path(temp_name).write_bytes(b"abc")
        assert Path(temp_name).parent == tmp_path  # same folder, so the rename is atomic
        assert not target.exists()
    assert target.read_bytes() == b"abc"
    assert leftovers(tmp_path) == ["out.bin"]
    assert target.stat().st_mode & 0o644 == 0o644  # not the temp file's private 0600


def test_atomic_output_keeps_the_old_file_when_a_write_fails(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as temp_name:
            Path(temp_name).write_bytes(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == ["out.bin"]


def test_simulated_full_disk_leaves_nothing_and_says_so(tmp_path):
    target = tmp_path / "out.mp4"
    with pytest.raises(ExportError, match="disk is full"):
        with atomic_output(target) as temp_name:
            Path(temp_name).write_bytes(b"x" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")
    assert leftovers(tmp_path) == []


def test_real_full_disk_leaves_nothing_and_says_so(tiny_tmpfs):
    frame = np.random.RandomState(0).randint(0, 256, (256, 256, 3), dtype=np.uint8)  # ~200 KB as PNG
    with pytest.raises(ExportError, match="disk is full") as caught:
        png_metadata.save_png(frame, RenderRequest(), tiny_tmpfs / "big.png")
    assert "\n" not in str(caught.value)
    assert leftovers(tiny_tmpfs) == []


def test_real_full_disk_during_a_video_leaves_nothing(tiny_tmpfs):
    rng = np.random.RandomState(1)
    frames = [rng.randint(0, 256, (128, 128, 3), dtype=np.uint8) for _ in range(30)]
    with pytest.raises(ExportError, match="disk is full"):
        sequences.write_video(frames, tiny_tmpfs / "v.mp4", fps=30, quality=10)
    assert leftovers(tiny_tmpfs) == []


class LatentStub:
    """Just what export_frame asks of a renderer when the picture is given: ws and z_dim."""

    def __init__(self, ws_floats):
        import torch

        self.ws = torch.ones(1, 1, ws_floats)

    def compute_ws(self, request):
        return self.ws

    def load(self, request):
        return None, type("G", (), {"z_dim": 8})()


def test_frame_with_latents_on_a_full_disk_leaves_none_of_the_set(tiny_tmpfs):
    out = tiny_tmpfs / "x.png"
    picture = np.zeros((8, 8, 3), np.uint8)
    # The PNG and the z fit; the 128 KiB w does not: nothing of the set may stay.
    with pytest.raises(ExportError, match="disk is full") as err:
        png_metadata.export_frame(LatentStub(32 * 1024), RenderRequest(seeds=3), out, save_latents=True, image=picture)
    assert "x_w.npy" in str(err.value)
    assert leftovers(tiny_tmpfs) == []
    # A set that fits is written whole.
    written = png_metadata.export_frame(LatentStub(16), RenderRequest(seeds=3), out, save_latents=True, image=picture)
    assert sorted(p.name for p in written) == sorted(p.name for p in tiny_tmpfs.iterdir()) == ["x.png", "x_w.npy", "x_z.npy"]


def test_failed_latent_write_keeps_the_older_set_untouched(tmp_path, monkeypatch):
    out = tmp_path / "x.png"
    for name in ("x.png", "x_w.npy", "x_z.npy"):
        (tmp_path / name).write_bytes(b"older " + name.encode())
    real_write = latent_files.write_npy_file

    def fail_on_z(array, filename):
        if np.asarray(array).shape == (1, 8):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(array, filename)

    monkeypatch.setattr(png_metadata, "write_npy_file", fail_on_z)  # export_frame's own reference
    with pytest.raises(ExportError, match="x_z.npy: the disk is full"):
        png_metadata.export_frame(LatentStub(16), RenderRequest(seeds=3), out, save_latents=True,
                                  image=np.zeros((8, 8, 3), np.uint8))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == {
        name: b"older " + name.encode() for name in ("x.png", "x_w.npy", "x_z.npy")}


def test_unwritable_folder_gives_one_clear_line(read_only_folder):
    with pytest.raises(ExportError, match="read-only|permission denied") as caught:
        png_metadata.save_png(np.zeros((8, 8, 3), np.uint8), RenderRequest(), read_only_folder / "x.png")
    assert "\n" not in str(caught.value)
    assert export_jobs.writable_or_error(read_only_folder / "x.png") is not None


def test_file_where_a_folder_is_expected(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("I am a file")
    with pytest.raises(ExportError, match="is not a folder"):
        png_metadata.save_png(np.zeros((8, 8, 3), np.uint8), RenderRequest(), blocker / "x.png")
    with pytest.raises(ExportError, match="does not exist"):
        png_metadata.save_png(np.zeros((8, 8, 3), np.uint8), RenderRequest(), tmp_path / "missing" / "x.png")
    assert export_jobs.writable_or_error(tmp_path / "fine.png") is None
    assert leftovers(tmp_path) == ["not_a_folder"]


# ---------------------------------------------------------------- PNG metadata, helpers


def test_png_carries_request_and_model(tmp_path):
    model = tmp_path / "net.pkl"
    model.write_bytes(b"weights")
    request = RenderRequest(pkl=str(model), seeds=7, truncation_psi=0.7, mix_seed=3, mix_layers=(0, 1, 2, 3))
    image = np.random.RandomState(2).randint(0, 256, (16, 24, 3), dtype=np.uint8)
    png_metadata.save_png(image, request, tmp_path / "f.png", model_path=model)
    meta = png_metadata.read_png_metadata(tmp_path / "f.png")
    assert meta.request() == request
    assert meta.model_name == "net.pkl"
    assert meta.model_sha256 == hashlib.sha256(b"weights").hexdigest()
    np.testing.assert_array_equal(png_metadata.read_png_image(tmp_path / "f.png"), image)


def test_png_without_metadata_is_refused(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "plain.png")
    with pytest.raises(ExportError, match="no StyleScope request"):
        png_metadata.read_png_metadata(tmp_path / "plain.png")


def test_tile_and_cut_grid():
    cells = [np.full((4, 5, 3), i * 10, np.uint8) for i in range(6)]
    grid = grids.tile_images(cells, 2, 3, padding=1)
    assert grid.shape == (9, 17, 3)
    for index, cell in enumerate(cells):
        row, col = divmod(index, 3)
        np.testing.assert_array_equal(grids.grid_cell(grid, row, col, 4, 5, padding=1), cell)
    with pytest.raises(ValueError, match="do not fit"):
        grids.tile_images(cells, 1, 3)


def test_parsers():
    assert grids.parse_seeds("0, 1,5-7") == [0, 1, 5, 6, 7]
    assert grids.parse_grid_shape("2x3") == (2, 3)
    with pytest.raises(ValueError):
        grids.parse_grid_shape("2by3")


@pytest.mark.parametrize("text,words", [
    ("0-100000000000", "outside 0-4294967295"),
    ("5-4294967296", "outside"),
    ("0-20000", "more than 10000 seeds"),
    ("0-9999,10000", "more than 10000 seeds"),
    ("7-3", "empty"),
    ("-1", "not a seed"),
    ("a-b", "not a seed"),
])
def test_parse_seeds_refuses_huge_negative_and_empty_ranges_at_once(text, words):
    with pytest.raises(ValueError, match=words):
        grids.parse_seeds(text)
    assert grids.parse_seeds("4294967290-4294967295")[-1] == 2**32 - 1
    assert len(grids.parse_seeds("0-9999")) == 10000


def test_negative_padding_is_refused_before_rendering(tmp_path, capsys):
    with pytest.raises(ValueError, match="padding"):
        grids.tile_images([np.zeros((2, 2, 3), np.uint8)] * 2, 1, 2, padding=-5)
    with pytest.raises(ValueError, match="padding"):
        grids.export_grid(None, [RenderRequest()], 1, 1, tmp_path / "g.png", RenderRequest(), "seeds", padding=-5)
    assert run_cli("grid", "--seeds", "0-1", "--padding", "-5", "--out", tmp_path / "g.png") == 1
    err = capsys.readouterr().err
    assert "padding" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_cli_grid_with_a_huge_seed_range_is_one_line(tmp_path, capsys):
    assert run_cli("grid", "--seeds", "0-100000000000", "--out", tmp_path / "g.png") == 1
    err = capsys.readouterr().err
    assert "outside 0-4294967295" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- through the real renderer


@pytest.fixture(scope="module")
def net(fixtures_dir):
    """The 64 px StyleGAN2-ADA fixture and one Renderer for the module (loads once)."""
    pytest.importorskip("models.loader")
    from renderer.renderer import Renderer

    return str(fixtures_dir / "sg2ada_64.pkl"), Renderer("cpu")


def run_cli(*argv):
    import run_app

    return run_app.main([str(a) for a in argv])


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_cli_video_has_the_frames_size_and_starts_on_the_first_keyframe(net, tmp_path):
    from renderer.video import read_video

    pkl, _ = net
    assert run_cli("frame", "--pkl", pkl, "--seed", 5, "--device", "cpu", "--out", tmp_path / "key.png") == 0
    assert run_cli("video", "--pkl", pkl, "--device", "cpu", "--seeds", "5,9", "--frames-per-transition", 2,
                   "--fps", 24, "--interp", "slerp-z", "--out", tmp_path / "v.mp4") == 0
    decoded = read_video(tmp_path / "v.mp4")
    assert len(decoded) == 3  # (2 keyframes - 1) * 2 + the closing keyframe
    assert decoded[0].shape == (64, 64, 3)
    key = png_metadata.read_png_image(tmp_path / "key.png")
    assert psnr(decoded[0], key) >= 35
    assert leftovers(tmp_path) == ["key.png", "v.mp4"]
    # GIF too (a 256-colour palette, so a looser bound).
    assert run_cli("video", "--pkl", pkl, "--device", "cpu", "--seeds", "5", "--out", tmp_path / "v.gif") == 0
    from_gif = read_video(tmp_path / "v.gif")
    assert len(from_gif) == 1 and psnr(from_gif[0], key) >= 20


def test_w_interpolation_starts_exactly_on_the_keyframe(net):
    pkl, renderer = net
    base = RenderRequest(pkl=pkl, device="cpu", truncation_psi=0.7, mix_seed=3, mix_layers=(8, 9))
    keys = [sequences.keyframe_request(base, s) for s in (4, 8)]
    expected = export_jobs.render_image(renderer, keys[0])
    for method in ("lerp-w", "cubic-w"):
        first = next(iter(sequences.interpolation_requests(renderer, base, keys, 4, method)))
        assert first.w is not None and first.mix_layers == ()  # the mix is baked into the keyframe's ws
        np.testing.assert_array_equal(export_jobs.render_image(renderer, first), expected)


def test_looped_video_returns_smoothly_to_its_start(net, tmp_path):
    from renderer.video import read_video

    pkl, renderer = net
    base = RenderRequest(pkl=pkl, device="cpu")
    keys = [sequences.keyframe_request(base, s) for s in (1, 2)]
    requests = sequences.interpolation_requests(renderer, base, keys, 3, "cubic-w", loop=True)
    sequences.export_video(renderer, [requests], tmp_path / "loop.mp4", fps=30, quality=9)
    frames = [f.astype(np.float64) for f in read_video(tmp_path / "loop.mp4")]
    assert len(frames) == 6
    steps = [np.abs(frames[i + 1] - frames[i]).mean() for i in range(len(frames) - 1)]
    closing = np.abs(frames[0] - frames[-1]).mean()
    # Played on repeat, last -> first is one more ordinary step, not a cut back to the start.
    assert closing <= 1.5 * max(steps)
    assert closing < np.abs(frames[0] - frames[len(frames) // 2]).mean()


def test_cancel_leaves_no_file(net, tmp_path):
    pkl, renderer = net
    base = RenderRequest(pkl=pkl, device="cpu")
    requests = grids.seed_grid_requests(base, range(20))
    out = tmp_path / "cancelled.mp4"
    seen = []

    def work(progress, cancel):
        def progress_then_cancel(done, total):
            progress(done, total)
            seen.append(done)
            cancel.set()  # the user presses Cancel after the first frame

        return sequences.export_video(renderer, [requests], out, total=20, progress=progress_then_cancel, cancel=cancel)

    job = export_jobs.ExportJob("video", work).start()
    assert job.wait(timeout=120)
    assert job.cancelled and job.error is None and seen == [1]
    assert leftovers(tmp_path) == []
    with pytest.raises(ExportCancelled):
        stop = threading.Event()
        stop.set()
        sequences.write_video([np.zeros((8, 8, 3), np.uint8)], tmp_path / "x.gif", cancel=stop)
    assert leftovers(tmp_path) == []


def test_export_in_background_leaves_interactive_rendering_live(net, tmp_path):
    from renderer.renderer import Renderer
    from renderer.worker import RenderWorker

    pkl, renderer = net
    base = RenderRequest(pkl=pkl, device="cpu")
    long_video = grids.seed_grid_requests(base, range(200))
    job = export_jobs.ExportJob(
        "long video",
        lambda progress, cancel: sequences.export_video(Renderer("cpu"), [long_video], tmp_path / "long.mp4",
                                                        total=200, progress=progress, cancel=cancel),
    ).start()
    worker = RenderWorker(renderer, num_threads=0)
    try:
        worker.submit(RenderRequest(pkl=pkl, device="cpu", seeds=77))
        assert worker.wait_idle(timeout=120)
        shown = worker.latest()
        assert shown is not None and shown.image is not None
        assert not job.finished  # the interactive frame arrived while the export was still going
    finally:
        worker.close()
        job.cancel()
        job.wait(timeout=120)
    assert job.cancelled
    assert leftovers(tmp_path) == []


def test_png_round_trip_through_from_png_is_exact(net, tmp_path):
    pkl, _ = net
    original = tmp_path / "made.png"
    assert run_cli("frame", "--pkl", pkl, "--device", "cpu", "--seed", 11, "--psi", 0.6, "--mix-seed", 2,
                   "--mix-layers", "middle", "--noise-mode", "random", "--noise-seed", 99, "--out", original) == 0
    rebuilt = tmp_path / "again.png"
    assert run_cli("frame", "--from-png", original, "--pkl", pkl, "--out", rebuilt) == 0
    np.testing.assert_array_equal(png_metadata.read_png_image(rebuilt), png_metadata.read_png_image(original))
    meta = png_metadata.read_png_metadata(original)
    assert meta.request() == png_metadata.read_png_metadata(rebuilt).request()
    assert meta.request().noise_seed == 99 and meta.request().mix_layers == (4, 5, 6, 7)
    assert meta.model_name == "sg2ada_64.pkl"
    assert meta.model_sha256 == png_metadata.file_sha256(pkl)


def test_style_mixing_grid_cells_equal_single_frames(net, tmp_path):
    pkl, renderer = net
    out = tmp_path / "mix.png"
    assert run_cli("grid", "--pkl", pkl, "--device", "cpu", "--rows", "0,1", "--cols", "2", "--mix", "coarse",
                   "--out", out) == 0
    grid = png_metadata.read_png_image(out)
    assert grid.shape == (3 * 64, 2 * 64, 3)
    assert np.all(grids.grid_cell(grid, 0, 0, 64, 64) == 255)  # the paper's blank corner
    # Row 1: seed 0 with seed 2's coarse styles, against a single render of that mix.
    single = RenderRequest(pkl=pkl, device="cpu", seeds=0, mix_seed=2, mix_layers=(0, 1, 2, 3))
    np.testing.assert_array_equal(grids.grid_cell(grid, 1, 1, 64, 64), export_jobs.render_image(renderer, single))
    plain = export_jobs.render_image(renderer, RenderRequest(pkl=pkl, device="cpu", seeds=2))
    np.testing.assert_array_equal(grids.grid_cell(grid, 0, 1, 64, 64), plain)  # the column's own picture
    # Row 2 against the `frame` command itself.
    assert run_cli("frame", "--pkl", pkl, "--device", "cpu", "--seed", 1, "--mix-seed", 2, "--mix-layers", "coarse",
                   "--out", tmp_path / "cell.png") == 0
    cell = png_metadata.read_png_image(tmp_path / "cell.png")
    np.testing.assert_array_equal(grids.grid_cell(grid, 2, 1, 64, 64), cell)
    assert not np.array_equal(grids.grid_cell(grid, 2, 1, 64, 64), grids.grid_cell(grid, 2, 0, 64, 64))
    layout = json.loads(Image.open(out).text["stylescope.grid"])
    assert layout["rows"] == 3 and layout["kind"] == "style-mix coarse" and len(layout["cells"]) == 5


def test_keyframes_from_latents_sessions_and_pngs(net, tmp_path):
    pkl, renderer = net
    base = RenderRequest(pkl=pkl, device="cpu", truncation_psi=0.8)
    seeded = sequences.keyframe_request(base, "6")
    written = png_metadata.export_frame(renderer, seeded, tmp_path / "k.png", save_latents=True)
    assert [p.name for p in written] == ["k.png", "k_w.npy", "k_z.npy"]
    from_png = sequences.keyframe_request(base, tmp_path / "k.png")
    assert from_png == seeded
    (tmp_path / "session.json").write_text(seeded.to_json())
    assert sequences.keyframe_request(base, tmp_path / "session.json") == seeded
    from_w = sequences.keyframe_request(base, tmp_path / "k_w.npy")
    from_z = sequences.keyframe_request(base, tmp_path / "k_z.npy")
    image = png_metadata.read_png_image(tmp_path / "k.png")
    np.testing.assert_array_equal(export_jobs.render_image(renderer, from_w), image)  # w has psi baked in
    np.testing.assert_array_equal(export_jobs.render_image(renderer, from_z), image)
    with pytest.raises(ExportError, match="no such file"):
        sequences.keyframe_request(base, tmp_path / "missing.npy")


def test_sweeps_and_grid_video_layout(net):
    pkl, renderer = net
    base = RenderRequest(pkl=pkl, device="cpu", truncation_psi=0.5, mix_seed=4, mix_layers="0-1")
    psi = sequences.sweep_requests(renderer, base, "psi", 5)
    assert [r.truncation_psi for r in psi] == [-0.5, 0.0, 0.5, 1.0, 1.5]
    layers = sequences.sweep_requests(renderer, base, "mix_layers", 3, width=2)
    assert [r.mix_layers for r in layers] == [(0, 1), (4, 5), (8, 9)]  # 10 ws, window of 2
    looped = sequences.sweep_requests(renderer, base, "mix_strength", 4, loop=True)
    assert [r.mix_strength for r in looped] == [0.0, 0.5, 1.0, 0.5]
    noise = sequences.sweep_requests(renderer, base, "noise_seed", 3)
    assert [(r.noise_mode, r.noise_seed) for r in noise] == [("random", 0), ("random", 1), ("random", 2)]
    with pytest.raises(ExportError, match="mixing source"):
        sequences.sweep_requests(renderer, RenderRequest(pkl=pkl), "mix_strength", 3)
    edited = dataclasses.replace(base, w_offset=[0.5] * renderer.compute_ws(base).shape[-1])
    direction = sequences.sweep_requests(renderer, edited, "direction", 3)  # the edit's opposite, none, the edit
    assert [r.w_offset[0][0] for r in direction] == [-0.5, 0.0, 0.5]
    ws = [renderer.compute_ws(r) for r in direction]
    torch.testing.assert_close(ws[1], renderer.compute_ws(base))
    torch.testing.assert_close(ws[2] - ws[1], ws[1] - ws[0])
    with pytest.raises(ExportError, match="w_offset"):
        sequences.sweep_requests(renderer, base, "direction", 3)
    assert sequences.grid_cell_keyframes([0, 1, 2, 3], 2) == [[0, 1], [2, 3]]
    assert sequences.grid_cell_keyframes([0, 1, 2], 2) == [[0, 1, 2], [3, 4, 5]]
    frames = list(sequences.video_frames(renderer, [psi[:1], psi[1:2]], cols=2))
    assert frames[0].shape == (64, 128, 3)
    np.testing.assert_array_equal(frames[0][:, 64:], export_jobs.render_image(renderer, psi[1]))


def test_gui_panel_exports_in_the_background_and_cancels(net, tmp_path):
    """The export panel's actions without a window: jobs on their own thread, files where asked."""
    dpg = pytest.importorskip("dearpygui.dearpygui")
    from app.panels.export import ExportPanel
    from renderer.video import read_video

    pkl, _ = net
    current = RenderRequest(pkl=pkl, device="cpu", seeds=3, truncation_psi=0.7)

    class FakeState:
        def to_request(self):
            return current

    class FakeContext:  # the part of PanelContext the export panel uses
        state = FakeState()
        engine = None
        picture = types.SimpleNamespace(last_frame=None)
        text_inputs = []
        messages = []

        def set_status(self, text, error=False):
            self.messages.append((text, error))

        def note(self, event, **data):
            pass

    settings = dict(folder=str(tmp_path), latents=True, keys="3,4", interp="lerp-w", easing="cosine", per=2, fps=10,
                    loop=False, grid="1x1", format="gif", quality=8, sweep="psi", sweep_frames=2,
                    grid_seeds="0-1", grid_shape="1x2", mix_rows="0", mix_cols="1", mix_group="coarse")
    dpg.create_context()
    try:
        panel = ExportPanel(FakeContext())
        job = panel.start_video(settings)
        assert panel.start_seed_grid(settings) is None  # one export at a time
        assert job.wait(timeout=120) and job.error is None
        frames = read_video(job.result)
        assert len(frames) == 3 and frames[0].shape == (64, 64, 3)

        job = panel.save_frame(settings)
        assert job.wait(timeout=120) and job.error is None
        assert sorted(p.suffix for p in job.result) == [".npy", ".npy", ".png"]
        assert png_metadata.read_png_metadata(job.result[0]).request() == current

        job = panel.start_video(dict(settings, keys="0-40", format="mp4"))
        panel.cancel()
        assert job.wait(timeout=120) and job.cancelled
        assert not any(name.endswith(".mp4") or ".partial" in name for name in leftovers(tmp_path))
    finally:
        dpg.destroy_context()


def test_feature_map_video_shows_the_layer(net, tmp_path):
    from renderer.video import read_video

    pkl, renderer = net
    assert run_cli("video", "--pkl", pkl, "--device", "cpu", "--seeds", "0,1", "--frames-per-transition", 1,
                   "--layer", "b16.conv1", "--normalize", "minmax", "--interp", "lerp-w", "--quality", 10,
                   "--out", tmp_path / "features.mp4") == 0
    frames = read_video(tmp_path / "features.mp4")
    layer_view = RenderRequest(pkl=pkl, device="cpu", seeds=1, layer="b16.conv1", normalize="minmax")
    expected = export_jobs.render_image(renderer, layer_view)
    assert len(frames) == 2 and frames[1].shape == expected.shape == (16, 16, 3)
    assert psnr(frames[1], expected) >= 35


def test_bad_mix_layers_fail_before_the_first_cell_or_frame(net, tmp_path, capsys, monkeypatch):
    pkl, renderer = net

    def no_rendering(*args, **kwargs):
        raise AssertionError("rendered before checking mix_layers")

    monkeypatch.setattr(grids, "render_image", no_rendering)
    monkeypatch.setattr(sequences, "render_image", no_rendering)
    cells = grids.seed_grid_requests(RenderRequest(pkl=pkl, device="cpu", mix_seed=9, mix_layers="99-100"), [0, 1])
    with pytest.raises(ValueError, match="mix_layers: 99 is outside 0-9"):
        grids.render_grid(renderer, cells, 1, 2)
    for argv in (["grid", "--seeds", "0-3"], ["video", "--seeds", "0,1", "--frames-per-transition", "2"]):
        code = run_cli(*argv, "--pkl", pkl, "--mix-seed", "9", "--mix-layers", "99-100", "--out",
                       tmp_path / ("x.png" if argv[0] == "grid" else "x.mp4"))
        err = capsys.readouterr().err
        assert code == 1 and "99" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_mix_strength_sweep_without_layers_mixes_every_w(net):
    pkl, renderer = net
    base = RenderRequest(pkl=pkl, device="cpu", mix_seed=4)
    requests = sequences.sweep_requests(renderer, base, "mix_strength", 2)
    assert requests[-1].mix_layers == tuple(range(10))
    mixed = export_jobs.render_image(renderer, requests[-1])
    plain = export_jobs.render_image(renderer, RenderRequest(pkl=pkl, device="cpu", seeds=4))
    np.testing.assert_array_equal(mixed, plain)


def test_exports_refuse_names_that_are_not_png(tmp_path):
    with pytest.raises(ExportError, match=r"x\.jpg: pictures are exported as PNG"):
        png_metadata.save_png(np.zeros((4, 4, 3), np.uint8), RenderRequest(), tmp_path / "x.jpg")
    with pytest.raises(ExportError, match="use a .png name"):
        png_metadata.export_frame(None, RenderRequest(), tmp_path / "x.jpeg")
    assert png_metadata.save_png(np.zeros((4, 4, 3), np.uint8), RenderRequest(), tmp_path / "x.PNG").is_file()
