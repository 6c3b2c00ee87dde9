"""Panel: the small base every panel shares (one collapsing header, controls bound to ExplorerState values),
and PanelContext, the part of the window a panel is given."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import dearpygui.dearpygui as dpg

from app import controls
from app.bridge import Engine
from app.picture import Picture
from app.state import ExplorerState


@dataclass(eq=False)
class PanelContext:
    """What a panel may use of the window; engine and model_info change as the window runs."""

    state: ExplorerState
    edit: Callable  # edit(name, value, coalesce=True): one change, undoable
    edit_many: Callable  # edit_many({name: value}, coalesce=True)
    set_status: Callable  # set_status(text, error=False): the status line
    report_exception: Callable  # report_exception(where, exc): a bug as one status line
    sync_panels: Callable  # every panel's widgets from the state, after a change no widget made
    panel: Callable  # panel(title): another panel (the Export panel's folder and jobs), or None
    show_session_dialog: Callable  # show_session_dialog("save" or "load")
    picture: Picture  # the texture, the frames shown, show_pixels, tool_active
    reset_handlers: int | str  # the right-click handler every bound control gets
    note: Callable = lambda event, **data: None  # an event for the window's observer (the tests' log)
    text_inputs: list = field(default_factory=list)  # text fields: keys typed there are no shortcuts
    engine: Engine | None = None  # once started: the one door to renderer/
    model_info: dict = field(default_factory=dict)  # the loaded network's summary (bridge.model_info)


class Panel:
    """A collapsing header of controls. Each control is bound to one state value by name.

    Controls write through ctx.edit(); after undo, redo or a loaded session the window calls
    sync(), which puts every bound value back into its widget (set_value fires no callback).
    Right-click on a bound control resets it to its default, as in pyviewer.
    """

    title = "Panel"
    default_open = True

    def __init__(self, ctx):
        self.ctx = ctx
        self.header = None
        self.bound = {}  # widget tag -> (state name, to_widget, from_widget)

    # --- lifecycle, overridden by panels -------------------------------------------------
    def build(self):
        """Create the widgets (inside the current container)."""

    def on_model(self, info):
        """A new network is loaded; info is its summary (ctx.model_info)."""

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
                dpg.set_value(tag, to_widget(self.ctx.state[name]))

    def control(self, name, **kwargs):
        """The widget a value is declared with (app/controls.py), bound to it."""
        return controls.add(self, name, **kwargs)

    def bind(self, tag, name, to_widget=lambda v: v, from_widget=lambda v: v):
        return controls.bind(self, tag, name, to_widget, from_widget)

    def on_widget(self, sender, value, user_data=None):
        name, _, from_widget = self.bound[sender]
        self.ctx.edit(name, from_widget(value))

    def reset_widget(self, tag):
        """Right-click: put the bound value back to its declared default."""
        return controls.reset(self, tag)
