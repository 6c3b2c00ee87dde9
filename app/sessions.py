"""Sessions and saved frames: the File menu's save / load session, Ctrl+S, and the state a window starts from."""

import dataclasses
import time
from pathlib import Path

from app import bridge
from app.state import write_json_atomic


def session_json(state, model_info=None):
    """The session file: the state's RenderRequest JSON that `run_app.py frame --request` reads, plus
    the network's file name and sha256 (a session opened elsewhere finds its network beside it by them)."""
    z_dim = (model_info or {}).get("z_dim")
    return bridge.session_dict(state.to_request(device="auto", z_dim=z_dim))


def load_session(state, data, model_info=None):
    """Parsed session JSON into the state; returns the state's notes (values it could not keep)."""
    resolutions = (model_info or {}).get("ws_resolutions")
    return state.load_request(bridge.session_request(data, resolutions), resolutions)


def load_session_file(state, path, model_info=None):
    """Load a session file into the state: (notes, wanted network path or None).

    The file is parsed with its size and nesting bounded. Its network is opened only when it is
    the one open now or lies beside the file with the recorded sha256; otherwise the rest of the
    session is applied to the open network and `wanted` names the file it asks for.
    """
    resolutions = (model_info or {}).get("ws_resolutions")
    request, wanted, notes = bridge.read_session_file(path, state["pkl"], resolutions)
    return notes + state.load_request(request, resolutions), wanted


class Sessions:
    """The window's file actions on the whole state: sessions in and out, the frame as PNG."""

    def __init__(self, window):
        self.window = window

    def build_dialogs(self):
        from app.file_dialog import FileDialog

        FileDialog("session_save_dialog", "Save the session", [("Sessions (.json)", (".json",))], self.save,
                   "session", save=True, default_name="session.json", default_suffix=".json")
        FileDialog("session_load_dialog", "Load a session", [("Sessions (.json)", (".json",))], self.load,
                   "session")

    @staticmethod
    def show_dialog(mode):
        from app.file_dialog import show_file_dialog

        show_file_dialog(f"session_{mode}_dialog")

    def save(self, path):
        """The session as the request JSON; a folder that is missing or read-only is one status line."""
        window = self.window
        try:
            write_json_atomic(path, session_json(window.state, window.ctx.model_info))
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            window.set_status(f"session not saved: {path}: {reason}", error=True)
            return
        window.observer.note("session_saved", path=str(path))
        window.set_status(f"saved session {path}")

    def load(self, path):
        """A session file is a RenderRequest JSON; a bad one leaves the state as it was."""
        window = self.window
        try:
            notes, wanted = load_session_file(window.state, path, window.ctx.model_info)
        except (OSError, ValueError) as exc:  # size and nesting are bounded before parsing
            window.set_status(bridge.error_line(exc), error=True)
            return
        window.sync_panels()
        if wanted is not None and window.dpg.does_item_exist("net_path"):
            window.dpg.set_value("net_path", wanted)  # its Load button opens it, when the user chooses to
            window.set_status(notes[0], error=True)
            return
        window.set_status(f"loaded session {path}" + (f" ({'; '.join(notes)})" if notes else ""))

    def save_frame(self):
        """Ctrl+S: the export panel's dialog when there is one, else a PNG and its session next to it."""
        window = self.window
        export = window.panel("Export")
        if export is not None and hasattr(export, "save_frame"):
            export.save_frame()
            return
        frame = window.picture.last_full_frame
        if frame is None:
            window.set_status("nothing to save yet", error=True)
            return
        from app.panels.export import default_folder, seed_name

        out_dir = Path(default_folder())
        path = out_dir / f"stylescope_{seed_name(frame.request)}_{time.strftime('%Y%m%d-%H%M%S')}.png"
        try:
            bridge.save_frame_png(frame, path)
        except (OSError, ValueError) as exc:  # a full disk, a read-only folder: say so, keep going
            window.set_status(f"could not save {path}: {exc}", error=True)
            return
        window.set_status(f"saved {path}")

    def start(self, args):
        """The state the window opens with: --pkl, then run_app.py's request flags or --session."""
        window, state = self.window, self.window.state
        pkl = getattr(args, "pkl", None)
        if pkl:
            # Adapting to the start-up network: the first file is no edit to undo.
            state.adjust({"pkl": str(Path(pkl).expanduser().resolve())})
            window.set_status(f"loading {pkl} ...")
        elif window.ctx.engine.has_default_model():
            window.set_status("loading the embedded default model ...")
        else:
            window.set_status("No network loaded: open a file in the Network panel (Ctrl+O)")
        start = getattr(args, "start_request", None)  # run_app.py's flags (--seed, --psi, ...)
        session = getattr(args, "session", None)
        if start is not None:
            state.load_request(dataclasses.replace(start, pkl=state["pkl"]))
            window.sync_panels()
        elif session:
            self.load(session)
