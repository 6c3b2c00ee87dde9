"""The explorer window: its layout (image area, panel list, status line, menus, help), its edits and status line."""

import traceback

from app.frame_loop import FrameLoop
from app.observer import installed_observer
from app.sessions import Sessions
from app.shortcuts import SHORTCUTS, Shortcuts
from app.state import ExplorerState

VIEWPORT_W, VIEWPORT_H = 1440, 920
PANEL_W = 430
STATUS_H = 26
CHAR_PX = 7  # the default font's advance: its glyphs are all this wide
MENU_GAP = "    "  # before a menu item's shortcut: ImGui sets it right beside the longest label


class Window:
    """Owns the state, the panels and their PanelContext; frames (app/frame_loop.py) runs it,
    shortcuts (app/shortcuts.py) reads keys and the mouse, sessions (app/sessions.py) saves and loads."""

    def __init__(self, args, dpg):
        self.dpg = dpg
        self.args = args
        self.state = ExplorerState()
        self.observer = installed_observer()
        self.panels = []
        self.ctx = None  # the panels' PanelContext, made in build()
        self.picture = None
        self.status_text = ""
        self.display_filter = "auto"
        self.image_size = (0, 0)
        self.grid_overlay = None  # channel-grid labels over the image, made in build()
        self.frames = FrameLoop(self)
        self.shortcuts = Shortcuts(self)
        self.sessions = Sessions(self)

    # --- edits ----------------------------------------------------------------------------------
    def edit(self, name, value, coalesce=True):
        """Every control lands here: one value into the state (undo-able)."""
        if self.state.set(name, value, coalesce=coalesce):
            self.observer.note("edit", name=name, value=value)

    def edit_many(self, changes, coalesce=True):
        if self.state.update(changes, coalesce=coalesce):
            self.observer.note("edit", changes=changes)

    def undo(self):
        if self.state.undo():
            self.sync_panels()
            self.set_status("undo")

    def redo(self):
        if self.state.redo():
            self.sync_panels()
            self.set_status("redo")

    def reset_all(self):
        self.state.reset()
        self.sync_panels()
        self.set_status("all controls reset")

    def sync_panels(self):
        for panel in self.panels:
            panel.sync()

    def panel(self, title):
        for panel in self.panels:
            if panel.title == title:
                return panel
        return None

    # --- the status line ------------------------------------------------------------------------
    def set_status(self, text, error=False):
        from app.bridge import clean_line

        text = clean_line(text)  # one line: control characters from a file escaped, long names cut
        self.status_text = text
        dpg = self.dpg
        if dpg.does_item_exist("status"):
            dpg.set_value("status_full", text)  # the tooltip: the whole line
            dpg.configure_item("status", color=(255, 110, 100) if error else (190, 190, 190))
            self.fit_status()
        self.observer.note("status", text=text, error=error)
        if error:
            self.observer.note("error", message=text)

    def report_exception(self, where, exc):
        """Errors never close the window: one line in the status bar, the traceback in the log."""
        message = f"{where}: {type(exc).__name__}: {exc}".splitlines()[0]
        self.set_status(message, error=True)
        self.observer.note("exception", where=where, traceback=traceback.format_exc())
        traceback.print_exc()  # a bug: the details go to the terminal too

    def fit_status(self):
        """The status line keeps its place: its text is cut with an ellipsis to the room left of the
        caption (the whole line is in its tooltip), and the caption stays right-aligned."""
        dpg = self.dpg
        caption = dpg.get_value("image_caption") or ""
        width = dpg.get_viewport_client_width() if self.frames.frames_drawn else VIEWPORT_W
        room = max(8, (width - 40 - CHAR_PX * (len(caption) + 3)) // CHAR_PX)
        text = self.status_text
        shown = text if len(text) <= room else text[:room - 1] + "…"
        dpg.set_value("status", shown)
        dpg.configure_item("status_gap", width=max(16, int(width - 40 - CHAR_PX * (len(shown) + len(caption)))))

    def update_caption(self, shown_width):
        """The right end of the status line: what the picture is, its zoom and the render time."""
        dpg, texture = self.dpg, self.picture.texture
        parts = []
        frame = self.picture.last_frame
        if frame is not None:
            request = frame.request
            if request.layer:
                view = {"rgb": f"channels {request.channel}-{request.channel + 2}", "one": f"channel {request.channel}",
                        "grid": f"{request.grid_channels} channels from {request.channel}"}[request.channel_mode]
                parts.append(f"{request.layer}: {view}{' (FFT)' if request.fft else ''}")
            parts.append(f"{texture.width}x{texture.height}")
            zoom = shown_width / max(1, texture.width)
            parts.append(f"zoom {zoom:.0f}x" if zoom >= 1 and zoom.is_integer() else f"scaled {zoom:.2f}")
            if frame.preview:
                parts.append("preview")
            if self.picture.render_ms is not None:
                parts.append(f"render {self.picture.render_ms:.0f} ms")
        text = "   ·   ".join(parts)
        if text != dpg.get_value("image_caption"):
            dpg.set_value("image_caption", text)
            self.fit_status()

    def layout_image(self):
        """Integer zoom when the image fits the area, otherwise scaled down; centred."""
        from app.texture import fit_size, wants_nearest

        dpg, texture = self.dpg, self.picture.texture
        area_w, area_h = dpg.get_item_rect_size("image_area")
        if area_w <= 0 or area_h <= 0:
            return
        w, h = fit_size(texture.width, texture.height, area_w - 16, area_h - 16)
        if (w, h) != self.image_size:
            self.image_size = (w, h)
            dpg.configure_item("image", width=w, height=h)
        pos = [max(0, (area_w - w) // 2), max(0, (area_h - h) // 2)]
        dpg.set_item_pos("image", pos)
        texture.set_nearest(wants_nearest(self.display_filter, w / max(1, texture.width)))
        self.grid_overlay.place(self.picture.last_frame, (area_w, area_h), (w, h))
        if self.frames.frames_drawn % 15 == 0:  # text changes are not free under a software renderer
            self.update_caption(w)

    # --- building the window --------------------------------------------------------------------
    def build(self):
        from app import file_dialog
        from app.grid_overlay import GridOverlay
        from app.panels import make_panels
        from app.panels.base import PanelContext
        from app.picture import Picture
        from app.theme import apply_theme

        dpg = self.dpg
        file_dialog.LOG[0] = self.observer.note
        self.picture = Picture(dpg, dpg.add_texture_registry(), on_pixels=lambda: self.observer.pixels_shown(self))
        with dpg.item_handler_registry() as reset_handlers:
            dpg.add_item_clicked_handler(button=dpg.mvMouseButton_Right, callback=self.shortcuts.on_right_click)
        self.ctx = PanelContext(state=self.state, edit=self.edit, edit_many=self.edit_many, set_status=self.set_status,
                                report_exception=self.report_exception, sync_panels=self.sync_panels,
                                panel=self.panel, show_session_dialog=self.sessions.show_dialog, picture=self.picture,
                                reset_handlers=reset_handlers, note=self.observer.note)

        with dpg.window(tag="main", no_scrollbar=True, menubar=True):
            self.build_menu()
            with dpg.group(horizontal=True):
                with dpg.child_window(tag="image_area", width=-PANEL_W, height=-STATUS_H, border=False,
                                      no_scrollbar=True):
                    dpg.add_image(self.picture.texture.tag, tag="image", width=512, height=512, pos=(0, 0), show=False)
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
                    self.panels = make_panels(self.ctx)
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
        apply_theme(dpg)
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
                                  callback=self.sessions.save_frame)
                dpg.add_separator()
                dpg.add_menu_item(label="Save session...", tag="menu_save_session",
                                  callback=lambda: self.sessions.show_dialog("save"))
                dpg.add_menu_item(label="Load session...", tag="menu_load_session",
                                  callback=lambda: self.sessions.show_dialog("load"))
            with dpg.menu(label="Edit", tag="menu_edit"):
                dpg.add_menu_item(label="Undo", shortcut=MENU_GAP + "Ctrl+Z", tag="menu_undo", callback=self.undo)
                dpg.add_menu_item(label="Redo", shortcut=MENU_GAP + "Ctrl+Y", tag="menu_redo", callback=self.redo)
                dpg.add_menu_item(label="Reset all controls", shortcut=MENU_GAP + "Home", tag="menu_reset",
                                  callback=self.reset_all)
            self.build_view_menu()
            with dpg.menu(label="Help", tag="menu_help"):
                dpg.add_menu_item(label="Shortcuts", shortcut=MENU_GAP + "F1", tag="menu_shortcuts",
                                  callback=lambda: dpg.configure_item("help", show=True))
        self.sessions.build_dialogs()

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

    # --- engine ---------------------------------------------------------------------------------
    def start_engine(self):
        """The engine door (app/bridge.py) and the state the window opens with (app/sessions.py)."""
        from app import bridge

        self.ctx.engine = bridge.Engine(self.args, renderer=getattr(self.args, "renderer", None))
        self.observer.engine_started(self.ctx.engine)
        self.sessions.start(self.args)

    def close(self):
        for panel in self.panels:  # panels with threads of their own (exports) stop them here
            closer = getattr(panel, "close", None)
            if callable(closer):
                try:
                    closer()
                except Exception as exc:
                    self.observer.note("exception", where=f"closing {panel.title}", traceback=repr(exc))
        if self.ctx is not None and self.ctx.engine is not None:
            self.ctx.engine.close()
            self.ctx.engine = None
