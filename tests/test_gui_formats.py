"""The real window on a rosinality training checkpoint under Xvfb: it opens, shows the frame `run_app.py frame`
writes, and a change of the last w re-renders from the block cache."""

import time

import numpy as np
import pytest

from gui_driver import VirtualScreen, laid_out_app, missing_tools
from test_gui import assert_screen_shows, centre, headless_render, image_on_screen, screen_pos, settled_frame, shown_image

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"needs {', '.join(missing_tools())} (scripts/system_deps.sh)")


@pytest.fixture(scope="module")
def rosi_app(fixtures_dir, tmp_path_factory):
    screen = VirtualScreen()
    try:
        with laid_out_app(screen, tmp_path_factory.mktemp("gui_formats"), pkl=fixtures_dir / "rosi_32.pt") as app:
            yield app
    finally:
        screen.close()


def test_a_rosinality_checkpoint_opens_and_mixing_its_last_w_uses_the_block_cache(rosi_app, tmp_path):
    app = rosi_app
    last, _ = settled_frame(app)
    assert last["request"]["pkl"].endswith("rosi_32.pt") and last["shape"][:2] == [32, 32]
    np.testing.assert_array_equal(shown_image(last), headless_render(last["request"], tmp_path))
    on_screen, _ = image_on_screen(app, tmp_path, "rosi_window")
    assert_screen_shows(on_screen, shown_image(last))

    count = len(app.frames())
    rects = app.rects()
    last_box = max((name for name in rects["rects"] if name.startswith("mix_box_")),
                   key=lambda name: int(name.rsplit("_", 1)[1]))
    index = last_box.rsplit("_", 1)[1]
    assert index == "7"  # rosinality's n_latent = 8 ws, the same as NVIDIA's num_ws
    clicked = time.time()
    app.screen.click(*centre(screen_pos(rects, last_box)))
    values = app.wait_for(lambda _: (lambda r: r["values"] if r and list(r["values"]["mix_layers"]) == [7] else None)(
        app.rects(after_time=clicked)), 30, "the box to be ticked")
    if not values["mix_enabled"]:
        app.screen.click(*centre(screen_pos(rects, "mix_enabled")))
    frame = app.wait_for_frame(count, lambda f: f["request"]["mix_layers"] == [int(index)], full=False)
    assert frame["reused"] >= 1, "the blocks before the last w's came from the cache"
    np.testing.assert_array_equal(shown_image(frame), headless_render(frame["request"], tmp_path))
    app.screen.screenshot(tmp_path / "rosi_mixed.png")
