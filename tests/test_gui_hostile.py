"""The window opens hostile files through the Network panel: each costs one status line, never the session."""

import time

import numpy as np
import pytest
from PIL import Image

import hostile_resources as bombs
from gui_driver import VirtualScreen, crop, laid_out_app, missing_tools

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"needs {', '.join(missing_tools())} (scripts/system_deps.sh)")
CRASHING = "reader_crashes_on_this.pkl"


def screen_pos(rects_event, name):
    vx, vy = rects_event.get("viewport_pos", [0, 0])
    x0, y0, x1, y1 = rects_event["rects"][name]
    return [x0 + vx, y0 + vy, x1 + vx, y1 + vy]


def type_into(app, name, text):
    x0, y0, x1, y1 = screen_pos(app.rects(), name)
    app.screen.click((x0 + x1) / 2, (y0 + y1) / 2)
    app.screen.key("ctrl+a")
    app.screen.type(text)
    app.screen.key("Return")
    time.sleep(0.3)


def test_a_crashing_and_a_nested_file_cost_one_status_line_each(fixtures_dir, tmp_path):
    good = str((fixtures_dir / "sg2ada_64.pkl").resolve())
    (tmp_path / CRASHING).write_bytes(b"\x80\x04any bytes: the test hook crashes the reader on this name")
    nested = tmp_path / "deep_dict_key.pkl"
    nested.write_bytes(bombs.deep_nesting_files()["deep_dict_key"])
    screen = VirtualScreen()
    try:
        # The crash is simulated (the classes that crashed are refused now): the reader process
        # segfaults on this file name, as a parser bug would.
        with laid_out_app(screen, tmp_path, pkl=good, extra_env={"STYLESCOPE_TEST_READER_CRASHES_ON": CRASHING}) as app:
            first = app.frames()[-1]
            for path, words in ((tmp_path / CRASHING, "crashed the reader process (SIGSEGV)"),
                                (nested, "nested more than")):
                errors = len(app.events("error"))
                type_into(app, "net_path", str(path))
                error = app.wait_for(lambda ev: [e for e in ev if e["event"] == "error"][errors:], 120, "an error")[0]
                assert words in error["message"] and path.name in error["message"], error["message"]
                status = [e for e in app.events("status") if e["error"]][-1]["text"]
                assert "\n" not in status and status.isprintable() and len(status) <= 300
                # The window keeps its network: the state goes back to it and renders it again.
                back = app.wait_for(lambda ev: [e for e in ev if e["event"] == "frame" and e["time"] > error["time"]
                                                and e["request"]["pkl"] == good], 120, "the old network's frame")[0]
                assert app.alive()
            time.sleep(1.0)
            shot = app.screen.screenshot(tmp_path / "after_hostile_files.png")
            Image.fromarray(shot).save(tmp_path / "after_hostile_files.png")
            image = crop(shot, screen_pos(app.wait_for_rects(after_time=back["time"]), "image"))
            assert image.std() > 5, "the picture is still on screen"
            assert np.asarray(Image.open(back["shown_copy"])).shape == np.asarray(Image.open(first["shown_copy"])).shape
            print("screenshot:", tmp_path / "after_hostile_files.png")
    finally:
        screen.close()
