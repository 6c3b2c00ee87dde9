"""Scheduler: the responsiveness policy in one place: when to preview and at what size, what a newer request cancels, what idle and hover time prepares."""

from dataclasses import dataclass

import torch

from models import family
from models.runtime import reserve_heap
from renderer import passes

# The window's previews (Scheduler(adaptive=True)): only where a full frame of the network took
# longer than this (a slow device), at an eighth of the image side, at least PREVIEW_MIN px.
SLOW_RENDER_MS = 120
PREVIEW_MIN = 16
# preview_resolution "auto" (a network's first frame, before its size and cost are known): an eighth
# of the image for images at least this big; smaller networks render in full straight away (a
# 1024 px one shows a preview in 0.2-0.6 s instead of its full frame in 1-6 s).
AUTO_PREVIEW_MIN_IMAGE = 256
# Staged caches (StyleGAN3, v1): no preview when the cached re-render runs at most this share of a
# pass (a StyleGAN3 preview costs 9-13% of one; a change at its last layers re-renders in 6-8%).
CACHED_PREVIEW_SKIP = 0.15
# Where no preview shows meanwhile (previews off, or a layer view), a frame expected to take at
# most this long (the last one of that network and view that the block cache did not shorten)
# runs to the end when newer requests come in: a drag sends one every few tens of ms, and
# cancelled by each, a 50-300 ms frame would never reach the screen.
QUICK_RENDER_S = 0.3
# Heap faulted in beside the block cache's growth when a network is prepared for drags: the next
# previews' temporaries (StyleGAN3-R 512: the first preview after a prepared one faulted 2.9 k
# pages, 0.30 against 0.26 s).
PREVIEW_HEAP_HEADROOM = 64 << 20


@dataclass(frozen=True)
class Hand:
    """What the user's hand is doing besides what the request says, so that the scheduler prepares
    what it will do next while the renderer is idle."""

    resting: bool = False  # a network's first full frame is up: prepare the first drag's previews
    hovering_noise_layer: str | None = None  # the mouse rests on this layer's noise-strength slider


def preview_resolution(img_resolution):
    """The window's preview resolution: an eighth of the image side (1024 -> 128), at least PREVIEW_MIN."""
    return max(PREVIEW_MIN, int(img_resolution or 0) // 8)


def previews_pay(wanted, last_render_ms, img_resolution):
    """Previews only on a slow device and a network larger than the preview: else the full frame is as quick."""
    slow = last_render_ms is not None and last_render_ms > SLOW_RENDER_MS
    return bool(wanted) and slow and int(img_resolution or 0) > preview_resolution(img_resolution)


class Scheduler:
    """The RenderWorker's policy. Fixed (adaptive False): previews of every image request at
    `preview_resolution` px when `preview` is on. Adaptive (the window's): `preview` says the
    user wants them; they are made where they pay (previews_pay), judged by the network's last
    full frame, and at "auto" size for a network not rendered yet."""

    def __init__(self, preview=False, preview_resolution=64, adaptive=False):
        self.preview = preview
        self.preview_resolution = preview_resolution
        self.adaptive = adaptive
        self._seconds = {}  # (pkl, layer) -> mapping + synthesis time of its last uncached frame
        self._network = {}  # pkl -> (img_resolution, ms of its last uncached full frame or None)

    def preview_for(self, request):
        """The preview resolution for `request` (px or "auto"), or None: the full frame straight away."""
        if request.layer is not None or not self.preview:
            return None  # a layer view has no preview
        if not self.adaptive:
            return self.preview_resolution
        size, ms = self._network.get(request.pkl, (None, None))
        if ms is None:
            return "auto"
        return preview_resolution(size) if previews_pay(True, ms, size) else None

    def finishes_anyway(self, request):
        """Whether a full frame with no preview before it runs to the end when newer requests
        come in (it is quick: see QUICK_RENDER_S)."""
        return self._seconds.get((request.pkl, request.layer), QUICK_RENDER_S + 1) <= QUICK_RENDER_S

    def note(self, frame):
        """Learn from a finished frame: its network's size and, for an uncached full frame, its cost."""
        request, timings = frame.request, frame.timings or {}
        if request is None or frame.image is None:
            return
        size, ms = self._network.get(request.pkl, (None, None))
        size = (frame.info or {}).get("img_resolution", size)
        if not (frame.preview or frame.reused_blocks or frame.recalled) and "synthesis" in timings:
            seconds = timings["synthesis"] + timings.get("mapping", 0.0)
            self._seconds[(request.pkl, request.layer)] = seconds
            ms = seconds * 1000
        self._network[request.pkl] = (size, ms)

    def preparation(self, request, hand):
        """What to prepare for `hand` while idle: run(renderer, should_stop) -> bool, or None."""
        if hand.hovering_noise_layer is not None:
            layer = hand.hovering_noise_layer
            return lambda renderer, should_stop: prepare_noise_drag(renderer, request, layer)
        if hand.resting:
            resolution = self.preview_resolution
            if self.adaptive:
                size, ms = self._network.get(request.pkl, (None, None))
                resolution = preview_resolution(size) if previews_pay(self.preview, ms, size) else None
            if resolution is not None:
                return lambda renderer, should_stop: prepare_for_drags(renderer, request, resolution, should_stop)
        return None


def auto_resolution(G, resolution):
    """A preview resolution with "auto" resolved for network G (None: no preview)."""
    if resolution == "auto":
        return G.img_resolution // 8 if G.img_resolution >= AUTO_PREVIEW_MIN_IMAGE else None
    return resolution


def preview_helps(session, ws, kwargs, resolution, recall_key=None):
    """False when the full frame is a recent one (recall_key: the request's frame_key, None where
    nothing may be recalled), when the cached full frame would recompute only blocks above the
    preview's resolution (a fine-layer drag), or (a staged cache, by estimated cost) at most
    CACHED_PREVIEW_SKIP of a pass: that re-render is then itself the quick frame."""
    if session.recent.get(recall_key) is not None:
        return False  # the full frame was made lately: it comes back at once
    G, cache = session.G, session.block_cache
    layered = family.cache_kind(G) == "stages"  # StyleGAN3, v1
    if not (layered or (cache.entries and family.cache_kind(G) == "blocks")):
        return True
    same = passes.cache_settings(kwargs)
    if not session.block_cache_lock.acquire(blocking=False):
        return True
    try:
        if layered:
            return cache.rerun_fraction(G.synthesis, ws, **same) > CACHED_PREVIEW_SKIP
        start = cache.rerun_from(G.synthesis, ws, **same)
    finally:
        session.block_cache_lock.release()
    return start is not None and start <= resolution


def prepare_for_drags(renderer, request, resolution, should_stop=None):
    """What the first drag on a network would pay for, done now (while the window rests after its
    first frame): `request`'s preview at `resolution`, made and dropped (what the network prepares
    on the way for later previews stays: StyleGAN3-T 1024's first took 1.4 s against 0.35-0.4 s
    after), and heap memory faulted in for the block cache's re-renders. True when done; False
    for no preview kind, a layer view, a cancel (should_stop) or an error (the real render
    reports those)."""
    try:
        session = renderer.session(request)
        G = session.G
        if request.layer is not None or not family.preview_kind(G):
            return False
        with torch.no_grad():
            ws = session.compute_ws(request)
            session.set_inside(request)
            passes.preview_image(G, ws, session.synthesis_kwargs(request, should_stop), resolution)
        growth = PREVIEW_HEAP_HEADROOM + session.block_cache.rerender_growth()
        if session.device.type == "cpu" and not (should_stop and should_stop()):
            reserve_heap(growth)  # ~0.45 s of page faults at 1024 px: not once a request waits
        return True
    except Exception:  # RenderCancelled included: nothing to show either way
        return False


def prepare_noise_drag(renderer, request, layer_name):
    """Before a drag of one layer's noise strength (the mouse rests on its slider): that layer's
    convolution output before noise, computed from the block cache's pass of `request` (the image
    on screen) and kept there, so that the drag's first step skips the convolution as its later
    steps do (BlockCache.prepare_noise_drag). True when kept; False where that does not apply (a
    cache kind without it, another request than the cached one, a layer view) or on an error
    (the real render reports those)."""
    try:
        session = renderer.session(request)
        G = session.G
        if request.layer is not None or family.cache_kind(G) != "blocks":
            return False
        layer = passes.layer_module(G, layer_name, [])
        with torch.no_grad():
            ws = session.compute_ws(request)
            session.set_inside(request)
            kwargs = session.synthesis_kwargs(request, None)
            if not session.block_cache_lock.acquire(blocking=False):
                return False
            try:
                return session.block_cache.prepare_noise_drag(G.synthesis, ws, layer, **passes.cache_settings(kwargs))
            finally:
                session.block_cache_lock.release()
    except Exception:
        return False
