"""FileDialog: the window's own file chooser (titled, typed full paths, one filter for several extensions, MB sizes)."""

from pathlib import Path

import dearpygui.dearpygui as dpg

from app.settings import last_folder, remember_folder

MAX_ENTRIES = 2000  # a folder of a million files lists its first ones, sorted
UP = ".."
DIALOGS = {}  # tag -> FileDialog, for show_file_dialog and the per-frame refresh
LOG = [None]  # the app's test-log writer (GUI tests read where a dialog opened)


def human_size(size):
    """Bytes in decimal units, as file managers show them: '812 B', '12.3 KB', '1.4 MB', '2.1 GB'."""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def resolve_typed(folder, name):
    """The path a typed name means: a full path (or ~/...) as it is, else a name in `folder`."""
    typed = Path(name.strip()).expanduser()
    return typed if typed.is_absolute() else Path(folder) / typed


def list_folder(folder, extensions):
    """(label, path, is_folder) entries of a folder: '..' first, then folders, then the files whose
    suffix is in extensions (all files when extensions is empty); hidden ones left out."""
    entries = [(f"{UP}/", Path(folder).parent, True)]
    try:
        children = sorted(Path(folder).iterdir(), key=lambda p: p.name.lower())
    except OSError:
        return entries
    folders, files = [], []
    for child in children[:MAX_ENTRIES]:
        if child.name.startswith("."):
            continue
        try:
            if child.is_dir():
                folders.append((f"{child.name}/", child, True))
            elif not extensions or child.suffix.lower() in extensions:
                files.append((f"{child.name:<44} {human_size(child.stat().st_size):>9}", child, False))
        except OSError:
            continue  # a broken link or a file gone meanwhile
    return entries + folders + files


class FileDialog:
    """A modal window: folder field and Up, the folder's list, a file-name field that also takes a
    full path, a filter, Open/Save and Cancel. callback(path) gets the chosen file; the folder it
    came from is remembered for `purpose` across runs (app/settings.py)."""

    def __init__(self, tag, title, filters, callback, purpose, save=False, default_name="", default_suffix=""):
        self.tag, self.callback, self.purpose, self.save = tag, callback, purpose, save
        self.filters = list(filters) + [("All files", ())]  # (label, suffixes)
        self.default_suffix = default_suffix
        self.folder = Path.home()
        self.entries = []
        self.listed = False  # refreshed when shown (also when shown by configure_item(show=True))
        with dpg.window(tag=tag, label=title, modal=True, show=False, width=720, height=430, pos=(240, 120),
                        no_collapse=True, on_close=lambda: None):
            with dpg.group(horizontal=True):
                dpg.add_button(label="Up", tag=f"{tag}_up", callback=lambda: self.go(self.folder.parent))
                dpg.add_input_text(tag=f"{tag}_folder", width=-1, on_enter=True,
                                   callback=lambda s, v: self.go(Path(v).expanduser()))
            dpg.add_listbox([], tag=f"{tag}_list", num_items=16, width=-1, callback=self.on_pick)
            with dpg.group(horizontal=True):
                dpg.add_input_text(tag=f"{tag}_name", label="File", default_value=default_name, width=-250,
                                   on_enter=True, hint="a name here, or a full path",
                                   callback=lambda: self.accept())
                dpg.add_combo([label for label, _ in self.filters], tag=f"{tag}_filter", width=-1,
                              default_value=self.filters[0][0], callback=lambda: self.refresh())
            with dpg.group(horizontal=True):
                dpg.add_button(label="Save" if save else "Open", tag=f"{tag}_ok", width=90,
                               callback=lambda: self.accept())
                dpg.add_button(label="Cancel", tag=f"{tag}_cancel", width=90, callback=lambda: self.hide())
                dpg.add_text("", tag=f"{tag}_problem", color=(255, 110, 100))
        DIALOGS[tag] = self

    def show(self, folder=None, name=None, title=None):
        self.folder = Path(folder) if folder and Path(folder).is_dir() else last_folder(self.purpose)
        if name is not None:
            dpg.set_value(f"{self.tag}_name", name)
        if title:
            dpg.configure_item(self.tag, label=title)
        dpg.configure_item(self.tag, show=True)
        self.refresh()
        if LOG[0]:
            LOG[0]("dialog", tag=self.tag, title=dpg.get_item_label(self.tag), folder=str(self.folder),
                   filters=[label for label, _ in self.filters], name=dpg.get_value(f"{self.tag}_name"))

    def hide(self):
        dpg.configure_item(self.tag, show=False)
        self.listed = False

    def suffixes(self):
        chosen = dpg.get_value(f"{self.tag}_filter")
        return next((tuple(s) for label, s in self.filters if label == chosen), ())

    def refresh(self):
        self.listed = True
        self.entries = list_folder(self.folder, self.suffixes())
        dpg.set_value(f"{self.tag}_folder", str(self.folder))
        dpg.configure_item(f"{self.tag}_list", items=[label for label, _, _ in self.entries])
        dpg.set_value(f"{self.tag}_problem", "")

    def go(self, folder):
        if not Path(folder).is_dir():
            dpg.set_value(f"{self.tag}_problem", f"no such folder: {folder}")
            return
        self.folder = Path(folder).resolve()
        self.refresh()

    def on_pick(self, sender, label):
        for entry_label, path, is_folder in self.entries:
            if entry_label == label:
                if is_folder:
                    self.go(path)
                else:
                    dpg.set_value(f"{self.tag}_name", path.name)
                return

    def accept(self):
        name = dpg.get_value(f"{self.tag}_name").strip()
        if not name:
            dpg.set_value(f"{self.tag}_problem", "type a file name or pick one")
            return
        path = resolve_typed(self.folder, name)
        if path.is_dir():
            self.go(path)
            return
        if self.save and self.default_suffix and not path.suffix:
            path = path.with_name(path.name + self.default_suffix)
        if self.save and not path.parent.is_dir():
            dpg.set_value(f"{self.tag}_problem", f"no such folder: {path.parent}")
            return
        if not self.save and not path.is_file():
            dpg.set_value(f"{self.tag}_problem", f"no such file: {path}")
            return
        remember_folder(self.purpose, path.parent)
        self.hide()
        self.callback(str(path))

    def tick(self):
        """Shown some other way (dpg.configure_item(tag, show=True)): list the folder once."""
        if not self.listed and dpg.is_item_shown(self.tag):
            self.show()


def show_file_dialog(tag, folder=None, name=None, title=None):
    DIALOGS[tag].show(folder, name, title)


def dialog_inputs():
    """The text fields of the open dialogs (arrow keys and Home there edit text, not the seed)."""
    return [f"{tag}_{field}" for tag, dialog in DIALOGS.items() if dialog.listed for field in ("name", "folder")]


def tick_dialogs():
    for dialog in DIALOGS.values():
        dialog.tick()
