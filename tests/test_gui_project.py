"""Window test of the Project panel: load a picture, watch the reconstruction improve, stop, export, rebuild."""

import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import run_app
from gui_driver import ROOT, VirtualScreen, crop, downsample, laid_out_app, missing_tools
from test_gui import centre, screen_pos, toggle_panels, type_into

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason="needs Xvfb and xdotool")


def panel_error(app, tmp_path, name):
    """Mean absolute difference between the shown target and the shown reconstruction (screenshot)."""
    time.sleep(0.5)
    rects = app.rects()
    shot = np.asarray(app.screen.screenshot(tmp_path / f"{name}.png"))[:, :, :3]
    target = downsample(crop(shot, screen_pos(rects, "project_target")), 64)
    result = downsample(crop(shot, screen_pos(rects, "project_result")), 64)
    return float(np.abs(target - result).mean())


def test_project_a_picture_stop_and_export_what_rebuilds(tmp_path):
    picture = tmp_path / "face.png"
    assert run_app.main(["frame", "--seed", "7401", "--mix-seed", "7402", "--mix-layers", "fine",
                         "--out", str(picture)]) == 0
    screen = VirtualScreen()
    try:
        with laid_out_app(screen, tmp_path) as app:
            toggle_panels(app, "header_ProjectPanel")
            type_into(app, "project_path", str(picture))
            app.wait_for_item("project_result")
            screen.click(*centre(screen_pos(app.rects(), "project_start")))
            # Watch it converge: screenshots until the reconstruction is close to the target.
            black = panel_error(app, tmp_path, "start")  # nothing reconstructed yet: the black texture
            first = app.wait_for(lambda _: (lambda e: e if e < 0.5 * black else None)(
                panel_error(app, tmp_path, "first")), 120, "the first reconstruction")
            errors, deadline = [first], time.monotonic() + 150
            while errors[-1] > 0.6 * first and time.monotonic() < deadline:
                time.sleep(1.0)
                errors.append(panel_error(app, tmp_path, f"shot{len(errors)}"))
            assert errors[-1] < 0.6 * first, errors  # the picture on screen came closer to the target
            screen.click(*centre(screen_pos(app.rects(), "project_stop")))
            # The stopped projection's w is the image's: a frame of that request reaches the screen.
            frame = app.wait_for_frame(predicate=lambda f: f["request"].get("w") is not None, timeout=60)
            assert len(frame["request"]["w"]) == 10
            screen.click(*centre(screen_pos(app.rects(), "image")))  # focus the window, not a text field
            screen.key("ctrl+s")
            saved = app.wait_for(lambda _: list(tmp_path.glob("stylescope_*.png")), 60, "the exported PNG")
            assert app.alive()
        # As a user would, in a process of its own (this one runs the tests' small-network kernels).
        rebuilt = tmp_path / "rebuilt.png"
        subprocess.run([sys.executable, str(ROOT / "run_app.py"), "frame", "--from-png", str(saved[0]),
                        "--out", str(rebuilt)], check=True, timeout=300)
        assert np.array_equal(np.asarray(Image.open(rebuilt)), np.asarray(Image.open(saved[0])))
    finally:
        screen.close()
