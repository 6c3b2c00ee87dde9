"""Network panel: open a network file (dialog, path, recent files) and show the loaded model's summary."""

import json
from pathlib import Path

import dearpygui.dearpygui as dpg

from app.panels.base import Panel
from app.settings import config_dir

RECENT_LIMIT = 8
NETWORK_EXTENSIONS = (".pkl", ".pt", ".pth", ".safetensors")


def read_recent():
    try:
        items = json.loads((config_dir() / "recent.json").read_text())
        return [str(p) for p in items if isinstance(p, str)][:RECENT_LIMIT]
    except (OSError, ValueError):
        return []


def write_recent(paths):
    try:
        config_dir().mkdir(parents=True, exist_ok=True)
        (config_dir() / "recent.json").write_text(json.dumps(paths[:RECENT_LIMIT], indent=1))
    except OSError:
        pass  # a read-only home must not stop the explorer


class NetworkPanel(Panel):
    title = "Network"

    def build(self):
        with dpg.group(horizontal=True):
            dpg.add_button(label="Open...", tag="net_open", callback=lambda: self.open_dialog())
            dpg.add_input_text(tag="net_path", hint="path to a .pkl / .safetensors", width=-60,
                               on_enter=True, callback=lambda s, v: self.open_path(v))
            dpg.add_button(label="Load", tag="net_load", callback=lambda: self.open_path(dpg.get_value("net_path")))
        self.ctx.text_inputs.append("net_path")
        with dpg.group(horizontal=True):
            dpg.add_button(label="Default model", tag="net_default", callback=lambda: self.open_default())
            dpg.add_combo([], tag="net_recent", label="Recent", width=-60,
                          callback=lambda s, v: self.open_path(v))
        with dpg.tooltip("net_default"):
            dpg.add_text("Back to the embedded default model (a small StyleGAN2 shipped with StyleScope)")
        dpg.add_text("No network loaded", tag="net_summary", wrap=PANEL_WRAP)
        self.add_file_dialog("net_dialog", NETWORK_EXTENSIONS, self.on_dialog, title="Open a network",
                             kind="Network files", purpose="network")
        self.refresh_recent()

    def open_dialog(self):
        """In the open network's folder; with the default model, the folder last opened from (else home)."""
        from app.file_dialog import show_file_dialog

        pkl = self.ctx.state["pkl"]
        show_file_dialog("net_dialog", folder=Path(pkl).parent if pkl else None)

    def on_dialog(self, sender, app_data):
        path = self.dialog_path(app_data)
        if path:
            self.open_path(path)

    def open_path(self, path):
        path = (path or "").strip()
        if not path:
            return
        if not Path(path).expanduser().is_file():
            self.ctx.set_status(f"not a file: {path}", error=True)
            return
        path = str(Path(path).expanduser().resolve())
        self.ctx.set_status(f"loading {path} ...")
        self.ctx.edit("pkl", path, coalesce=False)

    def open_default(self):
        """The embedded default model again (pkl None), as at a start without --pkl."""
        if self.ctx.engine is not None and not self.ctx.engine.has_default_model():
            self.ctx.set_status("the embedded default model is missing from assets/", error=True)
            return
        if self.ctx.state["pkl"] is None:
            self.ctx.set_status("the embedded default model is already open")
            return
        self.ctx.set_status("loading the embedded default model ...")
        self.ctx.edit("pkl", None, coalesce=False)

    def refresh_recent(self):
        dpg.configure_item("net_recent", items=read_recent())

    def on_model(self, info):
        pkl = info.get("pkl")
        if pkl:
            recent = [pkl] + [p for p in read_recent() if p != pkl]
            write_recent(recent)
            self.refresh_recent()
        dpg.set_value("net_path", pkl or "")
        lines = [
            f"{Path(pkl).name if pkl else '(embedded default)'}",
            f"{architecture_text(info)}  ·  {info.get('format', '')}",
            f"{info.get('img_resolution', '?')} px, {info.get('img_channels', '?')} channels",
            f"z {info.get('z_dim', '?')}  w {info.get('w_dim', '?')}  ws {info.get('num_ws', '?')}  c {info.get('c_dim', 0)}",
        ]
        dpg.set_value("net_summary", "\n".join(lines))

    def sync(self):
        super().sync()
        if dpg.does_item_exist("net_path") and self.ctx.state["pkl"]:
            dpg.set_value("net_path", self.ctx.state["pkl"])


PANEL_WRAP = 400


def architecture_text(info):
    """'stylegan2 (skip)'; the variant only where it adds something ('stylegan3-t', not 'stylegan3-t t')."""
    architecture = info.get("architecture") or "?"
    variant = info.get("variant")
    if not variant or variant == architecture or architecture.endswith(f"-{variant}"):
        return architecture
    return f"{architecture} ({variant})"
