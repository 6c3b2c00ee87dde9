"""Renderer: turns a RenderRequest into a Frame (image, layer list, statistics, timings, error), one network session at a time."""

import collections
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import models
from models import family
from models.errors import RenderCancelled
from models.runtime import tune_cpu
from renderer import display, passes, scheduler
from renderer.recent_frames import RECENT_CAPTURES_BYTES, RECENT_FRAMES_BYTES, frame_key
from renderer.request import RenderRequest
from renderer.session import NetworkSession

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "assets" / "default_model.safetensors"
MAX_NETWORKS = 2  # networks kept in memory (a 1024 StyleGAN2 is ~120 MB in fp32)


@dataclass
class Frame:
    """One rendered result. `error` is set instead of raising; `image` is then None."""

    image: np.ndarray | None = None  # uint8 [H, W, 3]
    request: RenderRequest | None = None
    layers: list = field(default_factory=list)  # [(name, shape tuple, resolution)], call order
    stats: dict = field(default_factory=dict)  # mean/std/min/max and sel_* over selected channels
    timings: dict = field(default_factory=dict)  # seconds: mapping, synthesis, total
    error: str | None = None
    error_trace: str | None = None  # the traceback, for unexpected errors only
    preview: bool = False  # a quick low-resolution stand-in for the full frame
    cancelled: bool = False  # stopped because a newer request arrived; carries no image
    reused_blocks: int = 0  # synthesis blocks (StyleGAN3: layers) taken from the block cache, not recomputed
    recalled: bool = False  # the image (or captured layer) was made lately with the same inputs: no pass ran
    tensor_shape: tuple | None = None  # shape of the shown tensor (image or captured layer)
    info: dict = field(default_factory=dict)  # the network: architecture, num_ws, resolution...

    @property
    def kind(self):
        """'preview', 'recalled' (a recent frame of the same inputs: no pass ran) or 'full'."""
        return "preview" if self.preview else "recalled" if self.recalled else "full"


def resolve_device(device):
    """'auto' -> 'cuda' when available, else 'cpu'; anything else unchanged."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class Renderer:
    """Renders requests; keeps a NetworkSession per loaded network. Use one per thread."""

    def __init__(self, device="auto", load=None, recent_frames_bytes=RECENT_FRAMES_BYTES,
                 recent_captures_bytes=RECENT_CAPTURES_BYTES):
        """recent_frames_bytes: per network, full images kept for going back to; recent_captures_bytes:
        per network, captured layer outputs kept for other views of them (0: none)."""
        tune_cpu()  # process-wide malloc settings: a 1024 px frame otherwise faults in fresh pages per layer
        self.device = resolve_device(device)
        self._load = load or models.load_generator  # tests pass a stand-in loader
        self.sessions = collections.OrderedDict()  # (path, mtime, size, device, precision) -> NetworkSession
        self._recent_bytes = recent_frames_bytes
        self._captures_bytes = recent_captures_bytes
        # A Renderer is meant for one thread; should two threads share one anyway, only one of them
        # uses the block caches at a time (the other renders uncached) rather than corrupt them.
        self._block_cache_lock = threading.Lock()

    # -- public --------------------------------------------------------------------------

    def render(self, request, should_stop=None, preview_resolution=None, preview_should_stop=None, recall=True):
        """Render `request` into a Frame; never raises (errors come back in frame.error).

        should_stop: callable checked between synthesis blocks; True cancels the render.
        preview_resolution: a quick low-resolution frame instead, upscaled to full size and marked
        frame.preview: the network's own image at block b{preview_resolution} (skip StyleGAN2,
        StyleGAN v1), else a reduced render at that resolution (orig/resnet StyleGAN2, StyleGAN3;
        at most half the image's). Networks without either render in full (frame.preview False).
        "auto": an eighth of the image's size, and no preview below AUTO_PREVIEW_MIN_IMAGE.
        preview_should_stop: checked instead of should_stop while the quick frame is made (the
        preview, or the cached full frame that stands in for one); None: should_stop.
        recall: a full frame made lately with the same inputs comes back without a pass
        (frame.recalled); False: the pass runs anyway (the worker's way to bring the block cache
        up to a recalled frame).
        """
        start = time.perf_counter()
        frame = Frame(request=request)
        try:
            self._render_frame(frame, request, should_stop, preview_resolution, preview_should_stop, recall)
        except RenderCancelled:
            frame.cancelled = True
        except Exception as exc:  # the caller gets a frame with a readable error
            frame.error = error_text(exc)
            if not isinstance(exc, (ValueError, models.LoadError)):
                frame.error_trace = traceback.format_exc()
        if frame.error or frame.cancelled:
            frame.image = None
        frame.timings["total"] = time.perf_counter() - start
        return frame

    def session(self, request):
        """The NetworkSession of the network a request names (loaded once per file, device and precision)."""
        path = Path(request.pkl) if request.pkl else DEFAULT_MODEL
        if not path.is_file():
            what = "default model" if request.pkl is None else "network file"
            raise models.LoadError(f"{path}: {what} not found")
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, self._device_of(request), request.precision)
        session = self.sessions.get(key)
        if session is None:
            G = self._load(str(path), device=key[3])
            session = self.sessions[key] = NetworkSession(key, G, self._block_cache_lock, self._recent_bytes,
                                                          self._captures_bytes)
            while len(self.sessions) > MAX_NETWORKS:
                self.sessions.popitem(last=False)  # the oldest network, and everything kept for it
        self.sessions.move_to_end(key)
        return session

    def load(self, request):
        """(key, G): the generator a request names."""
        session = self.session(request)
        return session.key, session.G

    def compute_ws(self, request):
        """The final ws [1, num_ws, w_dim] for a request (mapping, blend, mixing, offset)."""
        with torch.no_grad():
            return self.session(request).compute_ws(request)

    def principal_directions(self, request):
        """(components [PCA_COMPONENTS, w_dim], sigmas [PCA_COMPONENTS]), float64 numpy: the principal
        axes of W for the request's network (and class, else random classes), largest variance
        first, each unit length; sigma is the standard deviation of w along it. From PCA_SAMPLES
        z's of a fixed seed, so the same every time; kept per network."""
        return self.session(request).principal_directions(request.class_idx)

    def synthesis_settings(self, request):
        """The noise and precision settings a request's synthesis pass runs with (a drag's passes
        use them, so that its frames are the request's): noise_mode, noise_strength (per layer
        where set), noise_seed, force_fp32."""
        session = self.session(request)
        return dict(noise_mode=request.noise_mode, noise_strength=session.noise_strength(request),
                    noise_seed=request.noise_seed, force_fp32=request.precision != "fp16")

    def derived(self, request, what, make):
        """make(G) for the request's network, computed once and kept with it (e.g. StyleSpace
        statistics, renderer/directions.py): `what` names the value, and must say everything
        besides the network that it depends on."""
        session = self.session(request)
        if what not in session.derived:
            with torch.no_grad():
                session.derived[what] = make(session.G)
        return session.derived[what]

    def layers(self, request):
        """[(name, shape, resolution)] for the network a request names (one discovery pass)."""
        session = self.session(request)
        with torch.no_grad():
            return passes.discover_layers(session, session.compute_ws(request), request)

    def _device_of(self, request):
        device = self.device if request.device == "auto" else request.device
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device: {device} is not available here (no CUDA); use cpu or auto")
        if device == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError("device: mps is not available here; use cpu or auto")
        return device

    # -- a frame, top to bottom ----------------------------------------------------------

    def _render_frame(self, frame, request, should_stop, preview_resolution, preview_should_stop=None, recall=True):
        # The network: its session holds everything kept for it.
        session = self.session(request)
        G = session.G
        if session.info is None:
            session.info = network_info(G)
        frame.info = dict(session.info)
        with torch.no_grad():
            # Latents: mapping, seed blend, style mixing, offsets (mapped seeds are kept).
            t0 = time.perf_counter()
            ws = session.compute_ws(request)
            t1 = time.perf_counter()
            frame.timings["mapping"] = t1 - t0

            # Synthesis settings, and what the request sets inside the network.
            kwargs = session.synthesis_kwargs(request, should_stop)
            session.set_inside(request)
            preview_resolution = scheduler.auto_resolution(G, preview_resolution)
            quick = preview_resolution and request.layer is None and family.preview_kind(G)
            if quick and preview_should_stop is not None:
                kwargs["should_stop"] = preview_should_stop
            inputs = frame_key(session.key, G, ws, kwargs)  # the frame's one key: recent frames, captures

            # The pass: a preview, a layer's capture or the full image (each may come without one).
            if quick and scheduler.preview_helps(session, ws, kwargs, preview_resolution, inputs if recall else None):
                tensor = passes.preview_image(G, ws, kwargs, preview_resolution)
                frame.preview = True
                frame.layers = session.layers or []
            elif request.layer is not None:
                frame.layers = passes.discover_layers(session, ws, request)
                tensor, frame.recalled = passes.layer_output(session, ws, kwargs, inputs, request.layer, recall)
            else:
                tensor, frame.recalled = passes.full_image(session, ws, kwargs, inputs, recall)
                frame.layers = session.layers
            if not (frame.recalled or frame.preview):
                frame.reused_blocks = session.block_cache.reused()
            if tensor.is_cuda:
                torch.cuda.synchronize(tensor.device)
            frame.timings["synthesis"] = time.perf_counter() - t1

            # The display mapping: channels, normalization, gain, FFT; then upscaling and output scale.
            frame.tensor_shape = tuple(tensor.shape)
            is_image = request.layer is None or frame.preview
            frame.image, frame.stats = display.to_view(tensor, request, is_image)
            if frame.preview:
                frame.image = display.upscale_nearest(frame.image, G.img_resolution // tensor.shape[-1])
            frame.image = display.output_scale(frame.image, request.output_scale)


def error_text(exc):
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, (ValueError, models.LoadError)) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def network_info(G):
    info = dict(getattr(G, "info", {}) or {})
    info.pop("init_kwargs", None)
    info.update(
        architecture=getattr(G, "architecture", info.get("architecture")),
        z_dim=G.z_dim, c_dim=G.c_dim, w_dim=G.w_dim, num_ws=G.num_ws,
        img_resolution=G.img_resolution, img_channels=G.img_channels,
        ws_resolutions=list(G.synthesis.ws_resolutions),
        noise_layers=family.noise_layers(G),
    )
    return info
