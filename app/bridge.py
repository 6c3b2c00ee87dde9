"""Engine: the app's one door to the renderer (requests out, frames in), and readers for what a Frame carries."""

import dataclasses
import os
import re

import numpy as np

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


class Engine:
    """Wraps RenderWorker: builds requests from the state and hands frames back to the main loop."""

    def __init__(self, args, renderer=None):
        from renderer.renderer import DEFAULT_MODEL, Renderer
        from renderer.worker import RenderWorker

        self.default_model_path = DEFAULT_MODEL
        self.renderer = renderer or Renderer(device=getattr(args, "device", None) or "auto")
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
    """The session file: exactly the RenderRequest JSON that `run_app.py frame --request` reads."""
    z_dim = (model_info or {}).get("z_dim")
    return state.to_request(device="auto", z_dim=z_dim).to_dict()


def load_session(state, data, model_info=None):
    request = RenderRequest.from_dict(data)
    return state.load_request(request, (model_info or {}).get("ws_resolutions"))
