"""Engine: the app's one door to renderer/ (requests out, frames in, exports and files forwarded); no logic of its own."""

from models.errors import clean_line, error_line  # noqa: F401 -- the window's one way to print file data
from renderer.interpolate import EASINGS, INTERPOLATIONS  # noqa: F401 -- the export panel's choices, spelled once
from renderer.sequences import SWEEP_CONTROLS  # noqa: F401 -- the same


def load_network_isolated(path, device="cpu"):
    """The window's network loader: a file the user opens is parsed in a child process with memory and
    time limits (models.child_load), so a crash or bomb in any parser costs the child and a one-line
    error, never the session. The embedded default model is our own file and loads in-process."""
    from pathlib import Path

    from models.child_load import load_generator_isolated
    from models.loader import load_generator
    from renderer.renderer import DEFAULT_MODEL

    if Path(path).resolve() == DEFAULT_MODEL.resolve():
        return load_generator(path, device=device)
    return load_generator_isolated(path, device=device)


def warm_up_isolated_loading():
    """Start the loader's forkserver in the background (it imports torch once: seconds)."""
    import threading

    from models.child_load import warm_up

    threading.Thread(target=warm_up, name="loader-warm-up", daemon=True).start()


class Engine:
    """Wraps RenderWorker: builds requests from the state and hands frames back to the main loop."""

    def __init__(self, args, renderer=None):
        from renderer.renderer import DEFAULT_MODEL, Renderer
        from renderer.scheduler import Scheduler
        from renderer.worker import RenderWorker

        self.default_model_path = DEFAULT_MODEL
        if renderer is None:
            warm_up_isolated_loading()
        self.renderer = renderer or Renderer(device=getattr(args, "device", None) or "auto", load=load_network_isolated)
        self.device = self.renderer.device
        self.worker = RenderWorker(self.renderer, scheduler=Scheduler(adaptive=True), background=True)
        self.z_dim = None
        self._last_frame = None

    def has_default_model(self):
        """pkl=None means the embedded default model; usable only once the file exists."""
        return self.default_model_path.is_file()

    def request_for(self, state):
        return state.to_request(device=self.device, z_dim=self.z_dim)

    def set_preview(self, wanted):
        """Whether the user wants previews; the scheduler makes them where they pay (renderer/scheduler.py)."""
        self.worker.scheduler.preview = bool(wanted)

    def prepare_for_drags(self, state):
        """A network's first full frame is up: while the window rests, the scheduler prepares the
        first drag (its preview), so that it starts as quickly as the next. Whether it was queued."""
        from renderer.scheduler import Hand

        return self.worker.prepare(self.request_for(state), Hand(resting=True))

    def prepare_noise_drag(self, state, layer_name):
        """The mouse is over one layer's noise-strength slider: while the renderer is idle, make the
        first step of a drag as quick as the next. Whether it was queued."""
        from renderer.scheduler import Hand

        return self.worker.prepare(self.request_for(state), Hand(hovering_noise_layer=layer_name))

    # What the Vectors panel asks of the network runs on the worker thread (RenderWorker.call):
    # each returns a WorkerCall whose result, once done(), is a numpy array of ws rows.

    def image_ws(self, state):
        """The ws [num_ws, w_dim] of the state's image before its directions: a w to freeze and edit."""
        return self._call(directions_call("image_ws_rows"), state)

    def seed_direction(self, state, start, end):
        """The direction [num_ws, w_dim] from seed `start`'s ws to seed `end`'s (psi 1)."""
        return self._call(directions_call("seed_direction_rows"), state, start, end)

    def toward_seed(self, state, seed):
        """The direction [num_ws, w_dim] from the image's ws (before its directions) to seed `seed`'s."""
        return self._call(directions_call("toward_seed_rows"), state, seed)

    def principal_direction(self, state, index, layers="all"):
        """Rows [1 or num_ws][w_dim]: principal direction `index` of W, one standard deviation, on
        every layer ('all') or on a group's ws only."""
        return self._call(directions_call("principal_rows"), state, index, layers)

    def _call(self, question, state, *args):
        """A WorkerCall of question(renderer, the state's request, *args) on the worker thread."""
        request = self.request_for(state)
        return self.worker.call(lambda renderer: question(renderer, request, *args))

    def start_drag(self, state, handles, targets, mask=None, steps=200, video_path=None):
        """Drag handle points toward targets on the picture the state shows, on the worker thread
        (renderer/drag.py): a WorkerJob whose latest() is (image, tracked handles, steps done),
        stopped by stop(); its result's 'ws' [num_ws, w_dim] is the new latent."""
        from renderer.drag import DragSettings, drag_job

        job = drag_job(self.request_for(state), handles, targets, mask=mask, settings=DragSettings(steps=int(steps)),
                       video_path=video_path or None)
        return self.worker.start_job(job)
    # The Directions panel's questions (renderer/directions.py), on the worker thread too.

    def sefa_direction(self, state, layers, index):
        """Rows [1 or num_ws][w_dim]: SeFa direction `index` (unit length) of the chosen ws' style layers."""
        return self._call(directions_call("sefa_direction_rows"), state, layers, index)

    def style_channel(self, state, text):
        """(layer, channel, that channel's std) for a 'layer:channel' search (statistics kept per network)."""
        return self._call(directions_call("find_style_channel"), state, text)

    def example_channels(self, state, seeds, top=8):
        """[(layer, channel, score, mean in sigmas, std)] the example seeds share most (StyleSpace's ranking)."""
        return self._call(directions_call("ranked_example_channels"), state, seeds, top)

    def image_w(self, state):
        """The w [w_dim] of the image on screen (its ws averaged): an example to label."""
        return self._call(directions_call("image_w_row"), state)

    def fit_direction(self, positive, negative, orthogonal_to=()):
        """A unit direction [w_dim] separating the labelled ws (a linear SVM, scikit-learn)."""
        from renderer import directions

        return self.worker.call(lambda renderer: directions.fit_direction(positive, negative, orthogonal_to))

    def noise_usage(self, state, layer):
        """Mean change (levels of 255) of the state's image when `layer`'s noise is off (None: all
        noise), on the worker thread (renderer/noise_usage.py); a WorkerCall to poll."""
        from renderer.noise_usage import layer_usage

        return self._call(layer_usage, state, layer)

    # Projection (renderer/projection.py): the Projector lives on the worker thread and runs a few
    # steps per call, so that frames of the explorer still come between them.

    def projection_target(self, path, resolution, channels=3):
        """(uint8 [R, R, C] centre crop, (left, top, size), picture [H, W, 3]) of a picture file; ValueError if unreadable."""
        from renderer.projection import load_target_image, prepare_target

        picture = load_target_image(path)
        target, box = prepare_target(picture, resolution, channels)
        return target, box, picture

    def projection_start(self, state, target, space, steps):
        """A WorkerCall whose result is a Projector for the state's network."""
        from renderer.projection import ProjectionSettings, Projector

        request = self.request_for(state)
        settings = ProjectionSettings(space=space, steps=steps)

        def start(renderer):
            _, G = renderer.load(request)
            return Projector(G, target, settings)

        return self.worker.call(start)

    def projection_advance(self, projector, count):
        """A WorkerCall running up to `count` steps; result (step, loss, psnr dB, uint8 image, ws rows)."""
        from renderer.directions import ws_rows_of
        from renderer.projection import psnr

        def advance(_renderer):
            projector.run_steps(count)
            image = projector.image()
            return (projector.step_index, projector.loss, psnr(image, projector.target_uint8), image,
                    ws_rows_of(projector.ws()))

        return self.worker.call(advance)

    def submit(self, request):
        """The window's request to the worker (latest wins)."""
        self.worker.submit(request)
        return request

    def new_frame(self):
        """The newest finished frame when it is one not returned before, else None."""
        frame = self.worker.latest()
        if frame is None or frame is self._last_frame:
            return None
        self._last_frame = frame
        if getattr(frame, "info", None):
            self.z_dim = frame.info.get("z_dim", self.z_dim)
        return frame

    def idle(self):
        """Nothing rendering or queued, and the newest frame already handed out."""
        return not self.worker.busy and self.worker.latest() is self._last_frame

    def close(self):
        self.worker.close()


def directions_call(name):
    """renderer/directions.py's function `name`, imported when first called (torch loads lazily)."""
    def call(renderer, request, *args):
        from renderer import directions

        return getattr(directions, name)(renderer, request, *args)

    return call


# --- exports and files: forwarded to renderer/ ------------------------------------------------------


def exporter(device="auto"):
    """Runs the window's exports on a Renderer of their own (renderer/exporter.py)."""
    from renderer.exporter import Exporter

    return Exporter(device, load=load_network_isolated)


def export_work(kind, *args):
    """work(renderer, progress, cancel) for one export, `kind` one of renderer/exporter.py's *_work
    (frame, video (work, frame count), sweep, seed_grid, mix_grid, direction_sweep, direction_grid)."""
    from renderer import exporter

    return getattr(exporter, f"{kind}_work")(*args)


def save_direction_file(rows, path):
    from renderer.directions import save_direction_file

    return save_direction_file(rows, path)


def read_latent_file(path):
    """(kind 'z' or 'w', array) from a .npy/.npz file (renderer.latent_files.load_latent)."""
    from renderer.latent_files import load_latent

    return load_latent(path)


def read_direction_file(path):
    from renderer.latent_files import load_direction

    return load_direction(path)


def save_frame_png(frame, path):
    """The frame as a PNG carrying its request: `run_app.py frame` can rebuild it exactly."""
    from renderer.png_metadata import save_png

    save_png(frame, frame.request, path, model_path=frame.request.pkl)


def class_in_use(state, model_info):
    """(class, how) a conditional network draws with: the Class field's, or (unticked) the one the
    renderer picks from the main seed, as NVIDIA's visualizer does; None for unconditional ones."""
    from renderer.session import seed_class

    c_dim, z_dim = int(model_info.get("c_dim") or 0), int(model_info.get("z_dim") or 0)
    if c_dim <= 0:
        return None
    if state["class_idx"] is not None:
        return int(state["class_idx"]), "chosen"
    pairs = state.seeds()
    seed = max(pairs, key=lambda pair: pair[1])[0]
    return seed_class(seed, z_dim, c_dim), f"from seed {seed}" + (" (each blended seed has its own)" if len(pairs) > 1 else "")


def noise_usage_summary(all_off_levels):
    from renderer.noise_usage import usage_summary

    return usage_summary(all_off_levels)


def model_info(frame):
    """The model summary the panels need: the network's info plus its pkl, layers and noisy layers."""
    info = dict(getattr(frame, "info", None) or {})
    if not info:
        return None
    info["pkl"] = getattr(getattr(frame, "request", None), "pkl", None)
    layers = [(name, tuple(shape)) for name, shape, *_ in getattr(frame, "layers", None) or []]
    if layers:
        info["layers"] = layers
    info.setdefault("noise_layers", [])  # the renderer's frames carry the network's own list
    return info


def session_dict(request):
    """A session file's JSON (renderer/request_files.py)."""
    from renderer.request_files import session_dict

    return session_dict(request)


def session_request(data, ws_resolutions=None):
    """The request of a session's parsed JSON; ValueError says why it is none; ws_resolutions resolve an
    older file's named mix group."""
    from renderer.request_files import request_from_data

    return request_from_data(data, "session", ws_resolutions).request


def read_session_file(path, chosen, ws_resolutions=None):
    """(request, wanted network path or None, notes) of a session file, for a window that has
    `chosen` open (renderer/request_files.py); bounded parsing."""
    from renderer.request_files import read_session_file

    return read_session_file(path, chosen, ws_resolutions)
