"""The export panel in the real window (Xvfb): Ctrl+S writes the shown frame as a PNG that remembers its request."""

import time

import numpy as np
import pytest
from PIL import Image

from gui_driver import AppUnderTest, VirtualScreen, missing_tools

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"needs {', '.join(missing_tools())} (scripts/system_deps.sh)")


def test_ctrl_s_saves_the_shown_frame_with_its_request(fixtures_dir, tmp_path):
    from renderer import export

    screen = VirtualScreen()
    app = AppUnderTest(screen, tmp_path, pkl=fixtures_dir / "sg2ada_64.pkl")
    try:
        frame = app.wait_for_frame(timeout=180)
        rects = app.wait_for_rects(after_time=frame["time"])
        x0, y0, x1, y1 = rects["rects"]["image"]
        vx, vy = rects.get("viewport_pos", [0, 0])
        screen.click(vx + (x0 + x1) / 2, vy + (y0 + y1) / 2)  # focus the window, not a text field
        screen.key("ctrl+s")
        deadline = time.monotonic() + 120
        saved = []
        while time.monotonic() < deadline and not saved:
            saved = [p for p in tmp_path.glob("stylescope_seed*.png")]
            time.sleep(0.3)
        assert saved, f"no PNG written; app output:\n{app.output()[-2000:]}"
        assert app.alive()
        meta = export.read_png_metadata(saved[0])
        shown = app.frames()[-1]
        assert meta.request().to_dict() == shown["request"]
        assert meta.model_name == "sg2ada_64.pkl"
        np.testing.assert_array_equal(export.read_png_image(saved[0]),
                                      np.asarray(Image.open(shown["shown_copy"]).convert("RGB")))
        assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]
    finally:
        app.kill()
        screen.close()
