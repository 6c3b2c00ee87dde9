"""Point dragging (renderer/drag.py, models/stages.py): the mouth drag, partial passes, every family."""

import dataclasses
import time

import numpy as np
import pytest
import torch

from models import load_generator, stages
from renderer.drag import DragSession, DragSettings, sample
from renderer.display import image_to_uint8
from renderer.renderer import Renderer
from renderer.request import RenderRequest

MOUTH = (33, 40)  # seed 0, psi 0.7 of the default model: the middle of the mouth
MOUTH_TARGET = (27, 40)  # 6 px sideways


def ncc_find(before, after, center, half=(5, 3), search=10):
    """(correlation, (x, y)): where the patch of `before` around `center` matches `after` best by
    normalised cross-correlation of grey values, searching +-search pixels. Independent of the
    drag's own feature tracking."""
    grey_before = before.astype(np.float64).mean(axis=2)
    grey_after = after.astype(np.float64).mean(axis=2)
    cx, cy = center
    hx, hy = half
    patch = grey_before[cy - hy:cy + hy + 1, cx - hx:cx + hx + 1]
    patch = patch - patch.mean()
    best = (-2.0, None)
    for y in range(cy - search, cy + search + 1):
        for x in range(cx - search, cx + search + 1):
            if y - hy < 0 or x - hx < 0 or y + hy >= grey_after.shape[0] or x + hx >= grey_after.shape[1]:
                continue
            window = grey_after[y - hy:y + hy + 1, x - hx:x + hx + 1]
            window = window - window.mean()
            correlation = (patch * window).sum() / np.sqrt((patch ** 2).sum() * (window ** 2).sum() + 1e-12)
            if correlation > best[0]:
                best = (correlation, (x, y))
    return best


@pytest.fixture(scope="module")
def default_model():
    renderer = Renderer()
    request = RenderRequest(seeds=0, truncation_psi=0.7)
    _, G = renderer.load(request)
    return renderer, request, G


def _drag(G, ws, handles, targets, **kwargs):
    session = DragSession(G, ws, handles, targets, **kwargs)
    while not session.step():
        pass
    return session


def test_ncc_tracker_finds_a_shifted_patch():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (64, 64, 3)).astype(np.uint8)
    shifted = np.roll(image, (2, -3), axis=(0, 1))
    assert ncc_find(image, shifted, MOUTH)[1] == (MOUTH[0] - 3, MOUTH[1] + 2)


def test_mouth_drag_moves_the_mouth_to_the_target(default_model, tmp_path):
    renderer, request, G = default_model
    before = renderer.render(request).image
    session = _drag(G, renderer.compute_ws(request), [MOUTH], [MOUTH_TARGET])
    assert session.stage == 3  # the 64 px model: b32, the deepest block at most half the image
    after = image_to_uint8(session.image())[0].numpy()
    correlation, found = ncc_find(before, after, MOUTH)
    assert abs(found[0] - MOUTH_TARGET[0]) <= 2 and abs(found[1] - MOUTH_TARGET[1]) <= 2, (found, correlation)
    assert correlation > 0.6  # still a mouth, not a smear
    # The face is still a face: the picture away from the mouth changes little.
    assert np.abs(after[:20].astype(int) - before[:20].astype(int)).mean() < 12
    assert session.distances().max() <= session.settings.stop_distance
    # The rendered ws give the same picture as the drag's own frame (the fast path, within rounding).
    again = renderer.render(RenderRequest(w=session.ws[0].tolist())).image
    assert np.abs(again.astype(int) - after.astype(int)).max() <= 1
    from PIL import Image

    Image.fromarray(before).resize((256, 256), Image.NEAREST).save(tmp_path / "before.png")
    Image.fromarray(after).resize((256, 256), Image.NEAREST).save(tmp_path / "after.png")


def test_only_the_first_ws_move_and_later_blocks_never_run_in_a_step(default_model):
    renderer, request, G = default_model
    ws = renderer.compute_ws(request)
    session = DragSession(G, ws, [MOUTH], [MOUTH_TARGET], settings=DragSettings(optimised_ws=4))
    later = [getattr(G.synthesis, f"b{res}") for res in G.synthesis.block_resolutions[session.stage + 1:]]
    calls = []
    hooks = [block.register_forward_hook(lambda *_: calls.append(1)) for block in later]
    try:
        for _ in range(3):
            session.step()
    finally:
        for hook in hooks:
            hook.remove()
    assert later and not calls
    assert not torch.equal(session.ws[:, :4], ws[:, :4])
    assert torch.equal(session.ws[:, 4:], ws[:, 4:])
    image = session.image()  # the later blocks run for a shown frame
    assert image.shape == (1, 3, 64, 64)


def test_budget_stops_the_drag_and_several_pairs_are_tracked(default_model):
    renderer, request, G = default_model
    session = _drag(G, renderer.compute_ws(request), [(20, 30), (44, 30)], [(20, 20), (44, 20)],
                    settings=DragSettings(steps=5))
    assert session.steps_done == 5 and session.done
    assert session.handles.shape == (2, 2)


def test_mask_keeps_the_unmasked_region(default_model):
    renderer, request, G = default_model
    ws = renderer.compute_ws(request)
    before = renderer.render(request).image.astype(int)
    mask = np.zeros((64, 64), np.float32)
    mask[28:52, 16:48] = 1
    free = _drag(G, ws, [MOUTH], [MOUTH_TARGET])
    kept = _drag(G, ws, [MOUTH], [MOUTH_TARGET], mask=mask)
    assert kept.distances().max() <= kept.settings.stop_distance  # the mouth still gets there
    outside = mask == 0

    def change(session):
        return np.abs(image_to_uint8(session.image())[0].numpy().astype(int) - before)[outside].mean()

    assert change(kept) < 0.7 * change(free)


@pytest.mark.parametrize("handles, targets, message", [
    ([(70, 3)], [(3, 3)], "outside"),
    ([(float("nan"), 3)], [(3, 3)], "finite"),
    ([(3, 3), (4, 4)], [(3, 3)], "one target per handle"),
])
def test_bad_points_are_one_clear_error(default_model, handles, targets, message):
    renderer, request, G = default_model
    with pytest.raises(ValueError, match=message):
        DragSession(G, renderer.compute_ws(request), handles, targets)


def test_sample_reads_the_bilinearly_resized_map():
    features = torch.randn(1, 4, 8, 8)
    resized = torch.nn.functional.interpolate(features, size=(32, 32), mode="bilinear", align_corners=False)
    points = torch.tensor([[5.0, 7.0], [20.0, 13.0], [31.0, 0.0]])
    expected = torch.stack([resized[0, :, int(y), int(x)] for x, y in points.tolist()], dim=1)
    torch.testing.assert_close(sample(features, points, 32), expected)


@pytest.mark.parametrize("name, key", [("sg2ada_64.pkl", "img_seed0_psi0p7_const"),
                                       ("tf_sg2_64.pkl", "img_seed0_psi0p7_const")])
def test_stylegan2_partial_passes_give_the_reference_image(fixtures_dir, name, key):
    G = load_generator(fixtures_dir / name)
    ref = np.load(fixtures_dir / name.replace(".pkl", "_ref.npz"))
    ws = torch.from_numpy(ref["ws_seed0_psi0p7"])
    count = len(stages.stage_resolutions(G.synthesis))
    carry = stages.run_stages(G.synthesis, ws, 0, 3)
    _, img = stages.run_stages(G.synthesis, ws, 3, count, carry=carry)
    np.testing.assert_allclose(img.numpy(), ref[key], atol=2e-3)
    session = _drag(G, ws, [(30, 30)], [(34, 30)], settings=DragSettings(steps=3))
    assert session.steps_done == 3 and not torch.equal(session.ws, ws)


def test_stylegan1_drags_and_its_pixels_are_unchanged(fixtures_dir):
    G = load_generator(fixtures_dir / "sg1_64.pkl")
    ref = np.load(fixtures_dir / "sg1_64_ref.npz")
    ws = G.mapping(torch.from_numpy(ref["z"]), None, truncation_psi=0.7, truncation_cutoff=8)
    full = G.synthesis(ws, noise_mode="const")
    np.testing.assert_allclose(full.numpy(), ref["images_psi07"], atol=2e-3)
    carry = stages.run_stages(G.synthesis, ws, 0, 2)
    _, img = stages.run_stages(G.synthesis, ws, 2, len(G.synthesis.block_resolutions), carry=carry)
    torch.testing.assert_close(img, full)
    session = _drag(G, ws[:1], [(30, 30)], [(34, 30)], settings=DragSettings(steps=3))
    assert session.steps_done == 3 and not torch.equal(session.ws, ws[:1])


@pytest.mark.parametrize("name", ["sg3_t_64.pkl", "rosi_32.pt"])
def test_stylegan3_and_rosinality_files_drag(fixtures_dir, name):
    G = load_generator(fixtures_dir / name)
    ws = G.mapping(torch.randn(1, G.z_dim), None)
    size = G.img_resolution
    session = _drag(G, ws, [(size // 2, size // 2)], [(size // 2 + 4, size // 2)], settings=DragSettings(steps=2))
    assert session.steps_done == 2 and not torch.equal(session.ws, ws)
    assert session.image().shape == (1, 3, size, size)


def test_drag_command_writes_a_w_that_frame_rerenders_exactly(tmp_path, capsys):
    import run_app
    from PIL import Image

    out, out_w, video = tmp_path / "result.png", tmp_path / "result.npz", tmp_path / "drag.mp4"
    code = run_app.main(["drag", "--seed", "0", "--psi", "0.7", "--handle", "33,40", "--target", "27,40",
                         "--handle", "20,20", "--target", "20,20", "--steps", "12", "--out", str(out),
                         "--out-w", str(out_w), "--video", str(video)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "handle 0: ended at" in printed and "(target 20,20)" in printed
    w = np.load(out_w)["w"]
    assert w.shape == (1, 10, 128) and w.dtype == np.float32
    again = tmp_path / "again.png"
    assert run_app.main(["frame", "--w", str(out_w), "--noise-mode", "const", "--out", str(again)]) == 0
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(again)))
    from renderer.video import read_video

    frames = read_video(video)
    assert len(frames) >= 2 and not np.array_equal(frames[0], frames[-1])


@pytest.mark.parametrize("extra, message", [
    (["--handle", "3,3", "--target", "4,4", "--target", "5,5"], "one --target per --handle"),
    (["--handle", "3", "--target", "4,4"], "X,Y"),
    (["--handle", "300,3", "--target", "4,4"], "outside"),
    (["--handle", "3,3", "--target", "4,4", "--mask", "missing.png"], "--mask"),
    (["--handle", "3,3", "--target", "4,4", "--mask", "{inputs}/corrupt.png"], "not a readable image"),
    (["--handle", "3,3", "--target", "4,4", "--mask", "{inputs}/small.png"], "is 8x8; the image is 64x64"),
    (["--handle", "nan,3", "--target", "4,4"], "finite"),
])
def test_drag_command_bad_input_is_one_line(tmp_path, capsys, extra, message):
    import run_app
    from PIL import Image

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2)
    Image.new("L", (8, 8), 255).save(inputs / "small.png")
    out = tmp_path / "out"
    out.mkdir()
    code = run_app.main(["drag", "--seed", "0", "--steps", "1", "--out", str(out / "r.png"),
                         "--out-w", str(out / "r.npz"), *[arg.format(inputs=inputs) for arg in extra]])
    error = capsys.readouterr().err
    assert code == 1 and message in error and len(error.strip().splitlines()) == 1, error
    assert not list(out.iterdir())  # nothing half-written


def test_the_worker_runs_a_drag_job_posting_frames_and_stops_on_request(tmp_path):
    from renderer.drag import drag_job
    from renderer.video import read_video
    from renderer.worker import RenderWorker

    request = RenderRequest(seeds=0, truncation_psi=0.7)
    with RenderWorker(Renderer(), num_threads=1) as worker:
        video = tmp_path / "drag.mp4"
        job = worker.start_job(drag_job(request, [MOUTH], [MOUTH_TARGET], video_path=str(video)))
        assert job.wait(300) and job.error is None, job.error
        assert job.posts >= 2 and job.result["reached"]
        image, handles, steps = job.latest()
        assert image.shape == (64, 64, 3) and steps == job.result["steps"] and handles == job.result["handles"]
        assert job.result["ws"].shape == (10, 128)
        assert len(read_video(video)) == job.posts

        endless = worker.start_job(drag_job(request, [MOUTH], [(5, 5)], settings=DragSettings(steps=100000)))
        while endless.posts < 2:
            time.sleep(0.05)
        endless.stop()
        assert endless.wait(60) and endless.error is None
        assert 0 < endless.result["steps"] < 100000 and not endless.result["reached"]
        failing = worker.start_job(drag_job(dataclasses.replace(request, layer="b16.conv1"), [MOUTH], [MOUTH_TARGET]))
        assert failing.wait(60) and "show the image" in failing.error


def test_a_drag_result_is_an_ordinary_latent_for_undo_sessions_and_pngs(default_model, tmp_path):
    from app.sessions import load_session, session_json
    from app.state import ExplorerState
    from renderer import png_metadata
    from renderer.drag import drag_job

    renderer, request, _ = default_model
    state = ExplorerState()
    state.set("truncation_psi", 0.7, coalesce=False)
    before = state.to_request()

    class Job:  # what RenderWorker.start_job hands the function
        posts = 0

        def post(self, _value):
            self.posts += 1

        def stopped(self):
            return False

    result = drag_job(before, [MOUTH], [MOUTH_TARGET], settings=DragSettings(steps=8))(renderer, Job())
    rows = tuple(tuple(float(v) for v in row) for row in result["ws"])
    # What the Drag panel does with the result: one edit, so one undo step.
    state.update({"latent": ("w", "drag", rows), "directions": (), "mix_enabled": False}, coalesce=False)
    dragged = state.to_request()
    image = renderer.render(dragged).image
    assert not np.array_equal(image, renderer.render(before).image)
    again = ExplorerState()
    load_session(again, json_roundtrip(session_json(state)))
    assert renderer.render(again.to_request()).image.tobytes() == image.tobytes()
    png = tmp_path / "dragged.png"
    png_metadata.export_frame(renderer, dragged, png, image=image)
    png_metadata.rebuild_from_png(renderer, png, tmp_path / "rebuilt.png")
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(tmp_path / "rebuilt.png")), image)
    assert state.undo() and state.to_request() == before


def json_roundtrip(data):
    import json

    return json.loads(json.dumps(data))
