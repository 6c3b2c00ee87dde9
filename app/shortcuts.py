"""Keyboard shortcuts, right-click reset, and dragging on the image to move through seed space."""

SEED_PIXELS = 120  # dragging this many pixels on the image moves one seed
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


class Shortcuts:
    """Reads the keys and the mouse once per UI frame and turns them into edits of the window's state."""

    def __init__(self, window):
        self.window = window
        dpg = window.dpg
        self.keys = [dpg.mvKey_Z, dpg.mvKey_Y, dpg.mvKey_S, dpg.mvKey_O, dpg.mvKey_F1, dpg.mvKey_Left,
                     dpg.mvKey_Right, dpg.mvKey_Up, dpg.mvKey_Down, dpg.mvKey_Home]
        self.mouse_was_down = False
        self.seed_drag = None  # (mouse position, seed_x, seed_y) where a drag on the image started

    def on_right_click(self, sender, app_data, user_data=None):
        item = app_data[1] if isinstance(app_data, (list, tuple)) else app_data
        for panel in self.window.panels:
            if panel.reset_widget(item):
                panel.sync()
                return

    def text_input_active(self):
        from app.file_dialog import dialog_inputs

        dpg = self.window.dpg
        return any(dpg.does_item_exist(t) and dpg.is_item_active(t) for t in self.window.ctx.text_inputs + dialog_inputs())

    def poll_keys(self):
        """Shortcuts are read from the frame's key state, not from queued key callbacks: a queued
        callback runs a frame later, when a quick Ctrl+Z may already have let go of Ctrl."""
        dpg = self.window.dpg
        pressed = [key for key in self.keys if dpg.is_key_pressed(key)]
        if not pressed:
            return
        ctrl = any(dpg.is_key_down(k) for k in (dpg.mvKey_LControl, dpg.mvKey_RControl, dpg.mvKey_ModCtrl))
        self.window.observer.note("keys", keys=pressed, ctrl=ctrl)
        for key in pressed:
            self.on_key(key, ctrl)

    def on_key(self, key, ctrl):
        window, dpg = self.window, self.window.dpg
        if ctrl and key == dpg.mvKey_S:
            window.sessions.save_frame()
        elif ctrl and key == dpg.mvKey_O:
            window.panel("Network").open_dialog()
        elif key == dpg.mvKey_F1:
            dpg.configure_item("help", show=not dpg.is_item_shown("help"))
        elif self.text_input_active():
            return  # arrows, Home and Ctrl+Z/Y belong to the text field being edited
        elif ctrl and key == dpg.mvKey_Z:
            window.undo()
        elif ctrl and key == dpg.mvKey_Y:
            window.redo()
        elif key in (dpg.mvKey_Left, dpg.mvKey_Right):
            step = -1 if key == dpg.mvKey_Left else 1
            window.edit("seed_x", float(max(0, round(window.state["seed_x"]) + step)), coalesce=False)
            window.sync_panels()
        elif key in (dpg.mvKey_Up, dpg.mvKey_Down):
            step = -1 if key == dpg.mvKey_Up else 1
            window.edit("seed_y", float(max(0, round(window.state["seed_y"]) + step)), coalesce=False)
            window.sync_panels()
        elif key == dpg.mvKey_Home:
            window.reset_all()

    def handle_image_drag(self):
        window, dpg = self.window, self.window.dpg
        state = window.state
        down = dpg.is_mouse_button_down(dpg.mvMouseButton_Left)
        pos = dpg.get_mouse_pos(local=False)
        if window.picture.tool_active:  # a tool over the image (the Drag panel's) takes the clicks
            self.seed_drag = None
        elif down and not self.mouse_was_down and (dpg.is_item_hovered("image") or window.grid_overlay.hovered()):
            self.seed_drag = (pos, state["seed_x"], state["seed_y"])
        elif down and self.seed_drag:
            (x0, y0), sx, sy = self.seed_drag
            # Seeds start at 0 (the seed field shows x + 100 y): the plane stops at its edges.
            x = max(0.0, round(sx + (pos[0] - x0) / SEED_PIXELS, 3))
            y = max(0.0, round(sy + (pos[1] - y0) / SEED_PIXELS, 3))
            if (x, y) != (state["seed_x"], state["seed_y"]):
                window.edit_many({"seed_x": x, "seed_y": y})
                window.panel("Latent").sync()
        elif not down:
            self.seed_drag = None
        self.mouse_was_down = down
