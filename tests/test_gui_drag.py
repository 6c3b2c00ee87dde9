"""The real window under Xvfb: the Drag tool places a handle and a target with clicks, drags the
picture on the worker (markers drawn, frames moving), and undo brings the picture back."""

import time

import numpy as np
import pytest

from gui_driver import VirtualScreen, laid_out_app, missing_tools
from test_gui import centre, screen_pos, shown_image, toggle_panels

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"needs {', '.join(missing_tools())} (scripts/system_deps.sh)")

HANDLE, TARGET = (33, 40), (27, 40)


def image_point(rects, pixel, size=64):
    """Screen position of an image pixel's centre."""
    x0, y0, x1, y1 = screen_pos(rects, "image")
    return x0 + (pixel[0] + 0.5) * (x1 - x0) / size, y0 + (pixel[1] + 0.5) * (y1 - y0) / size


def colour_near(shot, point, colour, radius=4, tolerance=40):
    x, y = int(point[0]), int(point[1])
    patch = shot[y - radius:y + radius + 1, x - radius:x + radius + 1].astype(int)
    return bool((np.abs(patch - np.array(colour)).max(axis=2) < tolerance).any())


def test_drag_tool_moves_the_picture_and_undo_brings_it_back(tmp_path):
    screen = VirtualScreen()
    try:
        with laid_out_app(screen, tmp_path) as app:
            first = app.frames()[-1]
            before = shown_image(first)
            toggle_panels(app, "header_LatentPanel", "header_MixingPanel", "header_TruncationPanel",
                          "header_DragPanel")
            rects = app.wait_for_item("drag_start", after_time=app.frames()[-1]["time"])
            app.screen.click(*centre(screen_pos(rects, "drag_tool")))
            time.sleep(0.5)
            app.screen.click(*image_point(rects, HANDLE))
            time.sleep(0.5)
            app.screen.click(*image_point(rects, TARGET))
            time.sleep(1.0)
            shot = app.screen.screenshot(tmp_path / "points.png")
            assert colour_near(shot, image_point(rects, HANDLE), (235, 70, 60)), "no handle marker"
            assert colour_near(shot, image_point(rects, TARGET), (70, 140, 255)), "no target marker"

            frames_before = len(app.frames())
            app.screen.click(*centre(screen_pos(rects, "drag_start")))
            shown = app.wait_for(lambda events: (lambda p: p if len(p) >= 3 else None)(
                [e for e in events if e["event"] == "pixels"]), 120, "the drag's frames")
            time.sleep(0.3)
            app.screen.screenshot(tmp_path / "dragging.png")
            result = app.wait_for_frame(after=frames_before, predicate=lambda f: f["request"].get("w") is not None,
                                        timeout=180)
            moving = [np.asarray(__import__("PIL.Image").Image.open(p["shown_copy"]).convert("RGB")) for p in shown]
            assert not np.array_equal(moving[0], moving[-1]), "the picture did not move during the drag"
            after = shown_image(result)
            assert np.abs(after.astype(int) - before.astype(int)).max() > 40, "the drag changed nothing"
            time.sleep(1.0)
            app.screen.screenshot(tmp_path / "dragged.png")

            count = len(app.frames())
            app.screen.key("ctrl+z")
            back = app.wait_for_frame(after=count, predicate=lambda f: f["request"].get("w") is None, timeout=60)
            assert back["request"]["seeds"] == first["request"]["seeds"]
            np.testing.assert_array_equal(shown_image(back), before)

            # The mask brush: a stroke across the forehead leaves a light trail over the picture.
            rects = app.wait_for_rects(after_time=back["time"])
            x0, y0, x1, y1 = screen_pos(rects, "drag_mode")
            app.screen.click(x0 + 0.85 * (x1 - x0), (y0 + y1) / 2)  # the third choice: mask brush
            time.sleep(0.5)
            start, end = image_point(rects, (20, 22)), image_point(rects, (44, 22))
            unpainted = app.screen.screenshot(tmp_path / "unpainted.png").astype(int)
            app.screen.drag(*start, *end, steps=16, pause=0.06)
            time.sleep(1.0)
            painted = app.screen.screenshot(tmp_path / "brush.png").astype(int)
            y = int(start[1])
            row = slice(int(start[0]), int(end[0]))
            assert (painted[y, row].sum(axis=1) - unpainted[y, row].sum(axis=1)).mean() > 15, "no brush trail"
    finally:
        screen.close()
