"""Panel: the small base every panel shares (one collapsing header, controls bound to ExplorerState values)."""

from pathlib import Path

import dearpygui.dearpygui as dpg

from app import controls


class Panel:
    """A collapsing header of controls. Each control is bound to one state value by name.

    Controls write through app.edit(); after undo, redo or a loaded session the app calls
    sync(), which puts every bound value back into its widget (set_value fires no callback).
    Right-click on a bound control resets it to its default, as in pyviewer.
    """

    title = "Panel"
    default_open = True

    def __init__(self, app):
        self.app = app
        self.header = None
        self.bound = {}  # widget tag -> (state name, to_widget, from_widget)

    # --- lifecycle, overridden by panels -------------------------------------------------
    def build(self):
        """Create the widgets (inside the current container)."""

    def on_model(self, info):
        """A new network is loaded; info is the app's model summary dict."""

    def on_frame(self, frame):
        """A new frame reached the screen."""

    def tick(self):
        """Called once per UI frame, for panels that watch the mouse or animate."""

    def busy(self):
        """Whether work of this panel runs in the background (the window then keeps drawing)."""
        return False

    def visible_for(self, info):
        """Whether the panel applies to the loaded network."""
        return True

    # --- helpers ----------------------------------------------------------------------------
    @staticmethod
    def add_file_dialog(tag, extensions, callback, title="Open a file", kind="Files", purpose=None):
        """A hidden modal file dialog (app/file_dialog.py) whose first filter lists all of `extensions`
        together (then any file); callback(sender, app_data) as dearpygui's, app_data holding
        'file_path_name' and 'selections'. Show it with app.file_dialog.show_file_dialog(tag)."""
        from app.file_dialog import FileDialog

        def chosen(path):
            callback(tag, {"file_path_name": path, "file_name": Path(path).name, "current_path": str(Path(path).parent),
                           "selections": {Path(path).name: path}})

        label = f"{kind} ({' '.join(extensions)})"
        return FileDialog(tag, title, [(label, tuple(e.lower() for e in extensions))], chosen, purpose or tag)

    @staticmethod
    def dialog_path(app_data):
        """The file a dearpygui file dialog's callback was given: the selected one, else the typed name."""
        selections = list((app_data or {}).get("selections", {}).values())
        return selections[0] if selections else (app_data or {}).get("file_path_name")

    def build_header(self, parent):
        self.header = dpg.add_collapsing_header(label=self.title, parent=parent, default_open=self.default_open,
                                                tag=f"header_{type(self).__name__}")
        dpg.push_container_stack(self.header)
        try:
            self.build()
        finally:
            dpg.pop_container_stack()
        return self.header

    def sync(self):
        for tag, (name, to_widget, _) in self.bound.items():
            if dpg.does_item_exist(tag):
                dpg.set_value(tag, to_widget(self.app.state[name]))

    def control(self, name, **kwargs):
        """The widget a value is declared with (app/controls.py), bound to it."""
        return controls.add(self, name, **kwargs)

    def bind(self, tag, name, to_widget=lambda v: v, from_widget=lambda v: v):
        return controls.bind(self, tag, name, to_widget, from_widget)

    def on_widget(self, sender, value, user_data=None):
        name, _, from_widget = self.bound[sender]
        self.app.edit(name, from_widget(value))

    def reset_widget(self, tag):
        """Right-click: put the bound value back to its declared default."""
        return controls.reset(self, tag)
