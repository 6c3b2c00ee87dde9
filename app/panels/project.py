"""Project panel: a picture of the user's put into W or W+ on the worker thread, the crop beside the
reconstruction as it converges; the result becomes the explorer's w (Vectors' loaded w)."""

from pathlib import Path

import dearpygui.dearpygui as dpg
import numpy as np

from app.panels.base import Panel
from app.panels.vectors import fit_w

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
STEPS_PER_CALL = 4  # a call of ~0.3 s on the default model: the explorer's frames come between calls
SHOWN_SIZE = 128  # on-screen side of the target and the reconstruction


class ProjectPanel(Panel):
    title = "Project"
    default_open = False

    def build(self):
        with dpg.group(horizontal=True):
            dpg.add_input_text(tag="project_path", hint="picture to project (.png / .jpg)", width=230,
                               on_enter=True, callback=lambda s, v: self.load_target(v))
            dpg.add_button(label="...", tag="project_browse", callback=lambda: dpg.configure_item(
                "project_dialog", show=True))
            dpg.add_button(label="Load", tag="project_load",
                           callback=lambda: self.load_target(dpg.get_value("project_path")))
        dpg.add_text("", tag="project_crop", color=(150, 150, 150), wrap=380)
        with dpg.group(horizontal=True, tag="project_images"):
            pass
        with dpg.group(horizontal=True):
            dpg.add_radio_button(["w", "w+"], tag="project_space", default_value="w+", horizontal=True)
            dpg.add_input_int(label="steps", tag="project_steps", width=100, default_value=300, min_value=1,
                              max_value=100000, min_clamped=True, max_clamped=True)
        with dpg.tooltip("project_space"):
            dpg.add_text("w: one w for every layer (edits behave like a seed's);\n"
                         "w+: one per layer (closer to the picture).")
        with dpg.group(horizontal=True):
            dpg.add_button(label="Start", tag="project_start", callback=self.on_start)
            dpg.add_button(label="Pause", tag="project_pause", callback=self.on_pause)
            dpg.add_button(label="Stop", tag="project_stop", callback=self.on_stop)
        dpg.add_text("Choose a picture: its centre square is projected.", tag="project_status", wrap=380)
        self.ctx.text_inputs.extend(["project_path", "project_steps"])
        self.add_file_dialog("project_dialog", IMAGE_EXTENSIONS, self.on_dialog)
        self.target = self.name = None
        self.textures = {}
        self.projector = self.start_call = self.step_call = None
        self.paused = False
        self.last_rows = None
        self.pkl = None

    # --- the picture -------------------------------------------------------------------------
    def on_dialog(self, sender, app_data):
        path = self.dialog_path(app_data)
        if path:
            dpg.set_value("project_path", path)
            self.load_target(path)

    def load_target(self, path):
        path = (path or "").strip()
        info = self.ctx.model_info
        if not path:
            return
        if not info or info.get("pkl") != self.ctx.state["pkl"]:
            self.ctx.set_status("project: wait until the network is on screen", error=True)
            return
        resolution = int(info.get("img_resolution") or 0)
        try:
            target, (left, top, size), picture = self.ctx.engine.projection_target(
                Path(path).expanduser(), resolution, int(info.get("img_channels") or 3))
        except ValueError as error:
            self.ctx.set_status(f"picture not loaded: {error}".splitlines()[0], error=True)
            return
        self.end_run()
        self.target, self.name = target, Path(path).name
        dpg.set_value("project_crop", f"{self.name}: {picture.shape[1]}x{picture.shape[0]}, centre square "
                                      f"{size}x{size} at ({left}, {top}), resized to {resolution}x{resolution}")
        self.show_images(target, np.zeros_like(target))
        dpg.set_value("project_status", "Press Start: the reconstruction appears on the right.")
        self.ctx.set_status(f"picture loaded: {self.name}")

    def show_images(self, target, result):
        """The target and the reconstruction in two textures of the picture's size, shown side by side."""
        size = target.shape[:2]
        if self.textures.get("size") != size:
            for child in dpg.get_item_children("project_images", 1) or []:
                dpg.delete_item(child)
            for name in ("target", "result"):
                buffer = np.zeros(size[0] * size[1] * 3, np.float32)
                tag = dpg.add_raw_texture(size[1], size[0], buffer, format=dpg.mvFormat_Float_rgb,
                                          parent=self.ctx.picture.texture_registry)
                self.textures[name] = (tag, buffer)
                dpg.add_image(tag, tag=f"project_{name}", parent="project_images", width=SHOWN_SIZE,
                              height=SHOWN_SIZE)
            self.textures["size"] = size
        for name, image in (("target", target), ("result", result)):
            rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image[:, :, :3]
            # dearpygui keeps this array and uploads it each frame: write into it, never replace it.
            self.textures[name][1][:] = rgb.reshape(-1).astype(np.float32) / 255.0

    # --- the run -----------------------------------------------------------------------------
    def on_start(self):
        if self.target is None:
            self.ctx.set_status("project: load a picture first", error=True)
            return
        self.end_run()
        self.pkl = self.ctx.state["pkl"]
        steps = int(dpg.get_value("project_steps"))
        self.start_call = self.ctx.engine.projection_start(self.ctx.state, self.target,
                                                           dpg.get_value("project_space"), steps)
        self.paused = False
        dpg.configure_item("project_pause", label="Pause")
        dpg.set_value("project_status", "starting ...")

    def on_pause(self):
        if self.projector is None and self.start_call is None:
            return
        self.paused = not self.paused
        dpg.configure_item("project_pause", label="Resume" if self.paused else "Pause")
        dpg.set_value("project_status", dpg.get_value("project_status").split(" (paused)")[0]
                      + (" (paused)" if self.paused else ""))

    def on_stop(self):
        """Stop now and use what it reached: the step in flight finishes on the worker and is dropped."""
        if self.projector is None and self.start_call is None:
            return
        self.use_result("stopped")

    def end_run(self):
        self.projector = self.start_call = self.step_call = None
        self.last_rows = None

    def use_result(self, how):
        rows, info = self.last_rows, self.ctx.model_info
        name = self.name
        self.end_run()
        if rows is None:
            dpg.set_value("project_status", f"{how} before the first step")
            return
        if not info or info.get("pkl") != self.pkl:
            self.ctx.set_status("project: the network changed meanwhile; nothing used", error=True)
            return
        try:
            latent = ("w", f"projection of {name}", fit_w(rows, info))
        except ValueError as error:
            self.ctx.set_status(f"project: {error}".splitlines()[0], error=True)
            return
        self.ctx.edit("latent", latent, coalesce=False)
        self.ctx.sync_panels()
        dpg.set_value("project_status", dpg.get_value("project_status").split(" (")[0] + f" ({how}: in use)")
        self.ctx.set_status(f"projection {how}: its w is the image's now (Vectors panel)")

    def tick(self):
        if self.start_call is not None and self.start_call.done():
            call, self.start_call = self.start_call, None
            if call.error is not None:
                self.ctx.set_status(f"project: {call.error}", error=True)
                dpg.set_value("project_status", "not started")
                return
            self.projector = call.result
        if self.step_call is not None and self.step_call.done():
            call, self.step_call = self.step_call, None
            if call.error is not None:
                self.ctx.set_status(f"project: {call.error}", error=True)
                self.end_run()
                return
            if self.projector is None:
                return  # stopped meanwhile
            step, loss, db, image, rows = call.result
            self.last_rows = rows
            self.show_images(self.target, image)
            steps = self.projector.settings.steps
            dpg.set_value("project_status", f"step {step}/{steps}  loss {loss:.4f}  {db:.1f} dB"
                          + (" (paused)" if self.paused else ""))
            if step >= steps:
                self.use_result("done")
                return
        if self.projector is not None and self.step_call is None and not self.paused:
            self.step_call = self.ctx.engine.projection_advance(self.projector, STEPS_PER_CALL)

    def busy(self):
        """A projection starting or running (not paused): the window keeps drawing its steps."""
        return self.start_call is not None or self.step_call is not None or \
            (self.projector is not None and not self.paused)

    def layout_state(self):
        """What moves this panel's controls: the two pictures appearing."""
        return self.textures.get("size")
