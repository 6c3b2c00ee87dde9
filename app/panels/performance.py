"""Performance panel: UI frame rate, render time, how the last frame was made, device, preview on/off, OpenGL."""

import dearpygui.dearpygui as dpg
import numpy as np

from app.panels.base import Panel


class PerformancePanel(Panel):
    title = "Performance"
    default_open = False

    def __init__(self, ctx):
        super().__init__(ctx)
        self.updated_at = 0

    def build(self):
        dpg.add_text("", tag="perf_ui")
        dpg.add_text("", tag="perf_render")
        dpg.add_text("", tag="perf_last")
        dpg.add_text("", tag="perf_device")
        self.control("preview", tag="preview")
        dpg.add_text("", tag="perf_gl", wrap=400, color=(150, 150, 150))

    def tick(self):
        # Text updates twice a second: readable, and cheap.
        self.updated_at += 1
        if self.updated_at % 30 or not dpg.get_value(self.header):
            return
        times = np.array(self.ctx.picture.frame_times or [0.0]) * 1000
        fps = 1000 / max(1e-3, float(np.mean(times)))
        dpg.set_value("perf_ui", f"UI {fps:5.1f} fps   frame p50 {np.percentile(times, 50):.1f} ms  "
                                 f"p95 {np.percentile(times, 95):.1f} ms")
        render = self.ctx.picture.render_ms
        dpg.set_value("perf_render", f"render {render:.0f} ms" if render is not None else "render -")
        dpg.set_value("perf_last", f"last frame: {frame_origin(self.ctx.picture.last_full_frame)}")
        engine = self.ctx.engine
        dpg.set_value("perf_device", f"device {getattr(engine, 'device', '?')}")
        vendor, renderer = self.ctx.picture.gl_info
        dpg.set_value("perf_gl", f"OpenGL: {vendor} / {renderer}")


def frame_origin(frame):
    """How a full frame was made, in words: recalled, partly from the block cache, or a whole pass."""
    if frame is None:
        return "-"
    if getattr(frame, "recalled", False):
        return "recalled (made lately with the same inputs)"
    reused = getattr(frame, "reused_blocks", 0)
    if reused:
        return f"{reused} blocks (StyleGAN3: layers) from the cache, the rest rendered"
    return "a whole pass"
