"""Export panel: save the frame (PNG + request), grids and videos in the background, with progress and cancel."""

import os
import time
from pathlib import Path

import dearpygui.dearpygui as dpg

from app.bridge import EASINGS, INTERPOLATIONS, SWEEP_CONTROLS
from app.controls import typed_float
from app.panels.base import Panel
from renderer.request import MIX_GROUPS, mix_indices

VIDEO_FORMATS = ["mp4", "gif"]


def default_folder():
    """STYLESCOPE_SAVE_DIR, else the folder the last export went to, else ~/Pictures (or home)."""
    from app.settings import last_folder

    return os.environ.get("STYLESCOPE_SAVE_DIR") or str(last_folder("export"))


def plural(count, noun):
    """'1 frame', '2 frames'."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def seed_name(request):
    """The file-name part that says what was drawn: 'seed245' for the seed shown (a seed-plane
    position or a blend is named by its heaviest seed, the one the seed field shows, plus
    '-blend'), 'latent' for a loaded or frozen vector."""
    if request.z is not None or request.w is not None:
        return "latent"
    pairs = list(request.seed_weights())
    if request.seed_xy is not None:  # rounded as the seed field rounds it
        from app.panels.latent import combined_seed

        seed = combined_seed(*request.seed_xy)
    else:
        seed = max(pairs, key=lambda pair: pair[1])[0]
    return f"seed{seed}" + ("-blend" if len(pairs) > 1 else "")


def timestamp():
    return time.strftime("%Y%m%d-%H%M%S")


class ExportPanel(Panel):
    """Every export runs as an ExportJob on its own thread with its own Renderer, so the
    interactive worker keeps rendering while a video is made; one job at a time."""

    title = "Export"
    default_open = False

    def __init__(self, ctx):
        super().__init__(ctx)
        self.job = None
        self._exporter = None  # runs the jobs on a Renderer of the exports' own

    # --- widgets -------------------------------------------------------------------------------
    def build(self):
        with dpg.group(horizontal=True):  # (also in the File menu)
            dpg.add_button(label="Save session...", tag="session_save",
                           callback=lambda: self.ctx.show_session_dialog("save"))
            dpg.add_button(label="Load session...", tag="session_load",
                           callback=lambda: self.ctx.show_session_dialog("load"))
        # Progress and Cancel first: the panel is long, and a running export must be in view.
        with dpg.group(horizontal=True):
            dpg.add_progress_bar(tag="export_progress", default_value=0.0, overlay="idle", width=-80)
            dpg.add_button(label="Cancel", tag="export_cancel", show=False, callback=lambda: self.cancel())
        dpg.add_text("", tag="export_message", wrap=380)
        dpg.add_input_text(tag="export_folder", label="Folder", default_value=default_folder(), width=-70)
        self.ctx.text_inputs.append("export_folder")
        with dpg.group(horizontal=True):
            dpg.add_button(label="Save frame", tag="export_frame", callback=lambda: self.save_frame())
            dpg.add_checkbox(label="also w, z (.npy)", tag="export_latents")
        dpg.add_input_float(tag="export_scale", label="Output scale", default_value=1.0, min_value=0.01,
                            max_value=16.0, min_clamped=True, max_clamped=True, step=0.5, format="%.2fx", width=150)
        self.ctx.text_inputs.append("export_scale")
        with dpg.tooltip("export_scale"):
            dpg.add_text("Resize what is written (frames, grids, videos) by this factor, as the CLI's\n"
                         "--output-scale: nearest neighbour up (pixels stay crisp), Lanczos down.")

        dpg.add_separator()
        dpg.add_text("Video through keyframes")
        dpg.add_input_text(tag="export_keys", label="Keyframes", hint="seeds 0,1,2 or .npy/.json/.png paths",
                           width=-90)
        self.ctx.text_inputs.append("export_keys")
        with dpg.tooltip("export_keys"):
            dpg.add_text("Seeds (0,1,5-7), latent files (.npy/.npz), sessions (.json) or exported PNGs.\n"
                         "Empty: the current seed and the next three. The current settings (psi, mixing,\n"
                         "directions, noise, the shown layer: a feature-map video) apply to every frame.")
        dpg.add_combo(list(INTERPOLATIONS), tag="export_interp", label="Interpolation", default_value="slerp-z", width=-110)
        dpg.add_combo(list(EASINGS), tag="export_easing", label="Easing", default_value="linear", width=-110)
        dpg.add_input_int(tag="export_per", label="Frames / transition", default_value=30, min_value=1,
                          min_clamped=True, width=-150)
        dpg.add_input_int(tag="export_fps", label="FPS", default_value=30, min_value=1, min_clamped=True, width=-150)
        with dpg.group(horizontal=True):
            dpg.add_checkbox(label="Loop", tag="export_loop")
            dpg.add_input_text(tag="export_grid", label="Grid RxC", default_value="1x1", width=60)
            dpg.add_combo(VIDEO_FORMATS, tag="export_format", default_value="mp4", width=60)
        self.ctx.text_inputs.append("export_grid")
        dpg.add_slider_int(tag="export_quality", label="MP4 quality", default_value=8, min_value=1, max_value=10,
                           width=-110)
        dpg.add_button(label="Export video", tag="export_video", callback=lambda: self.start_video(self.settings()))

        dpg.add_separator()
        dpg.add_text("Sweep one control around the current frame")
        with dpg.group(horizontal=True):
            dpg.add_combo(list(SWEEP_CONTROLS), tag="export_sweep", default_value="psi", width=120)
            dpg.add_input_int(tag="export_sweep_frames", label="frames", default_value=60, min_value=2,
                              min_clamped=True, width=90)
        dpg.add_button(label="Export sweep video", tag="export_sweep_go",
                       callback=lambda: self.start_sweep(self.settings()))

        dpg.add_separator()
        dpg.add_text("Grids (PNG)")
        with dpg.group(horizontal=True):
            dpg.add_input_text(tag="export_grid_seeds", label="Seeds", default_value="0-5", width=90)
            dpg.add_input_text(tag="export_grid_shape", label="RxC", default_value="2x3", width=50)
            dpg.add_button(label="Seed grid", tag="export_seed_grid", callback=lambda: self.start_seed_grid(self.settings()))
        with dpg.group(horizontal=True):
            dpg.add_input_text(tag="export_mix_rows", label="Rows", default_value="0,1,2", width=70)
            dpg.add_input_text(tag="export_mix_cols", label="Cols", default_value="3,4,5", width=70)
            dpg.add_combo(list(MIX_GROUPS), tag="export_mix_group", default_value="coarse", width=80)
        dpg.add_button(label="Style-mixing grid", tag="export_mix_grid", callback=lambda: self.start_mix_grid(self.settings()))
        self.ctx.text_inputs.extend(["export_grid_seeds", "export_grid_shape", "export_mix_rows", "export_mix_cols"])


    def settings(self):
        """The panel's values as a plain dict (what the start_* methods take)."""
        names = ["folder", "latents", "scale", "keys", "interp", "easing", "per", "fps", "loop", "grid", "format", "quality",
                 "sweep", "sweep_frames", "grid_seeds", "grid_shape", "mix_rows", "mix_cols", "mix_group"]
        return {name: dpg.get_value(f"export_{name}") for name in names}

    # --- what the buttons do (no widgets touched, so tests can call them) ----------------------
    def current_request(self, settings=None):
        """The state's request, with the panel's output scale (what the window shows is never resized)."""
        import dataclasses

        engine = self.ctx.engine
        if engine is not None and hasattr(engine, "request_for"):
            request = engine.request_for(self.ctx.state)
        else:
            request = self.ctx.state.to_request()
        scale = float((settings or {}).get("scale") or 1.0)
        return dataclasses.replace(request, output_scale=typed_float(scale)) if scale != 1.0 else request

    def exporter(self):
        """The exports' own renderer (through the engine door), made once: the network loads once."""
        from app import bridge

        if self._exporter is None:
            self._exporter = bridge.exporter(getattr(self.ctx.engine, "device", None) or "auto")
        return self._exporter

    def output_path(self, settings, stem, suffix):
        folder = Path(str(settings.get("folder") or default_folder())).expanduser()
        return folder / f"{stem}_{timestamp()}{suffix}"

    def save_frame(self, settings=None):
        """Ctrl+S and the Save button: the current frame as PNG with its request (and w, z)."""
        from app import bridge

        settings = settings or self.settings()
        request = self.current_request(settings)
        path = self.output_path(settings, f"stylescope_{seed_name(request)}", ".png")
        shown = self.ctx.picture.last_frame
        # The frame on screen, when it is the full render of this very request: no second render.
        image = None
        if shown is not None and getattr(shown, "request", None) == request and not getattr(shown, "preview", False):
            image = getattr(shown, "image", None)
        return self.start("frame", bridge.export_work("frame", request, path, bool(settings.get("latents")), image))

    def start_video(self, settings):
        from app import bridge

        base = self.current_request(settings)
        path = self.output_path(settings, "stylescope_video", "." + str(settings.get("format") or "mp4"))
        work, total = bridge.export_work("video", base, settings.get("keys"), settings.get("grid"), int(settings["per"]),
                                         bool(settings.get("loop")), settings["interp"], settings["easing"], path,
                                         settings["fps"], settings["quality"])
        return self.start(f"video ({plural(total, 'frame')})", work)

    def start_sweep(self, settings):
        from app import bridge

        base = self.current_request(settings)
        control, frames = settings["sweep"], int(settings["sweep_frames"])
        path = self.output_path(settings, f"stylescope_sweep_{control}", "." + str(settings.get("format") or "mp4"))
        work = bridge.export_work("sweep", base, control, frames, bool(settings.get("loop")), path, settings["fps"],
                                  settings["quality"])
        return self.start(f"{control} sweep", work)

    def start_seed_grid(self, settings):
        from app import bridge

        base = self.current_request(settings)
        path = self.output_path(settings, "stylescope_grid", ".png")
        work = bridge.export_work("seed_grid", base, settings["grid_seeds"], settings["grid_shape"], path)
        return self.start("seed grid", work)

    def start_mix_grid(self, settings):
        from app import bridge

        base = self.current_request(settings)
        group = settings["mix_group"]
        layers = mix_indices(group, (self.ctx.model_info or {}).get("ws_resolutions") or [])
        path = self.output_path(settings, f"stylescope_mix_{group}", ".png")
        work = bridge.export_work("mix_grid", base, settings["mix_rows"], settings["mix_cols"], group, layers, path)
        return self.start("style-mixing grid", work)

    def start(self, description, work):
        """Run work(renderer, progress, cancel) as the export job in the background; refuse a second
        while one runs."""
        if self.job is not None and not self.job.finished:
            self.ctx.set_status(f"an export is running ({self.job.description}); cancel it first", error=True)
            return None
        self.job = self.exporter().start(description, work)
        self._show_running(True)
        self.ctx.set_status(f"exporting {description} ...")
        return self.job

    def busy(self):
        return self.job is not None

    def cancel(self):
        if self.job is not None and not self.job.finished:
            self.job.cancel()

    def close(self):
        """At exit: cancel a running export (its partial file is removed) and wait for its thread,
        since a torch thread still running at interpreter exit aborts the process."""
        self.cancel()
        if self.job is not None:
            self.job.wait()

    # --- once per UI frame ---------------------------------------------------------------------
    def tick(self):
        job = self.job
        if job is None or not dpg.does_item_exist("export_progress"):
            return
        if not job.finished:
            overlay = f"{job.done}/{job.total}" if job.total else "starting..."
            if overlay != dpg.get_item_configuration("export_progress").get("overlay"):
                self.log_progress(job, "running")
            dpg.configure_item("export_progress", overlay=overlay)
            dpg.set_value("export_progress", job.fraction)
            return
        self.job = None
        self._show_running(False)
        if job.cancelled:
            message, error = f"{job.description}: cancelled, nothing written", False
        elif job.error:
            message, error = f"{job.description}: {job.error}", True
        else:
            written = job.result if isinstance(job.result, (list, tuple)) else [job.result]
            names = ", ".join(str(p) for p in written if isinstance(p, (str, Path)))
            if written and isinstance(written[0], (str, Path)):
                from app.settings import remember_folder

                remember_folder("export", Path(written[0]).parent)  # the next run starts there
            message, error = f"saved {names or job.description}", False
        self.log_progress(job, "cancelled" if job.cancelled else "error" if job.error else "done", message=message)
        dpg.set_value("export_message", message)
        dpg.set_value("export_progress", 1.0 if not (job.cancelled or job.error) else 0.0)
        dpg.configure_item("export_progress", overlay="done" if not (job.cancelled or job.error) else "idle")
        self.ctx.set_status(message, error=error)

    def layout_state(self):
        """What moves this panel's controls: the Cancel button shows while a job runs."""
        return self.job is not None

    def log_progress(self, job, state, message=None):
        """For the tests: what the progress bar says, each time it changes (only with --test-log)."""
        self.ctx.note("export", description=job.description, state=state, done=job.done, total=job.total,
                      message=message)

    def _show_running(self, running):
        if dpg.does_item_exist("export_cancel"):
            dpg.configure_item("export_cancel", show=running)
            dpg.set_value("export_progress", 0.0)
            dpg.set_value("export_message", "")
