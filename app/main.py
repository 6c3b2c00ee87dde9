"""The explorer window: layout, main loop, keyboard, status line; run_app(args) is the entry point."""

import inspect
import json
import os
import sys
import time
import traceback
from collections import deque
from pathlib import Path

from app.display import display_problem
from app.state import ExplorerState, write_json_atomic

VIEWPORT_W, VIEWPORT_H = 1440, 920
PANEL_W = 430
STATUS_H = 26
SEED_PIXELS = 120  # dragging this many pixels on the image moves one seed
IDLE_AFTER_SECONDS = 1.0  # no input for this long: the window is idle
IDLE_FPS = 20  # frame rate of an idle window while something runs in the background (else it waits for input)
CHAR_PX = 7  # the default font's advance: its glyphs are all this wide
MENU_GAP = "    "  # before a menu item's shortcut: ImGui sets it right beside the longest label
SHORTCUTS = [
    ("Left / Right", "previous / next seed"),
    ("Up / Down", "seed row up / down (100 seeds)"),
    ("Home", "reset every control (the network stays)"),
    ("Ctrl+Z / Ctrl+Y", "undo / redo"),
    ("Ctrl+S", "save the frame"),
    ("Ctrl+O", "open a network file"),
    ("drag on image", "move through seed space"),
    ("right-click a control", "reset it to its default"),
    ("F1", "show / hide this help"),
]


class TestLog:
    """JSON lines for the GUI tests (item rects, shown frames, errors); off unless STYLESCOPE_TEST_LOG is set."""

    def __init__(self, path):
        self.path = Path(path) if path else None
        if self.path:
            self.path.write_text("")

    def __bool__(self):
        return self.path is not None

    def write(self, event, **data):
        if not self.path:
            return
        data["event"] = event
        data["time"] = time.time()
        with self.path.open("a") as f:
            f.write(json.dumps(data, default=str) + "\n")


class App:
    """Owns the state, the render engine, the texture and the panels; loop() calls step() per UI frame."""

    def __init__(self, args, dpg):
        self.dpg = dpg
        self.args = args
        self.state = ExplorerState()
        self.log = TestLog(os.environ.get("STYLESCOPE_TEST_LOG"))
        self.text_inputs = []
        self.panels = []
        self.model_info = {}
        self.last_frame = None
        self.last_full_frame = None
        self.render_error_shown = False
        self.last_good_pkl = None
        self.submitted = None  # the state version of the last request sent
        self.preview_prepared_for = ""  # the network (pkl; None: the default model) a first preview was made for
        self.frame_times = deque(maxlen=240)
        self.render_ms = None
        self.gl_info = ("?", "?")
        self.mouse_was_down = False
        self.image_tool_active = False  # True while a panel's tool takes clicks on the image
        self.seed_drag = None
        self.status_text = ""
        self.frames_drawn = 0
        self.last_step = time.perf_counter()
        self.last_activity = None
        self.last_active_at = time.perf_counter()
        self.waiting_for_input = False
        self.display_filter = "auto"
        self.frames_logged = 0
        self.rects_due = 5
        self.image_size = (0, 0)
        self.engine = None

    # --- edits --------------------------------------------------------------------------------
    def edit(self, name, value, coalesce=True):
        """Every control lands here: one value into the state (undo-able)."""
        if self.state.set(name, value, coalesce=coalesce):
            self.log.write("edit", name=name, value=value)

    def edit_many(self, changes, coalesce=True):
        if self.state.update(changes, coalesce=coalesce):
            self.log.write("edit", changes=changes)

    def undo(self):
        if self.state.undo():
            self.sync_panels()
            self.set_status("undo")

    def redo(self):
        if self.state.redo():
            self.sync_panels()
            self.set_status("redo")

    def sync_panels(self):
        for panel in self.panels:
            panel.sync()

    def set_status(self, text, error=False):
        from app.bridge import clean_line

        text = clean_line(text)  # one line: control characters from a file escaped, long names cut
        self.status_text = text
        dpg = self.dpg
        if dpg.does_item_exist("status"):
            dpg.set_value("status_full", text)  # the tooltip: the whole line
            dpg.configure_item("status", color=(255, 110, 100) if error else (190, 190, 190))
            self.fit_status()
        self.log.write("status", text=text, error=error)
        if error:
            self.log.write("error", message=text)

    def report_exception(self, where, exc):
        """Errors never close the window: one line in the status bar, the traceback in the log."""
        message = f"{where}: {type(exc).__name__}: {exc}".splitlines()[0]
        self.set_status(message, error=True)
        self.log.write("exception", where=where, traceback=traceback.format_exc())
        traceback.print_exc()  # a bug: the details go to the terminal too

    # --- building the window ------------------------------------------------------------------
    def build(self):
        dpg = self.dpg
        from app.grid_overlay import GridOverlay
        from app.panels import make_panels
        from app.texture import FrameTexture

        from app import file_dialog

        if self.log:
            file_dialog.LOG[0] = self.log.write
        self.texture_registry = dpg.add_texture_registry()
        self.texture = FrameTexture(dpg, self.texture_registry, 64, 64)
        with dpg.item_handler_registry() as self.reset_handlers:
            dpg.add_item_clicked_handler(button=dpg.mvMouseButton_Right, callback=self.on_right_click)

        with dpg.window(tag="main", no_scrollbar=True, menubar=True):
            self.build_menu()
            with dpg.group(horizontal=True):
                with dpg.child_window(tag="image_area", width=-PANEL_W, height=-STATUS_H, border=False,
                                      no_scrollbar=True):
                    dpg.add_image(self.texture.tag, tag="image", width=512, height=512, pos=(0, 0), show=False)
                    self.grid_overlay = GridOverlay(dpg, "image_area")
                    with dpg.group(tag="welcome", pos=(60, 60)):
                        dpg.add_text("StyleScope", color=(150, 190, 255))
                        dpg.add_text("Open a network to start exploring: a StyleGAN, StyleGAN2(-ADA) or StyleGAN3\n"
                                     "pickle from NVIDIA's repositories, or a StyleScope .safetensors file.",
                                     color=(170, 170, 180))
                        dpg.add_button(label="Open network...  (Ctrl+O)", tag="welcome_open",
                                       callback=lambda: self.panel("Network").open_dialog())
                        dpg.add_text("F1 lists the keyboard shortcuts.", color=(120, 120, 130))
                with dpg.child_window(tag="panels", width=PANEL_W - 8, height=-STATUS_H):
                    self.panels = make_panels(self)
                    for panel in self.panels:
                        panel.build_header("panels")
                        dpg.configure_item(panel.header, show=panel.visible_for({}))
            with dpg.group(horizontal=True):
                dpg.add_text("Ready", tag="status")
                dpg.add_spacer(tag="status_gap", width=16)
                dpg.add_text("", tag="image_caption", color=(140, 150, 165))
            with dpg.tooltip("status"):
                dpg.add_text("", tag="status_full", wrap=700)

        with dpg.window(tag="help", label="Shortcuts", modal=False, show=False, width=520, height=300,
                        pos=(200, 150), no_collapse=True):
            with dpg.table(header_row=False, tag="help_table"):
                dpg.add_table_column(width_fixed=True, init_width_or_weight=190)  # a gap after the keys
                dpg.add_table_column()
                for key, what in SHORTCUTS:
                    with dpg.table_row():
                        dpg.add_text(key, color=(255, 200, 90))
                        dpg.add_text(what)

        self.shortcut_keys = [dpg.mvKey_Z, dpg.mvKey_Y, dpg.mvKey_S, dpg.mvKey_O, dpg.mvKey_F1, dpg.mvKey_Left,
                              dpg.mvKey_Right, dpg.mvKey_Up, dpg.mvKey_Down, dpg.mvKey_Home]
        self.apply_theme()
        dpg.set_primary_window("main", True)

    def build_menu(self):
        dpg = self.dpg
        with dpg.menu_bar():
            with dpg.menu(label="File", tag="menu_file"):
                dpg.add_menu_item(label="Open network...", shortcut=MENU_GAP + "Ctrl+O", tag="menu_open",
                                  callback=lambda: self.panel("Network").open_dialog())
                dpg.add_menu_item(label="Open the default model", tag="menu_default",
                                  callback=lambda: self.panel("Network").open_default())
                dpg.add_menu_item(label="Save frame", shortcut=MENU_GAP + "Ctrl+S", tag="menu_save_frame",
                                  callback=self.save_frame)
                dpg.add_separator()
                dpg.add_menu_item(label="Save session...", tag="menu_save_session",
                                  callback=lambda: self.show_session_dialog("save"))
                dpg.add_menu_item(label="Load session...", tag="menu_load_session",
                                  callback=lambda: self.show_session_dialog("load"))
            with dpg.menu(label="Edit", tag="menu_edit"):
                dpg.add_menu_item(label="Undo", shortcut=MENU_GAP + "Ctrl+Z", tag="menu_undo", callback=self.undo)
                dpg.add_menu_item(label="Redo", shortcut=MENU_GAP + "Ctrl+Y", tag="menu_redo", callback=self.redo)
                dpg.add_menu_item(label="Reset all controls", shortcut=MENU_GAP + "Home", tag="menu_reset",
                                  callback=self.reset_all)
            self.build_view_menu()
            with dpg.menu(label="Help", tag="menu_help"):
                dpg.add_menu_item(label="Shortcuts", shortcut=MENU_GAP + "F1", tag="menu_shortcuts",
                                  callback=lambda: dpg.configure_item("help", show=True))
        from app.file_dialog import FileDialog

        FileDialog("session_save_dialog", "Save the session", [("Sessions (.json)", (".json",))], self.save_session,
                   "session", save=True, default_name="session.json", default_suffix=".json")
        FileDialog("session_load_dialog", "Load a session", [("Sessions (.json)", (".json",))], self.load_session,
                   "session")

    def build_view_menu(self):
        """View: how the picture is magnified (see app/texture.py, DISPLAY_FILTERS); remembered."""
        from app.settings import read_settings
        from app.texture import DISPLAY_FILTERS

        dpg = self.dpg
        self.display_filter = read_settings().get("display_filter")
        if self.display_filter not in DISPLAY_FILTERS:
            self.display_filter = "auto"
        with dpg.menu(label="View", tag="menu_view"):
            for mode, label in DISPLAY_FILTERS.items():
                dpg.add_menu_item(label=label, tag=f"display_{mode}", check=True, default_value=mode == self.display_filter,
                                  callback=lambda sender, value, mode: self.set_display_filter(mode), user_data=mode)

    def set_display_filter(self, mode):
        from app.settings import write_setting
        from app.texture import DISPLAY_FILTERS

        self.display_filter = mode
        for other in DISPLAY_FILTERS:
            self.dpg.set_value(f"display_{other}", other == mode)
        write_setting("display_filter", mode)
        self.set_status(f"display: {DISPLAY_FILTERS[mode].lower()}")

    def show_session_dialog(self, mode):
        from app.file_dialog import show_file_dialog

        show_file_dialog(f"session_{mode}_dialog")

    def reset_all(self):
        self.state.reset()
        self.sync_panels()
        self.set_status("all controls reset")

    def apply_theme(self):
        dpg = self.dpg
        with dpg.theme() as theme:
            with dpg.theme_component(dpg.mvAll):
                dpg.add_theme_style(dpg.mvStyleVar_FrameRounding, 4)
                dpg.add_theme_style(dpg.mvStyleVar_GrabRounding, 4)
                dpg.add_theme_style(dpg.mvStyleVar_ChildRounding, 6)
                dpg.add_theme_style(dpg.mvStyleVar_ItemSpacing, 8, 6)
                dpg.add_theme_color(dpg.mvThemeCol_WindowBg, (24, 26, 30))
                dpg.add_theme_color(dpg.mvThemeCol_ChildBg, (30, 33, 38))
                dpg.add_theme_color(dpg.mvThemeCol_Header, (52, 74, 110))
                dpg.add_theme_color(dpg.mvThemeCol_HeaderHovered, (66, 96, 140))
                # A slim, see-through handle: the value printed in the middle of a slider stays readable
                # when the handle sits on it (psi 1.0, gain 0 dB, translate 0, a blend weight 0.5).
                dpg.add_theme_style(dpg.mvStyleVar_GrabMinSize, 6)
                dpg.add_theme_color(dpg.mvThemeCol_SliderGrab, (110, 160, 230, 120))
                dpg.add_theme_color(dpg.mvThemeCol_SliderGrabActive, (150, 195, 255, 150))
                dpg.add_theme_color(dpg.mvThemeCol_CheckMark, (120, 190, 255))
            # Greyed-out controls (a cutoff that is off, StyleGAN3's noise) look it: dearpygui draws
            # disabled items like enabled ones unless told otherwise.
            for kind in (dpg.mvSliderFloat, dpg.mvSliderInt, dpg.mvInputInt, dpg.mvRadioButton, dpg.mvButton,
                         dpg.mvCheckbox, dpg.mvCombo):
                with dpg.theme_component(kind, enabled_state=False):
                    dpg.add_theme_color(dpg.mvThemeCol_Text, (105, 108, 116))
                    dpg.add_theme_color(dpg.mvThemeCol_SliderGrab, (70, 82, 98, 110))
                    dpg.add_theme_color(dpg.mvThemeCol_CheckMark, (80, 96, 114))
                    dpg.add_theme_color(dpg.mvThemeCol_FrameBg, (36, 38, 43))
        dpg.bind_theme(theme)
        with dpg.theme() as image_area_theme:
            with dpg.theme_component(dpg.mvAll):
                dpg.add_theme_color(dpg.mvThemeCol_ChildBg, (16, 17, 20))
                dpg.add_theme_style(dpg.mvStyleVar_WindowPadding, 0, 0)
        dpg.bind_item_theme("image_area", image_area_theme)

    # --- callbacks ------------------------------------------------------------------------------
    def on_right_click(self, sender, app_data, user_data=None):
        item = app_data[1] if isinstance(app_data, (list, tuple)) else app_data
        for panel in self.panels:
            if panel.reset_widget(item):
                panel.sync()
                return

    def text_input_active(self):
        from app.file_dialog import dialog_inputs

        return any(self.dpg.does_item_exist(t) and self.dpg.is_item_active(t)
                   for t in self.text_inputs + dialog_inputs())

    def poll_keys(self):
        """Shortcuts are read from the frame's key state, not from queued key callbacks: a queued
        callback runs a frame later, when a quick Ctrl+Z may already have let go of Ctrl."""
        dpg = self.dpg
        pressed = [key for key in self.shortcut_keys if dpg.is_key_pressed(key)]
        if not pressed:
            return
        ctrl = any(dpg.is_key_down(k) for k in (dpg.mvKey_LControl, dpg.mvKey_RControl, dpg.mvKey_ModCtrl))
        self.log.write("keys", keys=pressed, ctrl=ctrl)
        for key in pressed:
            self.on_key(key, ctrl)

    def on_key(self, key, ctrl):
        dpg = self.dpg
        if ctrl and key == dpg.mvKey_S:
            self.save_frame()
        elif ctrl and key == dpg.mvKey_O:
            self.panel("Network").open_dialog()
        elif key == dpg.mvKey_F1:
            dpg.configure_item("help", show=not dpg.is_item_shown("help"))
        elif self.text_input_active():
            return  # arrows, Home and Ctrl+Z/Y belong to the text field being edited
        elif ctrl and key == dpg.mvKey_Z:
            self.undo()
        elif ctrl and key == dpg.mvKey_Y:
            self.redo()
        elif key in (dpg.mvKey_Left, dpg.mvKey_Right):
            step = -1 if key == dpg.mvKey_Left else 1
            self.edit("seed_x", float(max(0, round(self.state["seed_x"]) + step)), coalesce=False)
            self.sync_panels()
        elif key in (dpg.mvKey_Up, dpg.mvKey_Down):
            step = -1 if key == dpg.mvKey_Up else 1
            self.edit("seed_y", float(max(0, round(self.state["seed_y"]) + step)), coalesce=False)
            self.sync_panels()
        elif key == dpg.mvKey_Home:
            self.reset_all()

    def panel(self, title):
        for panel in self.panels:
            if panel.title == title:
                return panel
        return None

    def save_frame(self):
        """Ctrl+S: the export panel's dialog when there is one, else a PNG and its session next to it."""
        export = self.panel("Export")
        if export is not None and hasattr(export, "save_frame"):
            export.save_frame()
            return
        frame = self.last_full_frame
        if frame is None:
            self.set_status("nothing to save yet", error=True)
            return
        from renderer.export import save_png

        from app.panels.export import default_folder, seed_name

        out_dir = Path(default_folder())
        path = out_dir / f"stylescope_{seed_name(frame.request)}_{time.strftime('%Y%m%d-%H%M%S')}.png"
        try:
            # The PNG carries its request: `run_app.py frame` can rebuild it exactly.
            save_png(frame, frame.request, path, model_path=frame.request.pkl)
        except (OSError, ValueError) as exc:  # a full disk, a read-only folder: say so, keep going
            self.set_status(f"could not save {path}: {exc}", error=True)
            return
        self.set_status(f"saved {path}")

    # --- sessions -------------------------------------------------------------------------------
    def save_session(self, path):
        """The session as the request JSON; a folder that is missing or read-only is one status line."""
        from app import bridge

        try:
            write_json_atomic(path, bridge.session_json(self.state, self.model_info))
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.set_status(f"session not saved: {path}: {reason}", error=True)
            return
        self.log.write("session_saved", path=str(path))
        self.set_status(f"saved session {path}")

    def load_session(self, path):
        """A session file is a RenderRequest JSON; a bad one leaves the state as it was."""
        from app import bridge

        try:
            notes, wanted = bridge.load_session_file(self.state, path, self.model_info)
        except (OSError, ValueError) as exc:  # size and nesting are bounded before parsing
            self.set_status(bridge.error_line(exc), error=True)
            return
        self.sync_panels()
        if wanted is not None and self.dpg.does_item_exist("net_path"):
            self.dpg.set_value("net_path", wanted)  # its Load button opens it, when the user chooses to
            self.set_status(notes[0], error=True)
            return
        self.set_status(f"loaded session {path}" + (f" ({'; '.join(notes)})" if notes else ""))

    # --- the loop --------------------------------------------------------------------------------
    def start_engine(self):
        from app import bridge

        self.engine = bridge.Engine(self.args, renderer=getattr(self.args, "renderer", None))
        pkl = getattr(self.args, "pkl", None)
        if pkl:
            # Adapting to the start-up network: the first file is no edit to undo.
            self.state.adjust({"pkl": str(Path(pkl).expanduser().resolve())})
            self.set_status(f"loading {pkl} ...")
        elif self.engine.has_default_model():
            self.set_status("loading the embedded default model ...")
        else:
            self.set_status("No network loaded: open a file in the Network panel (Ctrl+O)")
        start = getattr(self.args, "start_request", None)  # run_app.py's flags (--seed, --psi, ...)
        session = getattr(self.args, "session", None)
        if start is not None:
            import dataclasses

            self.state.load_request(dataclasses.replace(start, pkl=self.state["pkl"]))
            self.sync_panels()
        elif session:
            self.load_session(session)

    def can_render(self):
        return self.engine is not None and (self.state["pkl"] is not None or self.engine.has_default_model())

    def read_gl_info(self):
        try:
            from OpenGL.GL import GL_RENDERER, GL_VENDOR, glGetString

            self.gl_info = tuple((glGetString(k) or b"?").decode(errors="replace") for k in (GL_VENDOR, GL_RENDERER))
        except Exception as exc:  # no GL context or no PyOpenGL: show why, keep going
            self.gl_info = ("unavailable", f"{type(exc).__name__}")

    def tick(self, dt):
        from app.file_dialog import tick_dialogs

        self.poll_keys()
        tick_dialogs()
        for panel in self.panels:
            try:
                panel.tick()
            except Exception as exc:
                self.report_exception(panel.title, exc)
        self.handle_image_drag()
        self.animate(dt)
        self.submit_if_changed()
        self.poll_frame()
        self.layout_image()

    def handle_image_drag(self):
        dpg = self.dpg
        down = dpg.is_mouse_button_down(dpg.mvMouseButton_Left)
        pos = dpg.get_mouse_pos(local=False)
        if self.image_tool_active:  # a tool over the image (the Drag panel's) takes the clicks
            self.seed_drag = None
        elif down and not self.mouse_was_down and (dpg.is_item_hovered("image") or self.grid_overlay.hovered()):
            self.seed_drag = (pos, self.state["seed_x"], self.state["seed_y"])
        elif down and self.seed_drag:
            (x0, y0), sx, sy = self.seed_drag
            # Seeds start at 0 (the seed field shows x + 100 y): the plane stops at its edges.
            x = max(0.0, round(sx + (pos[0] - x0) / SEED_PIXELS, 3))
            y = max(0.0, round(sy + (pos[1] - y0) / SEED_PIXELS, 3))
            if (x, y) != (self.state["seed_x"], self.state["seed_y"]):
                self.edit_many({"seed_x": x, "seed_y": y})
                self.panel("Latent").sync()
        elif not down:
            self.seed_drag = None
        self.mouse_was_down = down

    def animate(self, dt):
        if self.state["animate"] and self.state["animate_speed"] > 0:
            # Animation moves the seed without filling the undo history (and walks the seeds, not a loaded vector).
            self.state.adjust({"seed_x": round(self.state["seed_x"] + self.state["animate_speed"] * dt, 4),
                               "latent": None})
            self.panel("Latent").sync()

    def submit_if_changed(self):
        """Send the state to the worker when it changed. While a slider moves each new request
        cancels the one in flight; on a slow device the worker shows a preview of each first,
        so the picture keeps moving, and the last request's full frame follows when the hand stops."""
        if not self.can_render() or self.state.version == self.submitted:
            return
        self.submitted = self.state.version
        # The last render time and size describe the network on screen, not one about to be opened.
        same = bool(self.model_info) and self.model_info.get("pkl") == self.state["pkl"]
        self.engine.set_preview(self.state["preview"], self.render_ms if same else None,
                                self.model_info.get("img_resolution") if same else None)
        try:
            self.engine.submit(self.state)
        except Exception as exc:  # a value the request refuses: say which, keep the window
            self.report_exception("request", exc)

    def poll_frame(self):
        if self.engine is None:
            return
        frame = self.engine.new_frame()
        if frame is None:
            return
        from app import bridge

        error = bridge.frame_error(frame)
        if error:
            self.on_render_error(frame, error)
            return
        image = bridge.frame_image(frame)
        if image is None:
            return
        old = self.texture.show(image)
        if self.texture.uploads == 1:
            self.dpg.configure_item("image", show=True)
            self.dpg.configure_item("welcome", show=False)
        if old is not None:
            self.dpg.configure_item("image", texture_tag=self.texture.tag)
            self.dpg.delete_item(old)
        self.last_frame = frame
        if not bridge.frame_is_preview(frame):
            self.last_full_frame = frame
            # Previews are decided by the cost of a whole pass: a cached fine-layer re-render or a
            # recalled recent frame is quick, but the next coarse change is not.
            if not getattr(frame, "reused_blocks", 0) and not getattr(frame, "recalled", False):
                self.render_ms = bridge.frame_render_ms(frame)
        info = bridge.model_info(self.engine, frame)
        if info and "layers" not in info and info.get("pkl") == self.model_info.get("pkl"):
            info["layers"] = self.model_info.get("layers", [])  # previews carry no layer list
            info["noise_layers"] = self.model_info.get("noise_layers", [])
        if info and info != self.model_info:
            if info.get("pkl") != self.model_info.get("pkl") and bridge.frame_is_preview(frame):
                self.render_ms = None  # the network's first preview: its render time is yet to come
            self.model_info = info
            self.last_good_pkl = info.get("pkl")
            for panel in self.panels:
                panel.on_model(info)
                self.dpg.configure_item(panel.header, show=panel.visible_for(info))
            self.set_status(f"loaded {info.get('pkl') or 'the embedded default model'}")
        if info and not bridge.frame_is_preview(frame) and info.get("pkl") != self.preview_prepared_for:
            self.preview_prepared_for = info.get("pkl")  # once per network: its first full frame
            if self.engine.prepare_for_drags(self.state, self.render_ms, info.get("img_resolution")) and self.log:
                self.log.write("prepare_for_drags", pkl=info.get("pkl"))
        if self.render_error_shown and not bridge.frame_is_preview(frame):
            self.render_error_shown = False  # the picture is good again: the old error no longer applies
            self.set_status(f"rendered in {self.render_ms:.0f} ms" if self.render_ms else "ready")
        for panel in self.panels:
            panel.on_frame(frame)
        if self.log:
            self.log_frame(frame)

    def show_pixels(self, image):
        """Show an image that is no render of the state (a drag's frames); the next frame replaces it."""
        old = self.texture.show(image)
        if old is not None:
            self.dpg.configure_item("image", texture_tag=self.texture.tag)
            self.dpg.delete_item(old)
        if self.log:
            from PIL import Image

            self.frames_logged += 1
            shown = self.log.path.with_name(f"{self.log.path.stem}_frame{self.frames_logged:04d}.png")
            Image.fromarray(self.texture.shown_pixels()).save(shown)
            self.log.write("pixels", shown_copy=str(shown))

    def on_render_error(self, frame, error):
        from app import bridge

        failed_pkl = bridge.frame_pkl(frame)
        if failed_pkl != self.last_good_pkl and failed_pkl == self.state["pkl"] and self.model_info:
            # A file that fails to load leaves the current model (and its picture, vectors) in place.
            self.state.restore_previous_network(self.last_good_pkl)
            self.sync_panels()
        self.set_status(error, error=True)
        self.render_error_shown = failed_pkl == self.last_good_pkl  # an error of this model's view, not a load

    def log_frame(self, frame):
        from app import bridge

        from PIL import Image

        self.frames_logged += 1
        shown = self.log.path.with_name(f"{self.log.path.stem}_frame{self.frames_logged:04d}.png")
        pixels = self.texture.shown_pixels()
        Image.fromarray(pixels).save(shown)
        self.log.write("frame", request=bridge.frame_request_json(frame), preview=bridge.frame_is_preview(frame),
                       shape=list(pixels.shape), shown_copy=str(shown), reused=getattr(frame, "reused_blocks", 0),
                       recalled=getattr(frame, "recalled", False))
        self.rects_due = self.frames_drawn + 3  # once the new picture is laid out

    def layout_image(self):
        """Integer zoom when the image fits the area, otherwise scaled down; centred."""
        from app.texture import fit_size, wants_nearest

        dpg = self.dpg
        area_w, area_h = dpg.get_item_rect_size("image_area")
        if area_w <= 0 or area_h <= 0:
            return
        w, h = fit_size(self.texture.width, self.texture.height, area_w - 16, area_h - 16)
        if (w, h) != self.image_size:
            self.image_size = (w, h)
            dpg.configure_item("image", width=w, height=h)
        pos = [max(0, (area_w - w) // 2), max(0, (area_h - h) // 2)]
        dpg.set_item_pos("image", pos)
        self.texture.set_nearest(wants_nearest(self.display_filter, w / max(1, self.texture.width)))
        self.grid_overlay.place(self.last_frame, (area_w, area_h), (w, h))
        if self.frames_drawn % 15 == 0:  # text changes are not free under a software renderer
            self.update_caption(w)

    def update_caption(self, shown_width):
        """The right end of the status line: what the picture is, its zoom and the render time."""
        dpg = self.dpg
        parts = []
        frame = self.last_frame
        if frame is not None:
            request = frame.request
            if request.layer:
                view = {"rgb": f"channels {request.channel}-{request.channel + 2}", "one": f"channel {request.channel}",
                        "grid": f"{request.grid_channels} channels from {request.channel}"}[request.channel_mode]
                parts.append(f"{request.layer}: {view}{' (FFT)' if request.fft else ''}")
            parts.append(f"{self.texture.width}x{self.texture.height}")
            zoom = shown_width / max(1, self.texture.width)
            parts.append(f"zoom {zoom:.0f}x" if zoom >= 1 and zoom.is_integer() else f"scaled {zoom:.2f}")
            if frame.preview:
                parts.append("preview")
            if self.render_ms is not None:
                parts.append(f"render {self.render_ms:.0f} ms")
        text = "   ·   ".join(parts)
        if text != dpg.get_value("image_caption"):
            dpg.set_value("image_caption", text)
            self.fit_status()

    def fit_status(self):
        """The status line keeps its place: its text is cut with an ellipsis to the room left of the
        caption (the whole line is in its tooltip), and the caption stays right-aligned."""
        dpg = self.dpg
        caption = dpg.get_value("image_caption") or ""
        width = dpg.get_viewport_client_width() if self.frames_drawn else VIEWPORT_W
        room = max(8, (width - 40 - CHAR_PX * (len(caption) + 3)) // CHAR_PX)
        text = self.status_text
        shown = text if len(text) <= room else text[:room - 1] + "…"
        dpg.set_value("status", shown)
        dpg.configure_item("status_gap", width=max(16, int(width - 40 - CHAR_PX * (len(shown) + len(caption)))))

    def log_rects(self):
        """Where every control is on screen (and which are greyed out), so the tests can click it instead of
        guessing pixels."""
        dpg = self.dpg
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
        for panel in self.panels:
            extra.update(getattr(panel, "test_geometry", lambda: {})())
        # Which folding items are open (panel headers, tree nodes), so that a test can wait for its click to land.
        opened = {alias: bool(dpg.get_value(alias)) for alias in rects
                  if alias.startswith("header_") or alias.endswith("_node")}
        self.log.write("rects", rects=rects, disabled=disabled, geometry=extra, opened=opened,
                       viewport=[dpg.get_viewport_width(), dpg.get_viewport_height()],
                       viewport_pos=list(dpg.get_viewport_pos()), pkl=self.state["pkl"], values=self.state.to_json_dict())

    def run_callbacks(self):
        """Run queued callbacks on this thread, each guarded: one failing control never stops the app."""
        for job in self.dpg.get_callback_queue() or []:
            callback = job[0]
            if callback is None:
                continue
            try:
                callback(*job[1:1 + positional_count(callback)])
            except Exception as exc:
                self.report_exception("callback", exc)

    def step(self):
        """One UI frame: queued callbacks, the app's own work, then dearpygui draws.
        Returns the seconds spent before drawing (the app's share of the frame)."""
        start = time.perf_counter()
        dt, self.last_step = start - self.last_step, start
        self.frame_times.append(dt)
        self.run_callbacks()
        try:
            self.tick(dt)
        except Exception as exc:
            self.report_exception("frame", exc)
        work = time.perf_counter() - start
        self.dpg.render_dearpygui_frame()
        self.frames_drawn += 1
        if self.frames_drawn == 3:
            self.read_gl_info()  # the GL context is current on this thread between frames
        if self.texture.crisp_pending and self.frames_drawn >= 3:
            self.texture.make_crisp()
        if self.log and (self.frames_drawn == self.rects_due or (self.frames_drawn % 10 == 0 and self.layout_changed())):
            self.log_rects()
        return work

    def loop(self):
        self.last_step = time.perf_counter()
        while self.dpg.is_dearpygui_running():
            started = time.perf_counter()
            self.step()
            if self.idle_for() > IDLE_AFTER_SECONDS:
                # Nobody is touching the window. With nothing left to come from the background either,
                # the next frame waits for input (a mouse move, a key, the window manager): an idle
                # window draws nothing. While a render or an export runs, frames come at IDLE_FPS.
                if self.log and self.layout_changed():
                    self.log_rects()  # the tests' map of the window, before it may wait
                self.wait_for_input(not self.background_busy())
                if not self.waiting_for_input:
                    time.sleep(max(0.0, 1 / IDLE_FPS - (time.perf_counter() - started)))
            else:
                self.wait_for_input(False)

    def wait_for_input(self, wait):
        if wait == self.waiting_for_input or os.environ.get("STYLESCOPE_NO_INPUT_WAIT"):  # (the bench's baseline)
            return
        self.dpg.configure_app(wait_for_input=wait)
        self.waiting_for_input = wait
        self.log.write("wait_for_input", on=wait)

    def background_busy(self):
        """Whether something may change the picture or a panel without input: a request not sent,
        a render or a worker call in flight, a frame not shown yet, a panel's job (an export)."""
        engine = self.engine
        if engine is not None and not engine.idle():
            return True
        if self.can_render() and self.state.version != self.submitted:
            return True
        if self.log and self.rects_due >= self.frames_drawn:
            return True  # the tests' map of the window is due after a new picture
        return any(panel.busy() for panel in self.panels)

    def idle_for(self):
        """Seconds since the last sign of life: mouse moved or held, a key, an edit, a new frame, animation."""
        dpg = self.dpg
        now = time.perf_counter()
        mouse = tuple(dpg.get_mouse_pos(local=False))
        activity = (mouse, self.state.version, self.texture.uploads, self.state["animate"])
        if (activity != self.last_activity or dpg.is_mouse_button_down(dpg.mvMouseButton_Left)
                or dpg.is_mouse_button_down(dpg.mvMouseButton_Right) or self.state["animate"]
                or self.text_input_active()):  # typing: keep every keystroke prompt
            self.last_activity = activity
            self.last_active_at = now
        return now - self.last_active_at

    def layout_changed(self):
        key = (self.image_size, tuple(sorted((p.title, self.dpg.get_value(p.header)) for p in self.panels)),
               self.texture.width, len(self.model_info),
               tuple(p.layout_state() for p in self.panels if hasattr(p, "layout_state")), shown_dialogs(),
               self.status_text)
        changed = key != getattr(self, "_layout_key", None)
        self._layout_key = key
        return changed

    def close(self):
        for panel in self.panels:  # panels with threads of their own (exports) stop them here
            closer = getattr(panel, "close", None)
            if callable(closer):
                try:
                    closer()
                except Exception as exc:
                    self.log.write("exception", where=f"closing {panel.title}", traceback=repr(exc))
        if self.engine is not None:
            self.engine.close()
            self.engine = None


def shown_dialogs():
    from app.file_dialog import DIALOGS

    return tuple(tag for tag in DIALOGS if DIALOGS[tag].listed)


def positional_count(callback, most=3):
    """How many of (sender, app_data, user_data) a callback takes, as dearpygui itself decides."""
    try:
        params = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):
        return most
    count = 0
    for param in params:
        if param.kind == param.VAR_POSITIONAL:
            return most
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            count += 1
    return min(count, most)


def run_app(args) -> int:
    """Open the explorer window and run until it is closed. Returns the process exit code."""
    from app.window_probe import window_problem

    problem = display_problem() or window_problem()
    if problem:
        print(f"stylescope: {problem}", file=sys.stderr)
        return 2
    import dearpygui.dearpygui as dpg

    dpg.create_context()
    app = None
    try:
        dpg.configure_app(manual_callback_management=True)
        app = App(args, dpg)
        app.build()
        dpg.create_viewport(title="StyleScope", width=VIEWPORT_W, height=VIEWPORT_H, x_pos=0, y_pos=0)
        dpg.setup_dearpygui()
        dpg.show_viewport()
        app.start_engine()
        app.log.write("started", pid=os.getpid())
        app.loop()
        app.log.write("closing")
        return 0
    finally:
        if app is not None:
            app.close()  # a torch thread still running at exit aborts the process
        dpg.destroy_context()


def main(argv=None):
    """`python -m app.main --pkl FILE`: the window alone (run_app.py is the full command line)."""
    import argparse

    parser = argparse.ArgumentParser(description="StyleScope explorer window")
    parser.add_argument("--pkl", help="network file (default: the embedded default model)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--session", help="a session JSON (a RenderRequest) to start from")
    return run_app(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
