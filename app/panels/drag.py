"""Drag panel: click handle and target points on the image, then drag them there (DragGAN) on the worker."""

import numpy as np

import dearpygui.dearpygui as dpg

from app.panels.base import Panel

HANDLE_COLOUR = (235, 70, 60, 255)
TARGET_COLOUR = (70, 140, 255, 255)
MASK_COLOUR = (255, 255, 255, 200)


class DragPanel(Panel):
    title = "Drag"
    default_open = False

    def __init__(self, ctx):
        super().__init__(ctx)
        self.handles = []  # [x, y] in image pixels, tracked live during a drag
        self.targets = []
        self.pending = None  # a handle clicked whose target is yet to come
        self.mask_rect = None  # (x0, y0, x1, y1) in image pixels: the region that may change
        self.mask_start = None  # where a mask rectangle's drag began
        self.brush = []  # (x, y, radius) stamps of the mask brush, in image pixels
        self.job = None
        self.posts_shown = 0
        self.was_down = False
        self.was_painting = False
        self.drawn = None

    def build(self):
        dpg.add_checkbox(label="Drag tool (clicks on the image)", tag="drag_tool", callback=self.on_tool)
        dpg.add_radio_button(items=["points", "mask rectangle", "mask brush"], tag="drag_mode", horizontal=True,
                             default_value="points")
        with dpg.group(horizontal=True):
            dpg.add_button(label="Start", tag="drag_start", callback=self.start)
            dpg.add_button(label="Stop", tag="drag_stop", callback=self.stop, enabled=False)
            dpg.add_button(label="Reset points", tag="drag_reset", callback=self.reset_points)
            dpg.add_button(label="Clear mask", tag="drag_clear_mask", callback=self.clear_mask)
        dpg.add_input_int(label="Brush radius", tag="drag_brush", default_value=4, min_value=1, min_clamped=True,
                          max_value=256, max_clamped=True, width=120)
        self.ctx.text_inputs.append("drag_brush")
        dpg.add_input_int(label="Step budget", tag="drag_steps", default_value=200, min_value=1, min_clamped=True,
                          max_value=5000, max_clamped=True, width=120)
        self.ctx.text_inputs.append("drag_steps")
        dpg.add_input_text(label="Record to", tag="drag_video", hint="drag.mp4 (empty: no video)", width=180)
        self.ctx.text_inputs.append("drag_video")
        dpg.add_text("Click a handle, then its target.", tag="drag_info", color=(170, 170, 180), wrap=280)
        self.overlay = dpg.add_viewport_drawlist(front=True, show=False)

    def on_tool(self, sender=None, value=None):
        self.ctx.picture.tool_active = bool(value)
        dpg.configure_item(self.overlay, show=bool(value))
        self.drawn = None

    # --- points and mask --------------------------------------------------------------------
    def image_geometry(self):
        """(left, top, shown pixels per image pixel) of the picture on screen, or None."""
        if not dpg.does_item_exist("image") or not dpg.is_item_shown("image"):
            return None
        left, top = dpg.get_item_rect_min("image")
        width, _ = dpg.get_item_rect_size("image")
        if width <= 0 or self.ctx.picture.texture.width <= 0:
            return None
        return left, top, width / self.ctx.picture.texture.width

    def to_image(self, pos, geometry):
        left, top, scale = geometry
        x, y = (pos[0] - left) / scale - 0.5, (pos[1] - top) / scale - 0.5
        size = self.ctx.picture.texture.width
        if -0.5 <= x < size - 0.5 and -0.5 <= y < self.ctx.picture.texture.height - 0.5:
            return [float(round(x)), float(round(y))]
        return None

    def to_screen(self, point, geometry):
        left, top, scale = geometry
        return [left + (point[0] + 0.5) * scale, top + (point[1] + 0.5) * scale]

    def reset_points(self):
        self.handles, self.targets, self.pending = [], [], None
        self.update_info()

    def clear_mask(self):
        self.mask_rect = None
        self.brush = []
        self.update_info()

    def update_info(self, text=None):
        if text is None:
            pairs = len(self.targets)
            text = (f"{pairs} pair{'s' if pairs != 1 else ''}"
                    + (", a handle waiting for its target" if self.pending else "")
                    + (", mask set" if self.mask_rect or self.brush else "") + ". Click a handle, then its target.")
        dpg.set_value("drag_info", text)
        self.drawn = None

    def watch_mouse(self, geometry):
        down = dpg.is_mouse_button_down(dpg.mvMouseButton_Left)
        pos = dpg.get_mouse_pos(local=False)
        point = self.to_image(pos, geometry)
        # A quick click (xdotool's, a touchpad tap) can go down and up between two UI frames.
        pressed = (down and not self.was_down) or dpg.is_mouse_button_clicked(dpg.mvMouseButton_Left)
        self.was_down = down
        if self.job is not None:
            return
        mode = dpg.get_value("drag_mode")
        if mode == "mask brush":
            stamp = None if point is None else (point[0], point[1], float(dpg.get_value("drag_brush")))
            if down and stamp is not None and (not self.brush or self.brush[-1] != stamp):
                self.brush.append(stamp)
            if pressed or (not down and self.was_painting):
                self.update_info()
            self.was_painting = down
            return
        if mode == "mask rectangle":
            if pressed and point is not None:
                self.mask_start = point
            if self.mask_start is not None and point is not None:
                (x0, y0), (x1, y1) = self.mask_start, point
                self.mask_rect = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
                self.drawn = None
            if not down and self.mask_start is not None:
                self.mask_start = None
                self.update_info()
            return
        if not pressed or point is None:
            return
        if self.pending is None:
            self.pending = point
        else:
            self.handles.append(self.pending)
            self.targets.append(point)
            self.pending = None
        self.update_info()

    def mask(self):
        """The mask as an image-sized array (1 inside the rectangle and the brush strokes), or None."""
        if self.mask_rect is None and not self.brush:
            return None
        height, width = self.ctx.picture.texture.height, self.ctx.picture.texture.width
        mask = np.zeros((height, width), np.float32)
        if self.mask_rect is not None:
            x0, y0, x1, y1 = (int(v) for v in self.mask_rect)
            mask[y0:y1 + 1, x0:x1 + 1] = 1
        ys, xs = np.mgrid[0:height, 0:width]
        for x, y, radius in self.brush:
            mask[(xs - x) ** 2 + (ys - y) ** 2 <= radius ** 2] = 1
        return mask

    # --- the drag ----------------------------------------------------------------------------
    def start(self):
        if self.job is not None or self.ctx.engine is None:
            return
        if not self.targets:
            self.update_info("Click a handle and its target on the image first (tick the Drag tool).")
            return
        try:
            self.job = self.ctx.engine.start_drag(self.ctx.state, [list(p) for p in self.handles],
                                                  [list(p) for p in self.targets], mask=self.mask(),
                                                  steps=dpg.get_value("drag_steps"),
                                                  video_path=dpg.get_value("drag_video").strip())
        except Exception as exc:
            self.ctx.report_exception("drag", exc)
            return
        self.posts_shown = 0
        dpg.configure_item("drag_start", enabled=False)
        dpg.configure_item("drag_stop", enabled=True)
        self.ctx.set_status("dragging ...")

    def stop(self):
        if self.job is not None:
            self.job.stop()

    def poll_job(self):
        job = self.job
        if job.posts != self.posts_shown:
            self.posts_shown = job.posts
            image, handles, steps = job.latest()
            self.handles = [list(p) for p in handles]
            self.ctx.picture.show_pixels(image)
            self.update_info(f"step {steps}")
        if not job.done():
            return
        self.job = None
        dpg.configure_item("drag_start", enabled=True)
        dpg.configure_item("drag_stop", enabled=False)
        if job.error:
            self.ctx.set_status(f"drag: {job.error}", error=True)
            return
        result = job.result
        self.handles = [list(p) for p in result["handles"]]
        rows = tuple(tuple(float(v) for v in row) for row in result["ws"])
        # One undo step back to before the drag; the ws already hold the directions and mixing.
        self.ctx.edit_many({"latent": ("w", "drag", rows), "directions": (), "mix_enabled": False}, coalesce=False)
        self.ctx.sync_panels()
        outcome = "reached the targets" if result["reached"] else "stopped"
        video = f"; recorded {result['video']}" if result["video"] else ""
        self.ctx.set_status(f"drag {outcome} after {result['steps']} steps{video} (Ctrl+Z undoes it)")
        self.update_info()

    def busy(self):
        """A drag running on the worker: its frames and tracked handles keep coming."""
        return self.job is not None

    def tick(self):
        if self.job is not None:
            self.poll_job()
        if not dpg.get_value("drag_tool"):
            return
        geometry = self.image_geometry()
        if geometry is None:
            return
        self.watch_mouse(geometry)
        self.draw(geometry)

    def draw(self, geometry):
        """Markers and arrows over the picture (redrawn only when something moved)."""
        key = (geometry, tuple(map(tuple, self.handles)), tuple(map(tuple, self.targets)), self.pending,
               self.mask_rect, len(self.brush))
        if key == self.drawn:
            return
        self.drawn = key
        dpg.delete_item(self.overlay, children_only=True)
        radius = max(4.0, geometry[2] * 0.6)
        if self.mask_rect is not None:
            x0, y0, x1, y1 = self.mask_rect
            corner0 = self.to_screen((x0 - 0.5, y0 - 0.5), geometry)
            corner1 = self.to_screen((x1 + 0.5, y1 + 0.5), geometry)
            dpg.draw_rectangle(corner0, corner1, color=MASK_COLOUR, thickness=2, parent=self.overlay)
        for x, y, brush_radius in self.brush:
            dpg.draw_circle(self.to_screen((x, y), geometry), brush_radius * geometry[2], color=(255, 255, 255, 0),
                            fill=(255, 255, 255, 60), parent=self.overlay)
        for handle, target in zip(self.handles, self.targets):
            start, end = self.to_screen(handle, geometry), self.to_screen(target, geometry)
            dpg.draw_arrow(end, start, color=(255, 255, 255, 220), thickness=2, size=max(6, int(radius)),
                           parent=self.overlay)
            dpg.draw_circle(end, radius, color=TARGET_COLOUR, fill=TARGET_COLOUR, parent=self.overlay)
            dpg.draw_circle(start, radius, color=HANDLE_COLOUR, fill=HANDLE_COLOUR, parent=self.overlay)
        if self.pending is not None:
            dpg.draw_circle(self.to_screen(self.pending, geometry), radius, color=HANDLE_COLOUR,
                            fill=HANDLE_COLOUR, parent=self.overlay)

    def test_geometry(self):
        """For the window tests: the points and the mask in image pixels."""
        return {"drag_handles": self.handles, "drag_targets": self.targets, "drag_mask": self.mask_rect,
                "drag_brush": len(self.brush),
                "drag_running": self.job is not None}
