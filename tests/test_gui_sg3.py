"""The real window on NVIDIA's StyleGAN3 fixture under Xvfb: a transform drag shows reduced previews,
then the exact frame; a change of the last layer's w comes from the block cache without a preview."""

import time

import numpy as np
import pytest

from gui_driver import VirtualScreen, laid_out_app, missing_tools
from test_gui import (assert_screen_shows, centre, headless_render, image_on_screen, screen_pos, settled_frame,
                      shown_image, toggle_panels)

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"needs {', '.join(missing_tools())} (scripts/system_deps.sh)")


@pytest.fixture(scope="module")
def sg3_app(fixtures_dir, tmp_path_factory):
    screen = VirtualScreen()
    # A slow device, simulated as in test_gui: full frames take 0.3 s more, previews do not.
    try:
        with laid_out_app(screen, tmp_path_factory.mktemp("gui_sg3"), pkl=fixtures_dir / "sg3_t_64.pkl",
                          extra_env={"STYLESCOPE_TEST_FULL_FRAME_DELAY": "0.3"}) as app:
            yield app
    finally:
        screen.close()


def test_dragging_the_translation_shows_previews_then_the_exact_frame(sg3_app, tmp_path):
    app = sg3_app
    # On a slow device the app has a first preview made in the background after the network's
    # first frame (it prepares what later previews reuse), once.
    prepared = app.wait_for(lambda events: [e for e in events if e["event"] == "prepare_for_drags"] or None, 30,
                            "the background preview")
    assert len(prepared) == 1 and prepared[0]["pkl"].endswith("sg3_t_64.pkl")
    # The panel list is longer than the window: fold the Latent panel, as a person would, so
    # that the transform sliders come into view.
    toggle_panels(app, "header_LatentPanel")
    x0, y0, x1, y1 = screen_pos(app.rects(), "translate_x")
    count = len(app.frames())
    y = (y0 + y1) / 2
    app.screen.drag(x0 + (x1 - x0) * 0.5, y, x0 + (x1 - x0) * 0.7, y, steps=25, pause=0.08)
    time.sleep(0.5)
    last, values = settled_frame(app)
    assert values["translate_x"] > 0.05, "the drag moved the translation"
    assert last["request"]["transform_translate"][0] == pytest.approx(values["translate_x"])
    assert not last["preview"], "the full frame follows the previews"
    previews = [f for f in app.frames()[count:] if f["preview"]]
    assert previews, "no preview frames while the slider moved"
    assert previews[0]["shape"] == last["shape"], "a preview fills the same texture (upscaled)"
    np.testing.assert_array_equal(shown_image(last), headless_render(last["request"], tmp_path))
    on_screen, _ = image_on_screen(app, tmp_path, "translated")
    assert_screen_shows(on_screen, shown_image(last))


def test_mixing_the_last_layer_comes_from_the_cache_without_a_preview(sg3_app, tmp_path):
    app = sg3_app
    count = len(app.frames())
    rects = app.rects()
    last_box = max((name for name in rects["rects"] if name.startswith("mix_box_")),
                   key=lambda name: int(name.rsplit("_", 1)[1]))
    index = last_box.rsplit("_", 1)[1]
    clicked = time.time()
    app.screen.click(*centre(screen_pos(rects, last_box)))  # the last w (the ToRGB's) from the mix seed
    # The state as logged after the click has been applied (rects logged before it would say the old one).
    values = app.wait_for(lambda _: (lambda r: r["values"] if r and list(r["values"]["mix_layers"]) == [int(index)] else None)(
        app.rects(after_time=clicked)), 30, "the box to be ticked")
    if not values["mix_enabled"]:
        app.screen.click(*centre(screen_pos(rects, "mix_enabled")))
    frame = app.wait_for_frame(count, lambda f: f["request"]["mix_layers"] == [int(index)], full=False)
    assert not frame["preview"], "re-running the last layer is itself the quick frame"
    assert frame["reused"] >= 10, "the layers before the last one came from the cache"
    np.testing.assert_array_equal(shown_image(frame), headless_render(frame["request"], tmp_path))


def test_noise_controls_are_greyed_out_without_noise_inputs(sg3_app, tmp_path):
    # StyleGAN3 has no noise inputs: the noise mode, seed and strength would change nothing.
    rects = sg3_app.rects()
    assert {"noise_mode", "noise_seed", "noise_strength"} <= set(rects["disabled"])
    assert "truncation_psi" not in rects["disabled"]
    sg3_app.screen.screenshot(tmp_path / "sg3_window.png")
