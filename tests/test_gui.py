"""The real explorer window under Xvfb, driven with xdotool: frames on screen, range drag, broken files, random input."""

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gui_driver import ROOT, AppUnderTest, VirtualScreen, crop, downsample, laid_out_app, missing_tools

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"needs {', '.join(missing_tools())} (scripts/system_deps.sh)")
FUZZ_SECONDS = float(os.environ.get("STYLESCOPE_GUI_FUZZ_SECONDS", "60"))


@pytest.fixture(scope="module")
def app(screen, fixtures_dir, tmp_path_factory):
    """One window for the whole module (starting torch and a network costs seconds on this machine)."""
    workdir = tmp_path_factory.mktemp("gui")
    # A slow device, simulated: full frames take 0.3 s more and previews 0.25 s (a 1024 px
    # network's on this CPU), so that this tiny network shows previews as a big one does, and a
    # drag sends requests faster than previews come.
    slow = {"STYLESCOPE_TEST_FULL_FRAME_DELAY": "0.3", "STYLESCOPE_TEST_PREVIEW_DELAY": "0.25"}
    with laid_out_app(screen, workdir, pkl=fixtures_dir / "sg2ada_64.pkl", extra_env=slow) as app:
        yield app


def screen_pos(rects_event, name):
    """An item's rect on the screen: dearpygui rects are relative to the viewport."""
    vx, vy = rects_event.get("viewport_pos", [0, 0])
    x0, y0, x1, y1 = rects_event["rects"][name]
    return [x0 + vx, y0 + vy, x1 + vx, y1 + vy]


def centre(rect):
    return (rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2


def shown_image(frame_event):
    return np.asarray(Image.open(frame_event["shown_copy"]).convert("RGB"))


def image_on_screen(app, tmp_path, name):
    """Screenshot, cropped to the image widget, once the window has drawn the latest frame."""
    time.sleep(0.6)
    shot = app.screen.screenshot(tmp_path / f"{name}.png")
    rects = app.wait_for_rects(after_time=app.frames()[-1]["time"])
    return crop(shot, screen_pos(rects, "image")), shot


def settled_frame(app, after=0):
    """The last frame once no frame came for 1.5 s, with the widget values logged after it; with
    `after`, only once the frames logged after the first `after` ones include one (a drag's)."""
    def settled(events):
        frames = [e for e in events if e["event"] == "frame"]
        if len(frames) <= after or time.time() - frames[-1]["time"] < 1.5:
            return None
        states = [e for e in events if e["event"] == "rects" and e["time"] > frames[-1]["time"]]
        return (frames[-1], states[-1]["values"]) if states else None
    return app.wait_for(settled, 60, "the frames to settle")


def type_into(app, name, text):
    """Replace a text field's contents like a person: click it, select all, type, Enter."""
    app.screen.click(*centre(screen_pos(app.rects(), name)))
    app.screen.key("ctrl+a")
    app.screen.type(text)
    app.screen.key("Return")
    time.sleep(0.3)


def toggle_panels(app, *headers):
    """Fold or unfold panels (or tree nodes) like a person, each click waiting until the window has
    laid out the new state, so that the next click finds the controls where they now are."""
    for header in headers:
        rects = app.rects()
        was_open = rects["opened"][header]
        app.screen.click(*centre(screen_pos(rects, header)))
        app.wait_for(lambda _: (lambda r: r if r and r["opened"].get(header) is (not was_open) else None)(app.rects()),
                     30, f"{header} to {'fold' if was_open else 'open'}")


def headless_render(request, workdir):
    """The same request rendered without a window: `run_app.py frame` when it exists, else the Renderer."""
    request_path = Path(workdir) / "request.json"
    request_path.write_text(json.dumps(request))
    out = Path(workdir) / "headless.png"
    if (ROOT / "run_app.py").exists():
        chosen = ["--pkl", request["pkl"]] if request.get("pkl") else []  # a request file's network is not opened unasked
        result = subprocess.run([sys.executable, str(ROOT / "run_app.py"), "frame", "--request", str(request_path),
                                 *chosen, "--out", str(out)], capture_output=True, text=True, timeout=180, cwd=ROOT)
        if result.returncode == 0 and out.exists():
            return np.asarray(Image.open(out).convert("RGB"))
        pytest.fail(f"run_app.py frame failed ({result.returncode}): {result.stdout[-500:]} {result.stderr[-1500:]}")
    from renderer.renderer import Renderer
    from renderer.request import RenderRequest

    frame = Renderer("cpu").render(RenderRequest.from_dict(request))
    assert frame.error is None, frame.error
    return frame.image


def assert_screen_shows(on_screen, image, tolerance=6.0):
    """The widget is the frame at an integer zoom (nearest sampling): block averages agree."""
    assert on_screen.shape[0] >= image.shape[0] and on_screen.shape[0] % image.shape[0] <= 2, on_screen.shape
    small = downsample(on_screen, image.shape[0])
    error = np.abs(small - image.astype(np.float32)).mean()
    assert error < tolerance, f"screen differs from the frame by {error:.1f} levels on average"


def test_window_opens_and_shows_the_frame(app, tmp_path):
    frame = app.frames()[0]
    assert frame["request"]["pkl"].endswith("sg2ada_64.pkl")
    on_screen, shot = image_on_screen(app, tmp_path, "first")
    assert on_screen.shape[0] >= 256, "a 64 px frame is shown zoomed in"
    assert on_screen.std() > 20, "the image area is blank"
    assert_screen_shows(on_screen, shown_image(app.frames()[-1]))
    # The panels column is drawn too (not only the picture).
    rects = app.rects()
    for item in ("net_path", "seed", "mix_range", "truncation_psi", "status"):
        assert item in rects["rects"], f"{item} is not on screen"
    assert not {"noise_mode", "noise_strength"} & set(rects["disabled"]), "StyleGAN2 has noise inputs"


def test_keyboard_steps_seed_and_undo_redo(app):
    count = len(app.frames())
    app.screen.click(*centre(screen_pos(app.rects(), "image")))  # focus the window, not a text field
    app.screen.key("Right")
    frame = app.wait_for_frame(count, lambda f: f["request"]["seeds"] == [[1, 1.0]])
    app.screen.key("ctrl+z")
    app.wait_for_frame(count + 1, lambda f: f["request"]["seeds"] == [[0, 1.0]])
    app.screen.key("ctrl+y")
    app.wait_for_frame(count + 2, lambda f: f["request"]["seeds"] == [[1, 1.0]])
    app.screen.key("Left")
    app.wait_for_frame(count + 3, lambda f: f["request"]["seeds"] == [[0, 1.0]])
    assert frame["request"]["mix_layers"] == []


def test_dragging_the_layer_range_changes_the_image_like_headless(app, tmp_path):
    before, _ = image_on_screen(app, tmp_path, "before_mix")
    rects = app.rects()
    slots = rects["geometry"]["mix_range_slots"]
    vx, vy = rects.get("viewport_pos", [0, 0])
    num_ws = len(slots)
    start, end = num_ws // 2, num_ws - 1
    count = len(app.frames())
    app.screen.drag(slots[start][0] + vx, slots[start][1] + vy, slots[end][0] + vx, slots[end][1] + vy)
    want = list(range(start, end + 1))
    frame = app.wait_for_frame(count, lambda f: f["request"]["mix_layers"] == want)
    assert frame["request"]["mix_seed"] is not None
    after, _ = image_on_screen(app, tmp_path, "after_mix")
    assert np.abs(after.astype(float) - before.astype(float)).mean() > 2, "the picture did not change"
    reference = headless_render(frame["request"], tmp_path)
    np.testing.assert_array_equal(shown_image(frame), reference)  # the texture holds exactly the headless frame
    assert_screen_shows(after, reference)


def test_dragging_a_slider_shows_previews_then_the_full_frame(app):
    rects = app.rects()
    x0, y0, x1, y1 = screen_pos(rects, "truncation_psi")
    count = len(app.frames())
    y = (y0 + y1) / 2
    app.screen.drag(x0 + (x1 - x0) * 0.5, y, x0 + (x1 - x0) * 0.15, y, steps=25, pause=0.08)
    drag_ended = time.time()
    time.sleep(0.5)
    last, values = settled_frame(app)
    assert values["truncation_psi"] < 0.5, "the drag moved psi down"
    assert last["request"]["truncation_psi"] == values["truncation_psi"], "the last frame is of the final value"
    assert not last["preview"], "the full frame follows the previews"
    previews = [f for f in app.frames()[count:] if f["preview"]]
    # The mouse moves every 80 ms, a preview takes 0.25 s: each must still reach the screen, so
    # the picture follows the hand during the 2 s drag (not only once it stops).
    during = [f for f in previews if f["time"] < drag_ended]
    assert len(during) >= 2, f"{len(during)} previews on screen while the slider moved"
    psis = [f["request"]["truncation_psi"] for f in during]
    assert psis == sorted(psis, reverse=True) and len(set(psis)) == len(psis), "each preview of a newer value"
    assert previews[0]["shape"] == last["shape"], "a preview fills the same texture (upscaled)"
    count = len(app.frames())
    app.screen.key("ctrl+z")  # the whole drag is one undo step
    app.wait_for_frame(count, lambda f: f["request"]["truncation_psi"] == 1.0, timeout=60)


def test_picking_a_layer_shows_its_feature_maps_like_headless(app, tmp_path):
    output = shown_image(app.frames()[-1])
    # Room for the Layers panel's controls: fold three panels, as a person would.
    toggle_panels(app, "header_LatentPanel", "header_MixingPanel", "header_TruncationPanel", "header_LayersPanel")
    rects = app.wait_for_item("layer_list")
    x0, y0, x1, y1 = screen_pos(rects, "layer_list")
    row = (y1 - y0) / 8  # the list shows eight rows: the output image, then the layers in order
    count = len(app.frames())
    app.screen.click((x0 + x1) / 2, y0 + 5.5 * row)  # an 8 px layer
    frame = app.wait_for_frame(count, lambda f: f["request"]["layer"] is not None)
    assert frame["request"]["layer"].startswith("b8.conv"), frame["request"]["layer"]
    assert frame["recalled"], frame  # the shown image's pass left b8.conv1's output in the block cache
    reference = headless_render(frame["request"], tmp_path)
    np.testing.assert_array_equal(shown_image(frame), reference)  # the feature maps, as `frame --layer` makes them
    after, shot = image_on_screen(app, tmp_path, "layer")
    Image.fromarray(shot).save(tmp_path / "layer_view_window.png")
    assert_screen_shows(after, reference)
    assert reference.shape != output.shape or np.abs(reference.astype(float) - output).mean() > 2, \
        "the feature maps look like the output image"
    # Another view of the same layer (its power spectrum, then back): the capture is kept, no pass runs.
    for fft in (True, False):
        count = len(app.frames())
        app.screen.click(*centre(screen_pos(app.wait_for_item("fft"), "fft")))
        view = app.wait_for_frame(count, lambda f, fft=fft: f["request"]["fft"] is fft)
        assert view["recalled"] and view["request"]["layer"] == frame["request"]["layer"]
        np.testing.assert_array_equal(shown_image(view), headless_render(view["request"], tmp_path))
    # Back to the output image, panel closed: as the other tests expect the window. The image was
    # made before: it comes back from the recent frames.
    count = len(app.frames())
    app.screen.click((x0 + x1) / 2, y0 + 0.5 * row)
    back = app.wait_for_frame(count, lambda f: f["request"]["layer"] is None)
    assert back["recalled"] and np.array_equal(shown_image(back), output)
    toggle_panels(app, "header_LayersPanel", "header_LatentPanel", "header_MixingPanel", "header_TruncationPanel")


def test_blending_a_second_seed_and_animating_through_seed_space(app, tmp_path):
    app.screen.click(*centre(screen_pos(app.rects(), "image")))  # focus the window, not a text field
    app.screen.key("Home")  # from the defaults, whatever earlier tests left
    app.wait_for_frame(len(app.frames()) - 1, lambda f: f["request"]["seeds"] == [[0, 1.0]] and not f["preview"])
    count = len(app.frames())
    app.screen.click(*centre(screen_pos(app.rects(), "blend_add")))
    frame = app.wait_for_frame(count, lambda f: len(f["request"]["seeds"]) == 2 and not f["preview"])
    assert frame["request"]["seeds"] == [[0, 1.0], [1, 0.5]]  # the next seed at half weight, added
    np.testing.assert_array_equal(shown_image(frame), headless_render(frame["request"], tmp_path))
    app.screen.click(*centre(screen_pos(app.rects(), "image")))
    app.screen.key("Home")  # one seed again
    single = app.wait_for_frame(len(app.frames()) - 1,
                                lambda f: f["request"]["seeds"] == [[0, 1.0]] and not f["preview"])
    # The blend row is gone, so the checkbox moved up: its place as laid out after that frame.
    rects = app.wait_for_rects(after_time=single["time"])
    # Animate: the seed position moves on by itself, frames keep coming; unticked, it stops.
    count = len(app.frames())
    app.screen.click(*centre(screen_pos(rects, "animate")))
    moving = app.wait_for(lambda _: (lambda fs: fs if len({f["request"]["seed_xy"][0] for f in fs
                                                            if f["request"]["seed_xy"]}) >= 3 else None)(
        app.frames()[count:]), 30, "three frames of the animation")
    xs = [f["request"]["seed_xy"][0] for f in moving if f["request"]["seed_xy"]]
    assert xs == sorted(xs) and xs[-1] > xs[0], xs
    app.screen.click(*centre(screen_pos(app.rects(), "animate")))
    last, values = settled_frame(app)
    assert not values["animate"] and not last["preview"], "the full frame follows once it stops"
    assert last["request"]["seed_xy"][0] == pytest.approx(values["seed_x"])
    app.screen.click(*centre(screen_pos(app.rects(), "image")))
    app.screen.key("Home")
    app.wait_for_frame(len(app.frames()) - 1, lambda f: f["request"]["seeds"] == [[0, 1.0]] and not f["preview"])


def test_noise_mode_buttons_render_like_headless(app, tmp_path):
    x0, y0, x1, y1 = screen_pos(app.rects(), "noise_mode")
    y = (y0 + y1) / 2
    # The three radio buttons side by side: const, random, none (their circles at the left of each).
    shown = {}
    for mode, at in (("random", 0.40), ("none", 0.80), ("const", 0.03)):
        count = len(app.frames())
        app.screen.click(x0 + (x1 - x0) * at, y)
        frame = app.wait_for_frame(count, lambda f, mode=mode: f["request"]["noise_mode"] == mode and not f["preview"])
        shown[mode] = shown_image(frame)
        np.testing.assert_array_equal(shown[mode], headless_render(frame["request"], tmp_path))
        # Back to const: the frame shown before the clicks comes back from the recent frames, not a new pass.
        # (All noise off may come back too: the panel's noise-use measurement rendered it.)
        if mode != "none":
            assert frame["recalled"] == (mode == "const"), (mode, frame["recalled"])
    assert not np.array_equal(shown["none"], shown["const"]) and not np.array_equal(shown["random"], shown["const"])


def test_dragging_a_fine_layers_noise_strength_re_renders_from_the_cache_like_headless(app, tmp_path):
    toggle_panels(app, "header_LatentPanel", "header_MixingPanel", "noise_layers_node")  # room for the sliders
    slider = "noise_layer_b64.conv1"  # the last noisy layer of this 64 px network
    rects = app.wait_for_item(slider)
    x0, y0, x1, y1 = screen_pos(rects, slider)
    count = len(app.frames())
    y = (y0 + y1) / 2
    # The hand over the slider: the renderer, idle, prepares the layer for a drag (its convolution
    # before noise), so that the first step skips it like the later ones (tests/test_speed_paths.py).
    app.screen.move(x0 + (x1 - x0) * 0.25, y)
    app.wait_for(lambda events: [e for e in events if e["event"] == "prepare_noise_drag"
                                 and e["layer"] == "b64.conv1"], 30, "the drag prepared on hover")
    app.screen.drag(x0 + (x1 - x0) * 0.25, y, x0 + (x1 - x0) * 0.9, y, steps=10, pause=0.08)
    last, values = settled_frame(app)
    strengths = dict(values["noise_layer_strength"])
    assert strengths.get("b64.conv1", 1.0) > 2.5, strengths
    assert dict(last["request"]["noise_layer_strength"]) == strengths and not last["preview"]
    assert last["reused"] > 0, "only the last block re-rendered: the others came from the block cache"
    np.testing.assert_array_equal(shown_image(last), headless_render(last["request"], tmp_path))
    assert len(app.frames()) > count
    app.screen.click(*centre(screen_pos(app.rects(), "image")))
    app.screen.key("Home")  # back to the defaults for the tests that follow
    app.wait_for_frame(len(app.frames()) - 1, lambda f: not f["request"]["noise_layer_strength"] and not f["preview"])
    toggle_panels(app, "noise_layers_node", "header_LatentPanel", "header_MixingPanel")


def test_a_w_from_a_file_a_direction_between_seeds_and_a_frozen_w_render_like_headless(app, tmp_path):
    import torch

    from renderer.renderer import Renderer
    from renderer.request import RenderRequest

    app.screen.click(*centre(screen_pos(app.rects(), "image")))
    app.screen.key("Home")
    home = app.wait_for_frame(len(app.frames()) - 1, lambda f: f["request"]["seeds"] == [[0, 1.0]]
                              and f["request"]["w"] is None and not f["preview"])
    pkl = home["request"]["pkl"]
    headless = Renderer(device="cpu")

    def seed_ws(seed, psi):
        with torch.no_grad():
            return headless.compute_ws(RenderRequest(pkl=pkl, seeds=seed, truncation_psi=psi))[0].numpy()

    seven = seed_ws(7, 0.6)
    np.save(tmp_path / "seven_w.npy", seven[None])  # [1, num_ws, w_dim], as a projector writes it
    # The Latent panel folded, so that the Vectors and Truncation panels fit on the screen together.
    toggle_panels(app, "header_LatentPanel", "header_VectorsPanel")
    app.wait_for_item("latent_path")
    count = len(app.frames())
    type_into(app, "latent_path", str(tmp_path / "seven_w.npy"))  # Enter loads it
    loaded = app.wait_for_frame(count, lambda f: f["request"]["w"] is not None)
    np.testing.assert_allclose(np.asarray(loaded["request"]["w"]), seven, rtol=0, atol=1e-6)
    # The image is seed 7's at psi 0.6, exactly: the w went through the file unchanged.
    seven_request = RenderRequest(pkl=pkl, seeds=7, truncation_psi=0.6).to_dict()
    np.testing.assert_array_equal(shown_image(loaded), headless_render(seven_request, tmp_path))

    # A direction from seed 0's w to seed 3's, dragged to some strength: added to every w.
    rects = app.wait_for_rects(after_time=loaded["time"])  # the controls as laid out with the vector in use
    assert {"truncation_psi", "cutoff_on"} <= set(rects["disabled"]), "a w is used as it is: psi greyed out"
    type_into(app, "direction_from", "0")
    type_into(app, "direction_to", "3")
    app.screen.click(*centre(screen_pos(app.rects(), "direction_add_seeds")))
    x0, y0, x1, y1 = screen_pos(app.wait_for_item("direction_0"), "direction_0")
    y = (y0 + y1) / 2
    app.screen.drag(x0 + (x1 - x0) * 0.5, y, x0 + (x1 - x0) * 0.8, y, steps=10, pause=0.05)
    last, values = settled_frame(app)
    strength = values["directions"][0][1]
    assert strength > 0.3 and values["latent"][0] == "w", values["directions"][0][:3]
    expected = strength * (seed_ws(3, 1.0) - seed_ws(0, 1.0))
    np.testing.assert_allclose(np.asarray(last["request"]["w_offset"]), expected, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(shown_image(last), headless_render(last["request"], tmp_path))
    moved, shot = image_on_screen(app, tmp_path, "vectors")
    assert np.abs(moved.astype(float) - crop_like(shown_image(loaded), moved)).mean() > 1, "the direction moved it"
    # A network file that fails to open loses nothing: the vector and the direction stay.
    broken = tmp_path / "broken.pkl"
    broken.write_bytes(b"\x80\x04not a pickle")
    errors = len(app.events("error"))
    type_into(app, "net_path", str(broken))
    error = app.wait_for(lambda ev: [e for e in ev if e["event"] == "error"][errors:], 60, "an error")[0]
    back = app.wait_for_frame(len(app.frames()), lambda f: f["time"] > error["time"], full=False)
    assert back["request"]["pkl"] == pkl and back["request"]["w"] == last["request"]["w"]
    assert back["request"]["w_offset"] == last["request"]["w_offset"]

    # A seed key goes back to the seeds; the direction stays. Freezing that image's w changes no pixel.
    app.screen.click(*centre(screen_pos(app.rects(), "image")))
    app.screen.key("Right")
    stepped = app.wait_for_frame(len(app.frames()), lambda f: f["request"]["w"] is None
                                 and f["request"]["seeds"] == [[1, 1.0]] and f["request"]["w_offset"] is not None)
    rects = app.wait_for_rects(after_time=stepped["time"])
    assert "truncation_psi" not in rects["disabled"], "back on the seeds, psi applies again"
    count = len(app.frames())
    app.screen.click(*centre(screen_pos(rects, "latent_freeze")))
    frozen = app.wait_for_frame(count, lambda f: f["request"]["w"] is not None, full=False)
    assert frozen["request"]["w_offset"] == stepped["request"]["w_offset"]
    np.testing.assert_array_equal(shown_image(frozen), shown_image(stepped))
    # The network's first principal direction of W (GANSpace), dragged: another image, as headless.
    app.screen.click(*centre(screen_pos(app.wait_for_rects(after_time=frozen["time"]), "direction_add_pca")))
    x0, y0, x1, y1 = screen_pos(app.wait_for_item("direction_1"), "direction_1")
    count = len(app.frames())
    app.screen.drag(x0 + (x1 - x0) * 0.4, (y0 + y1) / 2, x0 + (x1 - x0) * 0.2, (y0 + y1) / 2, steps=6, pause=0.05)
    last, values = settled_frame(app, after=count)  # (strength 0 made no frame: the last one is older)
    assert values["directions"][1][0] == "PC0 all" and values["directions"][1][1] < 0, values["directions"][1][:3]
    np.testing.assert_array_equal(shown_image(last), headless_render(last["request"], tmp_path))
    assert [e["message"] for e in app.events("error") if e["time"] > home["time"]] == [error["message"]]
    # A direction from a file (an InterFaceGAN-style boundary, [1, w_dim]), and a file that is not there.
    np.save(tmp_path / "boundary.npy", np.ones((1, seven.shape[-1])))
    type_into(app, "direction_path", str(tmp_path / "boundary.npy"))  # Enter adds it
    app.wait_for_item("direction_2")
    errors = len(app.events("error"))
    type_into(app, "direction_path", str(tmp_path / "missing.npy"))
    missing = app.wait_for(lambda ev: [e for e in ev if e["event"] == "error"][errors:], 30, "an error")[0]
    assert "direction not added" in missing["message"] and "missing.npy" in missing["message"]
    count = len(app.frames())
    app.screen.click(*centre(screen_pos(app.wait_for_rects(after_time=last["time"]), "latent_clear")))
    seeds_again = app.wait_for_frame(count, lambda f: f["request"]["w"] is None, full=False)
    assert seeds_again["request"]["seeds"] == [[1, 1.0]] and seeds_again["request"]["w_offset"] is not None
    app.screen.click(*centre(screen_pos(app.rects(), "image")))
    app.screen.key("Home")  # seeds again, no directions, for the tests that follow
    app.wait_for_frame(len(app.frames()) - 1, lambda f: f["request"]["w"] is None and not f["request"]["w_offset"]
                       and f["request"]["seeds"] == [[0, 1.0]] and not f["preview"])
    toggle_panels(app, "header_VectorsPanel", "header_LatentPanel")


def crop_like(image, like):
    """`image` resized to the on-screen crop's size, for a rough comparison."""
    return np.asarray(Image.fromarray(image).resize((like.shape[1], like.shape[0]), Image.NEAREST)).astype(float)


def test_broken_file_shows_error_and_keeps_the_image(app, tmp_path):
    broken = tmp_path / "broken_network.pkl"
    broken.write_bytes(b"\x80\x04this is not a pickle at all" + bytes(range(256)))
    before, _ = image_on_screen(app, tmp_path, "before_broken")
    good_pkl = app.frames()[-1]["request"]["pkl"]
    errors = len(app.events("error"))
    type_into(app, "net_path", str(broken))
    error = app.wait_for(lambda ev: [e for e in ev if e["event"] == "error"][errors:], 60, "an error")[0]
    assert "broken_network.pkl" in error["message"]
    after, _ = image_on_screen(app, tmp_path, "after_broken")
    np.testing.assert_allclose(after.astype(float), before.astype(float), atol=3)  # the old picture stays
    status = [e for e in app.events("status") if e["error"]][-1]
    assert status["text"] == error["message"], "the error is in the status line"
    # The current model stays: the state goes back to it, and its frame is rendered again.
    app.wait_for(lambda ev: [e for e in ev if e["event"] == "frame" and e["time"] > error["time"]
                             and e["request"]["pkl"] == good_pkl], 60, "the old model's frame")
    assert app.alive()


def test_random_input_for_a_minute_keeps_the_window_alive(app, tmp_path):
    rng = random.Random(1234)
    vw, vh = app.rects()["viewport"]
    keys = ["Left", "Right", "Up", "Down", "Home", "ctrl+z", "ctrl+y", "F1", "ctrl+s", "Escape", "Return", "3",
            "Tab", "space", "ctrl+o"]
    deadline = time.monotonic() + FUZZ_SECONDS
    actions = 0
    while time.monotonic() < deadline:
        x, y = rng.uniform(5, vw - 5), rng.uniform(5, vh - 5)
        kind = rng.random()
        if kind < 0.45:
            app.screen.click(x, y, button=rng.choice([1, 1, 1, 3]))
        elif kind < 0.75:
            app.screen.drag(x, y, x + rng.uniform(-250, 250), y + rng.uniform(-120, 120), steps=5, pause=0.02)
        else:
            app.screen.key(rng.choice(keys))
        actions += 1
        assert app.alive(), f"the app died after {actions} actions:\n{app.output()[-3000:]}"
    time.sleep(1)
    assert app.alive()
    exceptions = app.events("exception")
    assert not exceptions, exceptions[0]["traceback"]
    assert "Traceback" not in app.output(), app.output()[-3000:]
    assert actions > FUZZ_SECONDS * 2, f"only {actions} actions in {FUZZ_SECONDS}s"


def test_closing_the_window_exits_cleanly(app):
    code = app.close_window()
    assert code == 0, app.output()[-3000:]
    assert app.events("closing"), "the app did not run its shutdown"
    assert "terminate called" not in app.output()


def test_a_big_networks_first_frame_comes_as_a_preview_first(tmp_path):
    # Before a network's first frame the window knows neither its size nor its cost: a 256 px
    # one shows an eighth-size preview first, then its full frame (slowed here as on a CPU).
    import torch

    from models.loader import save_safetensors
    from models.stylegan2 import Generator

    torch.manual_seed(5)
    G = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=256, img_channels=3,
                  synthesis_kwargs=dict(channel_base=256, channel_max=16)).eval()
    path = tmp_path / "big.safetensors"
    save_safetensors(G, path)
    screen = VirtualScreen()
    app = AppUnderTest(screen, tmp_path, pkl=path, extra_env={"STYLESCOPE_TEST_FULL_FRAME_DELAY": "1.0"})
    try:
        app.wait_for(lambda ev: [e for e in ev if e["event"] == "frame" and not e["preview"]], 120, "the full frame")
        first, *rest = app.frames()
        assert first["preview"] and first["shape"] == [256, 256, 3], "a preview, upscaled to the image's size"
        assert not rest[-1]["preview"] and rest[-1]["request"] == first["request"]
    finally:
        app.kill()
        screen.close()


def test_without_a_display_one_line_and_nonzero_exit(fixtures_dir):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, str(ROOT / "run_app.py")] if (ROOT / "run_app.py").exists() else \
        [sys.executable, "-m", "app.main"]
    result = subprocess.run(command + ["--pkl", str(fixtures_dir / "sg2ada_64.pkl")], env=env, capture_output=True,
                            text=True, timeout=120, cwd=ROOT)
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "display" in lines[0].lower(), lines
