"""Engine: the app's one door to the renderer (requests out, frames in), and readers for what a Frame carries."""

import dataclasses
import os
import re

import numpy as np

from models.errors import clean_line, error_line  # noqa: F401 -- the window's one way to print file data
from renderer.export import SWEEP_CONTROLS  # noqa: F401 -- the export panel's choices, spelled once
from renderer.interpolate import EASINGS, INTERPOLATIONS  # noqa: F401 -- the same
from renderer.request import RenderRequest, mix_indices

# A full frame slower than this makes the worker send a quick preview first (a slow device).
SLOW_RENDER_MS = 120
# Layers with a noise input, by architecture (the frame does not list them; names as NVIDIA's).
NOISY_LAYER = {
    "stylegan2": re.compile(r"^b\d+\.conv[01]$"),
    "stylegan": re.compile(r"^b\d+\.(const|conv|conv0_up|conv1)$"),
}


def preview_resolution(img_resolution):
    """The preview's resolution: an eighth of the image side (1024 -> 128), at least 16 px."""
    return max(16, int(img_resolution or 0) // 8)


def previews_pay(wanted, last_render_ms, img_resolution):
    """Previews only on a slow device and a network larger than the preview: else the full frame is as quick."""
    slow = last_render_ms is not None and last_render_ms > SLOW_RENDER_MS
    return bool(wanted) and slow and int(img_resolution or 0) > preview_resolution(img_resolution)


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
        from renderer.worker import RenderWorker

        self.default_model_path = DEFAULT_MODEL
        if renderer is None:
            warm_up_isolated_loading()
        self.renderer = renderer or Renderer(device=getattr(args, "device", None) or "auto", load=load_network_isolated)
        self.device = self.renderer.device
        self.renderer.render = in_background_priority(self.renderer.render)
        delay = float(os.environ.get("STYLESCOPE_TEST_FULL_FRAME_DELAY", "0"))
        preview_delay = float(os.environ.get("STYLESCOPE_TEST_PREVIEW_DELAY", "0"))
        if delay > 0 or preview_delay > 0:
            self.renderer.render = slowed_frames(self.renderer.render, delay, preview_delay)
        self.worker = RenderWorker(self.renderer, preview=False)
        self.z_dim = None
        self.last_request = None
        self._last_frame = None

    def has_default_model(self):
        """pkl=None means the embedded default model; usable only once the file exists."""
        return self.default_model_path.is_file()

    def request_for(self, state):
        return state.to_request(device=self.device, z_dim=self.z_dim)

    def set_preview(self, wanted, last_render_ms, img_resolution):
        """last_render_ms None: a network not rendered yet, whose size and cost are unknown: the
        renderer previews it where it is big (preview_resolution "auto")."""
        if last_render_ms is None:
            self.worker.preview, self.worker.preview_resolution = bool(wanted), "auto"
            return
        self.worker.preview = previews_pay(wanted, last_render_ms, img_resolution)
        self.worker.preview_resolution = preview_resolution(img_resolution)

    def prepare_for_drags(self, state, last_render_ms, img_resolution):
        """Where previews will be shown, make a first one in the background now, while the window
        is idle (RenderWorker.prepare_for_drags): the first drag then starts as quickly as the next."""
        if not previews_pay(state["preview"], last_render_ms, img_resolution):
            return False
        return self.worker.prepare_for_drags(self.request_for(state), preview_resolution(img_resolution))

    def prepare_noise_drag(self, state, layer_name):
        """The mouse is over one layer's noise-strength slider: while the renderer is idle, make the
        first step of a drag as quick as the next (RenderWorker.prepare_noise_drag)."""
        return self.worker.prepare_noise_drag(self.request_for(state), layer_name)

    # What the Vectors panel asks of the network runs on the worker thread (RenderWorker.call):
    # each returns a WorkerCall whose result, once done(), is a numpy array of ws rows.

    def image_ws(self, state):
        """The ws [num_ws, w_dim] of the image the state asks for, before its directions (mapping,
        truncation, seed blend and style mixing baked in): a w to freeze and edit."""
        request = dataclasses.replace(self.request_for(state), w_offset=None)
        return self.worker.call(lambda renderer: _ws_rows(renderer.compute_ws(request)))

    def seed_direction(self, state, start, end):
        """The direction [num_ws, w_dim] from seed `start`'s ws to seed `end`'s, at psi 1 on the
        state's network and class: strength 1 carries one face's w to the other's."""
        base = dataclasses.replace(self.request_for(state), seed_xy=None, z=None, w=None, mix_seed=None, mix_w=None,
                                   mix_layers="", w_offset=None, truncation_psi=1.0, truncation_cutoff=None)

        def direction(renderer):
            ends = [_ws_rows(renderer.compute_ws(dataclasses.replace(base, seeds=((int(seed), 1.0),))))
                    for seed in (start, end)]
            return ends[1] - ends[0]

        return self.worker.call(direction)

    def toward_seed(self, state, seed):
        """The direction [num_ws, w_dim] from the image's ws (before its directions) to seed `seed`'s
        with the state's truncation and class: strength t blends the two ws, 1 reaching the seed's.
        The way to blend a loaded or frozen w with a seed."""
        image = dataclasses.replace(self.request_for(state), w_offset=None)
        target = dataclasses.replace(image, seeds=((int(seed), 1.0),), seed_xy=None, z=None, w=None, mix_seed=None,
                                     mix_w=None, mix_layers="")
        return self.worker.call(lambda renderer: _ws_rows(renderer.compute_ws(target))
                                - _ws_rows(renderer.compute_ws(image)))

    def principal_direction(self, state, index, layers="all"):
        """Rows [1 or num_ws][w_dim]: principal direction `index` of W (Renderer.principal_directions)
        scaled to one standard deviation, on every layer ('all') or on a group's ws only ('coarse',
        'middle', 'fine', or a mix_layers spec), as GANSpace edits a layer range."""
        request = self.request_for(state)
        return self.worker.call(lambda renderer: principal_rows(renderer, request, index, layers))

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
        from renderer import directions

        request = self.request_for(state)
        return self.worker.call(lambda renderer: directions.sefa_direction_rows(renderer, request, layers, index))

    def style_channel(self, state, text):
        """(layer, channel, that channel's std) for a 'layer:channel' search (statistics kept per network)."""
        from renderer import directions

        request = self.request_for(state)

        def find(renderer):
            layer, channel = directions.parse_channel(text, directions.style_channel_counts(renderer, request))
            return layer, channel, directions.style_channel_std(renderer, request, layer, channel)

        return self.worker.call(find)

    def example_channels(self, state, seeds, top=8):
        """[(layer, channel, score, mean in sigmas, std)] the example seeds share most (StyleSpace's ranking)."""
        from renderer import directions

        request = self.request_for(state)

        def rank(renderer):
            found = directions.example_channels(renderer, request, seeds, top)
            return [item + (directions.style_channel_std(renderer, request, *item[:2]),) for item in found]

        return self.worker.call(rank)

    def image_w(self, state):
        """The w [w_dim] of the image on screen (its ws averaged): an example to label."""
        from renderer import directions

        request = self.request_for(state)
        return self.worker.call(lambda renderer: directions.image_w_row(renderer, request))

    def fit_direction(self, positive, negative, orthogonal_to=()):
        """A unit direction [w_dim] separating the labelled ws (a linear SVM, scikit-learn)."""
        from renderer import directions

        return self.worker.call(lambda renderer: directions.fit_direction(positive, negative, orthogonal_to))
    def noise_usage(self, state, layer):
        """Mean change (levels of 255) of the state's image when `layer`'s noise is off (None: all
        noise), on the worker thread (renderer/noise_usage.py); a WorkerCall to poll."""
        from renderer.noise_usage import layer_usage

        request = self.request_for(state)
        return self.worker.call(lambda renderer: layer_usage(renderer, request, layer))
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
        from renderer.projection import psnr

        def advance(_renderer):
            projector.run_steps(count)
            image = projector.image()
            return (projector.step_index, projector.loss, psnr(image, projector.target_uint8), image,
                    _ws_rows(projector.ws()))

        return self.worker.call(advance)

    def submit(self, state):
        request = self.request_for(state)
        self.last_request = request
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


# Niceness of the render thread: when the UI and a render compete for the CPU, the UI wins (on
# Linux, where a thread's priority can be set on its own); an idle UI leaves the CPU to the render.
RENDER_THREAD_NICENESS = 5


def in_background_priority(render):
    """render, lowering the priority of whichever thread first calls it (the worker's)."""
    import sys
    import threading

    lowered = set()

    def render_in_background(*args, **kwargs):
        thread = threading.get_native_id()
        if thread not in lowered and sys.platform.startswith("linux"):
            lowered.add(thread)
            try:
                os.setpriority(os.PRIO_PROCESS, thread, RENDER_THREAD_NICENESS)
            except OSError:
                pass  # not allowed here: both threads keep the same priority
        return render(*args, **kwargs)

    return render_in_background


def slowed_frames(render, delay, preview_delay=0.0):
    """Test hook: full frames take `delay` seconds longer and previews `preview_delay`, as on a slow
    device, so that the GUI tests see previews on a tiny network as on a big one. The wait stops
    when the render would: for a full frame when it is stale, for a preview when the worker closes."""
    import time

    from renderer.renderer import Frame

    def slow_render(request, should_stop=None, preview_resolution=None, preview_should_stop=None, **kwargs):
        wait = delay if preview_resolution is None else preview_delay
        stop = should_stop if preview_resolution is None or preview_should_stop is None else preview_should_stop
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if stop is not None and stop():
                return Frame(request=request, cancelled=True)
            time.sleep(0.01)
        frame = render(request, should_stop=should_stop, preview_resolution=preview_resolution,
                       preview_should_stop=preview_should_stop, **kwargs)
        if "synthesis" in frame.timings:
            frame.timings["synthesis"] += wait  # it took that long, as far as the app can tell
        return frame

    return slow_render


def _ws_rows(ws):
    """[1, num_ws, w_dim] tensor -> [num_ws, w_dim] float64 numpy."""
    return ws[0].cpu().numpy().astype(np.float64)


def principal_rows(renderer, request, index, layers="all"):
    """See Engine.principal_direction (run on the renderer's own thread)."""
    components, sigmas = renderer.principal_directions(request)
    if not 0 <= index < len(sigmas):
        raise ValueError(f"principal direction {index}: this network has 0-{len(sigmas) - 1}")
    row = components[index] * sigmas[index]
    if layers == "all":
        return row[None]
    _, G = renderer.load(request)
    rows = np.zeros((G.num_ws, row.shape[0]))
    rows[mix_indices(layers, G.synthesis.ws_resolutions)] = row
    return rows


def direction_sweep_work(request, path, frames, fps, quality):
    """work(renderer, progress, cancel) for an ExportJob: a video of request's edits (its directions
    and StyleSpace channels) scaled from -1 to 1 (the export's `direction` sweep)."""
    from renderer import export

    def work(renderer, progress, cancel):
        requests = export.sweep_requests(renderer, request, "direction", frames)
        return export.export_video(renderer, [requests], path, fps=fps, quality=quality, total=len(requests),
                                   progress=progress, cancel=cancel)

    return work


def direction_grid_work(request, seeds_text, steps, path):
    """work(renderer, progress, cancel): a PNG grid, one row per seed, its columns request's edits
    scaled from -1 to 1 (the figure of the SeFa, StyleSpace and InterFaceGAN papers)."""
    from renderer import directions, export

    seeds = export.parse_seeds(seeds_text)
    cells = directions.sweep_grid_requests(request, seeds, steps)

    def work(renderer, progress, cancel):
        export.export_grid(renderer, cells, len(seeds), steps, path, request, "direction sweep",
                           progress=progress, cancel=cancel)
        return path

    return work


def save_direction_file(rows, path):
    """A direction as .npy, in the layout the Vectors panel and --direction read ([w_dim] for one row)."""
    from renderer import export

    array = np.asarray(rows, dtype=np.float32)
    return export.save_array(array[0] if array.shape[0] == 1 else array, path)
def class_in_use(state, model_info):
    """(class, how) a conditional network draws with: the Class field's, or (unticked) the one the
    renderer picks from the main seed, as NVIDIA's visualizer does; None for unconditional ones."""
    from renderer.renderer import seed_class

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


def frame_error(frame):
    return getattr(frame, "error", None)


def frame_image(frame):
    if getattr(frame, "cancelled", False):
        return None
    return getattr(frame, "image", None)


def frame_render_ms(frame):
    """Mapping plus synthesis time (loading a network is not rendering)."""
    timings = getattr(frame, "timings", None) or {}
    if "synthesis" not in timings:
        return None
    return (timings.get("mapping", 0.0) + timings["synthesis"]) * 1000


def frame_pkl(frame):
    request = getattr(frame, "request", None)
    return getattr(request, "pkl", None)


def frame_is_preview(frame):
    return bool(getattr(frame, "preview", False))


def frame_stats(frame):
    return dict(getattr(frame, "stats", None) or {})


def frame_request_json(frame):
    request = getattr(frame, "request", None)
    return request.to_dict() if isinstance(request, RenderRequest) else None


def model_info(engine, frame):
    """The model summary the panels need: the network's info plus its pkl, layers and noisy layers."""
    info = dict(getattr(frame, "info", None) or {})
    if not info:
        return None
    info["pkl"] = frame_pkl(frame)
    layers = [(name, tuple(shape)) for name, shape, *_ in getattr(frame, "layers", None) or []]
    if layers:
        info["layers"] = layers
    if "noise_layers" not in info:
        pattern = NOISY_LAYER.get(info.get("architecture"))
        info["noise_layers"] = [name for name, _ in layers if pattern and pattern.match(name)]
    return info


def session_json(state, model_info=None):
    """The session file: the RenderRequest JSON that `run_app.py frame --request` reads, plus the
    network's file name and sha256 (a session opened elsewhere finds its network beside it by them)."""
    from pathlib import Path

    from renderer.export import file_sha256
    from renderer.request_files import MODEL_NAME_KEY, MODEL_SHA256_KEY

    z_dim = (model_info or {}).get("z_dim")
    out = state.to_request(device="auto", z_dim=z_dim).to_dict()
    pkl = state["pkl"]
    if pkl and Path(pkl).is_file():
        out[MODEL_NAME_KEY], out[MODEL_SHA256_KEY] = Path(pkl).name, file_sha256(pkl)
    return out


def load_session(state, data, model_info=None):
    from renderer.request_files import request_from_data

    resolutions = (model_info or {}).get("ws_resolutions")
    request = request_from_data(data, "session", resolutions).request
    return state.load_request(request, resolutions)


def load_session_file(state, path, model_info=None):
    """Load a session file into the state: (notes, wanted network path or None).

    The file is parsed with its size and nesting bounded. Its network is opened only when it is
    the one open now or lies beside the file with the recorded sha256; otherwise the rest of the
    session is applied to the open network and `wanted` names the file it asks for.
    """
    from renderer.request_files import NetworkNotChosen, choose_network, read_request_file

    saved = read_request_file(path, (model_info or {}).get("ws_resolutions"))
    wanted, notes = None, []
    try:
        request = choose_network(saved, state["pkl"], "its path is in the Network panel: press Load to open it")
    except NetworkNotChosen as refusal:
        request, wanted = refusal.kept, refusal.wanted
        notes.append(str(refusal))
    return notes + state.load_request(request, (model_info or {}).get("ws_resolutions")), wanted
