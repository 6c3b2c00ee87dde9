"""The GUI tests' observer of the window (app/observer.py): JSON lines of item rects, shown frames, edits and errors.

tests/gui_driver.py installs it with STYLESCOPE_OBSERVER=window_log; it writes to STYLESCOPE_TEST_LOG.
"""

import json
import os
import time
from pathlib import Path

from app.observer import Observer


def make_observer():
    return WindowLog(os.environ["STYLESCOPE_TEST_LOG"])


class WindowLog(Observer):
    """Writes every note as a JSON line, a copy of every picture shown, and where each control is on
    screen once a new picture is laid out (so the tests click controls instead of guessing pixels)."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.write_text("")
        self.frames_logged = 0
        self.rects_due = 5  # the window's frame count at which the next map of the window is written
        self.layout_key = None

    def note(self, event, **data):
        data["event"] = event
        data["time"] = time.time()
        with self.path.open("a") as f:
            f.write(json.dumps(data, default=str) + "\n")

    def engine_started(self, engine):
        """STYLESCOPE_TEST_FULL_FRAME_DELAY / _PREVIEW_DELAY (seconds): frames as slow as on a slow
        device, so that the tests see previews on a tiny network as on a big one."""
        delay = float(os.environ.get("STYLESCOPE_TEST_FULL_FRAME_DELAY", "0"))
        preview_delay = float(os.environ.get("STYLESCOPE_TEST_PREVIEW_DELAY", "0"))
        if delay > 0 or preview_delay > 0:
            engine.renderer.render = slowed_frames(engine.renderer.render, delay, preview_delay)

    def frame_shown(self, window, frame):
        shown = self.save_shown(window)
        request = frame.request.to_dict() if frame.request is not None else None
        self.note("frame", request=request, preview=bool(frame.preview), shape=list(shown.shape),
                  shown_copy=str(self.shown_path()), reused=frame.reused_blocks, recalled=frame.recalled)
        self.rects_due = window.frames.frames_drawn + 3  # once the new picture is laid out

    def pixels_shown(self, window):
        self.save_shown(window)
        self.note("pixels", shown_copy=str(self.shown_path()))

    def save_shown(self, window):
        from PIL import Image

        self.frames_logged += 1
        pixels = window.picture.texture.shown_pixels()
        Image.fromarray(pixels).save(self.shown_path())
        return pixels

    def shown_path(self):
        return self.path.with_name(f"{self.path.stem}_frame{self.frames_logged:04d}.png")

    def drawn(self, window):
        drawn = window.frames.frames_drawn
        if drawn == self.rects_due or (drawn % 10 == 0 and self.layout_changed(window)):
            self.log_rects(window)

    def before_wait(self, window):
        if self.layout_changed(window):
            self.log_rects(window)  # the tests' map of the window, before it may wait

    def busy(self, window):
        return self.rects_due >= window.frames.frames_drawn  # the map is due after a new picture

    def layout_changed(self, window):
        dpg = window.dpg
        key = (window.image_size, tuple(sorted((p.title, dpg.get_value(p.header)) for p in window.panels)),
               window.picture.texture.width, len(window.ctx.model_info),
               tuple(p.layout_state() for p in window.panels if hasattr(p, "layout_state")), shown_dialogs(),
               window.status_text)
        changed = key != self.layout_key
        self.layout_key = key
        return changed

    def log_rects(self, window):
        """Where every control is on screen (and which are greyed out), so the tests can click it instead of
        guessing pixels."""
        dpg = window.dpg
        rects, disabled, menus = {}, [], []
        for alias in dpg.get_aliases():
            try:
                state = dpg.get_item_state(alias)
                enabled = dpg.get_item_configuration(alias).get("enabled", True)
            except Exception:
                continue
            if state.get("visible") and "rect_min" in state:
                rects[alias] = [*state["rect_min"], *state["rect_max"]]
                if not enabled:
                    disabled.append(alias)
            elif alias.startswith(("menu_", "display_")) and state.get("pos") and dpg.is_item_shown(alias):
                menus.append((alias, state))  # menus and their items tell only where they start
        for alias, state in sorted(menus, key=lambda item: dpg.get_item_type(item[0]) != "mvAppItemType::mvMenu"):
            x, y = state["pos"]
            w, h = state.get("rect_size") or (0, 0)
            menu = dpg.get_item_alias(dpg.get_item_parent(alias)) or ""
            if menu in rects and dpg.get_item_type(alias) != "mvAppItemType::mvMenu":
                x, y = x + rects[menu][0], y + rects[menu][3]  # an item of an open menu: under its header
            rects[alias] = [x, y, x + (w or 7 * len(dpg.get_item_label(alias) or "")), y + (h or 17)]
        extra = {}
        for panel in window.panels:
            extra.update(getattr(panel, "test_geometry", lambda: {})())
        # Which folding items are open (panel headers, tree nodes), so that a test can wait for its click to land.
        opened = {alias: bool(dpg.get_value(alias)) for alias in rects
                  if alias.startswith("header_") or alias.endswith("_node")}
        self.note("rects", rects=rects, disabled=disabled, geometry=extra, opened=opened,
                  viewport=[dpg.get_viewport_width(), dpg.get_viewport_height()],
                  viewport_pos=list(dpg.get_viewport_pos()), pkl=window.state["pkl"],
                  values=window.state.to_json_dict())


def shown_dialogs():
    from app.file_dialog import DIALOGS

    return tuple(tag for tag in DIALOGS if DIALOGS[tag].listed)


def slowed_frames(render, delay, preview_delay=0.0):
    """Test hook: full frames take `delay` seconds longer and previews `preview_delay`, as on a slow
    device, so that the GUI tests see previews on a tiny network as on a big one. The wait stops
    when the render would: for a full frame when it is stale, for a preview when the worker closes."""
    import time

    from renderer.renderer import Frame

    def slow_render(request, should_stop=None, preview_resolution=None, preview_should_stop=None, **kwargs):
        wait = delay if preview_resolution is None else preview_delay
        stop = should_stop if preview_resolution is None or preview_should_stop is None else preview_should_stop
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if stop is not None and stop():
                return Frame(request=request, cancelled=True)
            time.sleep(0.01)
        frame = render(request, should_stop=should_stop, preview_resolution=preview_resolution,
                       preview_should_stop=preview_should_stop, **kwargs)
        if "synthesis" in frame.timings:
            frame.timings["synthesis"] += wait  # it took that long, as far as the app can tell
        return frame

    return slow_render
