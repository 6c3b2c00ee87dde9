"""Export panel: save the frame (PNG + request), grids and videos in the background, with progress and cancel."""

import os
import time
from pathlib import Path

import dearpygui.dearpygui as dpg

from app.controls import typed_float
from app.bridge import EASINGS, INTERPOLATIONS, SWEEP_CONTROLS
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

    def __init__(self, app):
        super().__init__(app)
        self.job = None
        self._renderer = None  # the export thread's own Renderer, kept so the network loads once

    # --- widgets -------------------------------------------------------------------------------
    def build(self):
        with dpg.group(horizontal=True):  # (also in the File menu)
            dpg.add_button(label="Save session...", tag="session_save",
                           callback=lambda: self.app.show_session_dialog("save"))
            dpg.add_button(label="Load session...", tag="session_load",
                           callback=lambda: self.app.show_session_dialog("load"))
        # Progress and Cancel first: the panel is long, and a running export must be in view.
        with dpg.group(horizontal=True):
            dpg.add_progress_bar(tag="export_progress", default_value=0.0, overlay="idle", width=-80)
            dpg.add_button(label="Cancel", tag="export_cancel", show=False, callback=lambda: self.cancel())
        dpg.add_text("", tag="export_message", wrap=380)
        dpg.add_input_text(tag="export_folder", label="Folder", default_value=default_folder(), width=-70)
        self.app.text_inputs.append("export_folder")
        with dpg.group(horizontal=True):
            dpg.add_button(label="Save frame", tag="export_frame", callback=lambda: self.save_frame())
            dpg.add_checkbox(label="also w, z (.npy)", tag="export_latents")
        dpg.add_input_float(tag="export_scale", label="Output scale", default_value=1.0, min_value=0.01,
                            max_value=16.0, min_clamped=True, max_clamped=True, step=0.5, format="%.2fx", width=150)
        self.app.text_inputs.append("export_scale")
        with dpg.tooltip("export_scale"):
            dpg.add_text("Resize what is written (frames, grids, videos) by this factor, as the CLI's\n"
                         "--output-scale: nearest neighbour up (pixels stay crisp), Lanczos down.")

        dpg.add_separator()
        dpg.add_text("Video through keyframes")
        dpg.add_input_text(tag="export_keys", label="Keyframes", hint="seeds 0,1,2 or .npy/.json/.png paths",
                           width=-90)
        self.app.text_inputs.append("export_keys")
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
        self.app.text_inputs.append("export_grid")
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
        self.app.text_inputs.extend(["export_grid_seeds", "export_grid_shape", "export_mix_rows", "export_mix_cols"])


    def settings(self):
        """The panel's values as a plain dict (what the start_* methods take)."""
        names = ["folder", "latents", "scale", "keys", "interp", "easing", "per", "fps", "loop", "grid", "format", "quality",
                 "sweep", "sweep_frames", "grid_seeds", "grid_shape", "mix_rows", "mix_cols", "mix_group"]
        return {name: dpg.get_value(f"export_{name}") for name in names}

    # --- what the buttons do (no widgets touched, so tests can call them) ----------------------
    def current_request(self, settings=None):
        """The state's request, with the panel's output scale (what the window shows is never resized)."""
        import dataclasses

        engine = getattr(self.app, "engine", None)
        if engine is not None and hasattr(engine, "request_for"):
            request = engine.request_for(self.app.state)
        else:
            request = self.app.state.to_request()
        scale = float((settings or {}).get("scale") or 1.0)
        return dataclasses.replace(request, output_scale=typed_float(scale)) if scale != 1.0 else request

    def export_renderer(self):
        """A Renderer of the export's own: the interactive worker's is never shared across threads."""
        from app.bridge import load_network_isolated
        from renderer.renderer import Renderer

        if self._renderer is None:
            device = getattr(getattr(self.app, "engine", None), "device", None) or "auto"
            # Exported frames are seldom made twice: nothing kept for going back.
            self._renderer = Renderer(device=device, recent_frames_bytes=0, recent_captures_bytes=0,
                                      load=load_network_isolated)
        return self._renderer

    def output_path(self, settings, stem, suffix):
        folder = Path(str(settings.get("folder") or default_folder())).expanduser()
        return folder / f"{stem}_{timestamp()}{suffix}"

    def save_frame(self, settings=None):
        """Ctrl+S and the Save button: the current frame as PNG with its request (and w, z)."""
        from renderer import export

        settings = settings or self.settings()
        request = self.current_request(settings)
        path = self.output_path(settings, f"stylescope_{seed_name(request)}", ".png")
        shown = getattr(self.app, "last_frame", None)
        # The frame on screen, when it is the full render of this very request: no second render.
        image = None
        if shown is not None and getattr(shown, "request", None) == request and not getattr(shown, "preview", False):
            image = getattr(shown, "image", None)
        latents = bool(settings.get("latents"))
        return self.start("frame", lambda progress, cancel: export.export_frame(
            self.export_renderer(), request, path, save_latents=latents, image=image))

    def start_video(self, settings):
        from renderer import export, interpolate

        base = self.current_request(settings)
        format_suffix = "." + str(settings.get("format") or "mp4")
        path = self.output_path(settings, "stylescope_video", format_suffix)
        items = self.keyframe_items(settings.get("keys"), base)
        rows, cols = export.parse_grid_shape(settings.get("grid") or "1x1")
        per, loop = int(settings["per"]), bool(settings.get("loop"))
        interp, easing = settings["interp"], settings["easing"]
        if rows * cols > 1:
            if not all(isinstance(item, int) for item in items):
                raise ValueError("a grid video takes seeds as keyframes")
            cells = export.grid_cell_keyframes(items, rows * cols)
        else:
            cells = [items]
        total = interpolate.frame_count(len(cells[0]), per, loop)

        def work(progress, cancel):
            renderer = self.export_renderer()
            sequences = []
            for cell in cells:
                keyframes = [export.keyframe_request(base, item) for item in cell]
                sequences.append(export.interpolation_requests(renderer, base, keyframes, per, interp, loop, easing))
            return export.export_video(renderer, sequences, path, fps=settings["fps"], quality=settings["quality"],
                                       cols=cols, total=total, progress=progress, cancel=cancel)

        return self.start(f"video ({plural(total, 'frame')})", work)

    def start_sweep(self, settings):
        from renderer import export

        base = self.current_request(settings)
        control, frames = settings["sweep"], int(settings["sweep_frames"])
        path = self.output_path(settings, f"stylescope_sweep_{control}", "." + str(settings.get("format") or "mp4"))

        def work(progress, cancel):
            renderer = self.export_renderer()
            requests = export.sweep_requests(renderer, base, control, frames, loop=bool(settings.get("loop")))
            return export.export_video(renderer, [requests], path, fps=settings["fps"], quality=settings["quality"],
                                       total=len(requests), progress=progress, cancel=cancel)

        return self.start(f"{control} sweep", work)

    def start_seed_grid(self, settings):
        from renderer import export

        base = self.current_request(settings)
        seeds = export.parse_seeds(settings["grid_seeds"])
        rows, cols = export.parse_grid_shape(settings["grid_shape"])
        if len(seeds) > rows * cols:
            raise ValueError(f"{len(seeds)} seeds do not fit a {rows}x{cols} grid")
        path = self.output_path(settings, "stylescope_grid", ".png")
        cells = export.seed_grid_requests(base, seeds)

        def work(progress, cancel):
            export.export_grid(self.export_renderer(), cells, rows, cols, path, base, "seeds",
                               progress=progress, cancel=cancel)
            return path

        return self.start("seed grid", work)

    def start_mix_grid(self, settings):
        from renderer import export

        base = self.current_request(settings)
        row_seeds, col_seeds = export.parse_seeds(settings["mix_rows"]), export.parse_seeds(settings["mix_cols"])
        group = settings["mix_group"]
        layers = mix_indices(group, (self.app.model_info or {}).get("ws_resolutions") or [])
        cells = export.style_mix_requests(base, row_seeds, col_seeds, layers)
        path = self.output_path(settings, f"stylescope_mix_{group}", ".png")
        rows, cols = len(row_seeds) + 1, len(col_seeds) + 1

        def work(progress, cancel):
            export.export_grid(self.export_renderer(), cells, rows, cols, path, base, f"style-mix {group}",
                               progress=progress, cancel=cancel)
            return path

        return self.start("style-mixing grid", work)

    @staticmethod
    def keyframe_items(text, base):
        """Keyframes typed in the panel: seeds (ints) and file paths; empty means four seeds from the current."""
        from renderer import export

        text = (text or "").strip()
        if not text:
            first = base.seeds[0][0]
            return [first + k for k in range(4)]
        items = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            if part.replace("-", "").isdigit():
                items.extend(export.parse_seeds(part))
            else:
                items.append(part)
        return items

    def start(self, description, work):
        """Run one export job in the background; refuse a second while one runs."""
        from renderer.export import ExportJob

        if self.job is not None and not self.job.finished:
            self.app.set_status(f"an export is running ({self.job.description}); cancel it first", error=True)
            return None
        self.job = ExportJob(description, work).start()
        self._show_running(True)
        self.app.set_status(f"exporting {description} ...")
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
        self.app.set_status(message, error=error)

    def layout_state(self):
        """What moves this panel's controls: the Cancel button shows while a job runs."""
        return self.job is not None

    def log_progress(self, job, state, message=None):
        """For the tests: what the progress bar says, each time it changes (only with --test-log)."""
        log = getattr(self.app, "log", None)
        if log:
            log.write("export", description=job.description, state=state, done=job.done, total=job.total,
                      message=message)

    def _show_running(self, running):
        if dpg.does_item_exist("export_cancel"):
            dpg.configure_item("export_cancel", show=running)
            dpg.set_value("export_progress", 0.0)
            dpg.set_value("export_message", "")
