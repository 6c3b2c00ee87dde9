"""The export panel in the real window (Xvfb): Ctrl+S writes the shown frame as a PNG that remembers its request."""

import time

import numpy as np
import pytest
from PIL import Image

from gui_driver import AppUnderTest, VirtualScreen, missing_tools

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"needs {', '.join(missing_tools())} (scripts/system_deps.sh)")


def test_ctrl_s_saves_the_shown_frame_with_its_request(fixtures_dir, tmp_path):
    from renderer import png_metadata

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
        meta = png_metadata.read_png_metadata(saved[0])
        shown = app.frames()[-1]
        assert meta.request().to_dict() == shown["request"]
        assert meta.model_name == "sg2ada_64.pkl"
        np.testing.assert_array_equal(png_metadata.read_png_image(saved[0]),
                                      np.asarray(Image.open(shown["shown_copy"]).convert("RGB")))
        assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]
    finally:
        app.kill()
        screen.close()


def test_video_export_shows_progress_writes_the_video_and_cancel_leaves_nothing(fixtures_dir, tmp_path):
    import imageio.v3 as iio
    from test_gui import centre, screen_pos, toggle_panels, type_into

    from renderer import interpolate

    out = tmp_path / "videos"
    out.mkdir()
    screen = VirtualScreen()
    app = AppUnderTest(screen, tmp_path, pkl=fixtures_dir / "sg2ada_64.pkl",
                       extra_env={"STYLESCOPE_SAVE_DIR": str(out)})
    try:
        frame = app.wait_for_frame(timeout=180)
        app.wait_for_rects(after_time=frame["time"])
        # Fold three panels to make room, then open Export, as a person would.
        toggle_panels(app, "header_LatentPanel", "header_MixingPanel", "header_TruncationPanel", "header_ExportPanel")
        app.wait_for_item("export_video")
        type_into(app, "export_keys", "0,1,2")
        type_into(app, "export_per", "150")  # 301 frames: long enough for the bar to be seen moving
        screen.click(*centre(screen_pos(app.rects(), "export_video")))
        done = app.wait_for(lambda ev: [e for e in ev if e["event"] == "export" and e["state"] != "running"], 180,
                            "the video export to finish")[-1]
        assert done["state"] == "done", done
        expected = interpolate.frame_count(3, 150, False)
        running = [e for e in app.events("export") if e["state"] == "running"]
        assert {e["total"] for e in running if e["total"]} == {expected}, running
        assert any(0 < e["done"] < expected for e in running), f"no progress shown while it ran: {running}"
        videos = list(out.glob("stylescope_video_*.mp4"))
        assert len(videos) == 1 and videos[0].name in done["message"]
        pixels = iio.imread(videos[0])
        assert pixels.shape[0] == expected and pixels.shape[1:3] == (64, 64)
        assert pixels[0].astype(float).std() > 5 and np.abs(pixels[0].astype(float) - pixels[-1]).mean() > 2

        # A long one, cancelled with the button once it is under way: nothing is written.
        type_into(app, "export_per", "3000")
        started = time.time()
        screen.click(*centre(screen_pos(app.rects(), "export_video")))
        app.wait_for(lambda ev: [e for e in ev if e["event"] == "export" and e["time"] > started
                                 and e["state"] == "running" and e["done"] > 0], 60, "the second export under way")
        shot = screen.screenshot(tmp_path / "exporting.png")
        cancel = app.wait_for_item("export_cancel")
        screen.click(*centre(screen_pos(cancel, "export_cancel")))
        ended = app.wait_for(lambda ev: [e for e in ev if e["event"] == "export" and e["time"] > started
                                         and e["state"] != "running"], 120, "the cancel")[-1]
        assert ended["state"] == "cancelled" and "nothing written" in ended["message"]
        assert sorted(out.iterdir()) == videos, "a cancelled export leaves no file behind"
        assert app.alive() and shot.std() > 5
    finally:
        app.kill()
        screen.close()
