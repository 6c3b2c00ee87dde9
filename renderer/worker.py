"""RenderWorker: renders on a background thread; the newest request wins, stale renders stop early."""

import os
import sys
import threading
import time
import traceback

import torch

from renderer.renderer import Frame
from renderer.scheduler import Scheduler

# Niceness of a background worker's thread: when the UI and a render compete for the CPU, the UI
# wins (on Linux, where a thread's priority can be set on its own); an idle UI leaves the CPU to the render.
RENDER_THREAD_NICENESS = 5


def ui_threads():
    """Torch threads for a worker beside a UI: half the cores (the UI and a software GL renderer
    need the rest; on 2 cores 1 torch thread kept dearpygui near 45 fps, 2 made it stutter)."""
    return max(1, (os.cpu_count() or 2) // 2)


def lower_thread_priority():
    """Give the calling thread RENDER_THREAD_NICENESS (Linux only; elsewhere, or where not allowed, nothing)."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), RENDER_THREAD_NICENESS)
        except OSError:
            pass  # not allowed here: both threads keep the same priority


class RenderWorker:
    """One background thread around a Renderer.

    submit() never blocks: the request replaces any pending one, and a full render in flight for
    an older request stops at its next synthesis block (a preview, or where no preview shows a
    quick frame, is finished first: see scheduler.QUICK_RENDER_S). latest() returns the newest
    finished Frame (errors included, cancelled renders never). Where the scheduler wants a preview
    (renderer/scheduler.py) a request first gives a quick low-resolution frame (frame.preview; see
    Renderer.render), then the full one; networks without a cheap preview give the full frame
    straight away, and so does a change the renderer's block cache re-renders from above the
    preview's resolution (a fine-layer drag: that re-render is quicker than a preview).
    """

    def __init__(self, renderer, preview=False, preview_resolution=64, num_threads=None, on_frame=None,
                 scheduler=None, background=False):
        """preview, preview_resolution: a fixed Scheduler's; scheduler: another one (the window's).
        background: the thread runs at a lower priority than the UI's (lower_thread_priority)."""
        self.renderer = renderer
        self.background = background
        self.scheduler = scheduler or Scheduler(preview, preview_resolution)
        self.on_frame = on_frame  # called on the worker thread with each finished Frame
        # Torch's intra-op thread count is per calling thread (OpenMP), so the worker thread
        # sets its own; 0 leaves it alone.
        self.num_threads = ui_threads() if num_threads is None else num_threads
        self._cond = threading.Condition()
        self._pending = None
        self._calls = []  # WorkerCalls waiting, run before the pending request
        self._ticket = 0  # increments with each submit; a render checks it to notice staleness
        self._busy = False
        self._closing = False
        self._cache_behind = None  # a recalled request whose pass has not run through the block cache yet
        self._latest = None
        self._running_job = None  # the WorkerJob running now, told to stop on close
        self.frames_rendered = 0  # finished frames published (previews included)
        self._thread = threading.Thread(target=self._run, name="RenderWorker", daemon=True)
        self._thread.start()

    # -- caller side (any thread) --------------------------------------------------------

    def submit(self, request):
        """Queue `request`; it replaces any request not yet started. Never blocks on rendering."""
        with self._cond:
            if self._closing:
                return
            self._pending = request
            self._ticket += 1
            self._cond.notify_all()

    def prepare(self, request, hand):
        """In the background, when nothing else is queued or rendering, what the scheduler prepares
        for what the hand does (scheduler.Hand: resting after a network's first frame, hovering a
        noise slider), so that the next drag's first step costs what its later ones do. Shows
        nothing; a submit stops it at its next block. Returns whether it was queued."""
        run = self.scheduler.preparation(request, hand)
        if run is None:
            return False
        with self._cond:
            return self._queue_preparation(lambda should_stop: run(self.renderer, should_stop))

    def call(self, fn):
        """Run fn(renderer) on the worker thread, after the render in flight and before the next
        request, and return a WorkerCall to poll: the window's thread never runs the network, and
        the Renderer stays with one thread (the window's frozen w, directions between seeds, a
        network's principal directions). Calls run in the order made; none is dropped by a submit."""
        call = WorkerCall(fn)
        with self._cond:
            if self._closing:
                call.finish(error="the renderer is closed")
            else:
                self._calls.append(call)
                self._cond.notify_all()
        return call

    def start_job(self, fn):
        """Run fn(renderer, job) on the worker thread like call(), for work that goes on for a while
        (a drag): it posts what it has to show with job.post(value) and ends when job.stopped()
        says so; the window polls job.latest() and job.done(), never waiting. Requests submitted
        meanwhile wait for it (the newest one runs next)."""
        job = WorkerJob(fn)
        with self._cond:
            if self._closing:
                job.finish(error="the renderer is closed")
            else:
                self._calls.append(job)
                self._cond.notify_all()
        return job

    def _queue_preparation(self, run):
        """Queue run(should_stop) unless the worker is closing, busy or has a request waiting (under the lock)."""
        if self._closing or self._busy or self._pending is not None or self._calls:
            return False
        self._pending = _Preparation(run)
        self._ticket += 1
        self._cond.notify_all()
        return True

    def latest(self):
        """The newest finished Frame, or None before the first one."""
        with self._cond:
            return self._latest

    @property
    def busy(self):
        with self._cond:
            return self._busy or self._pending is not None or bool(self._calls)

    def wait_idle(self, timeout=None):
        """Block until nothing is pending or rendering; False on timeout. For scripts and tests."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._busy or self._pending is not None or self._calls:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self, timeout=None):
        """Stop the thread: the render in flight is cancelled at its next block, a job asked to stop.

        Waits for it by default: a torch thread still running at interpreter exit aborts the
        process, and one synthesis block of a large network on a slow CPU can take seconds."""
        with self._cond:
            self._closing = True
            self._pending = None
            calls, self._calls = self._calls, []
            self._cond.notify_all()
            running = self._running_job
        if running is not None:
            running.stop()
        for call in calls:
            call.finish(error="the renderer is closed")
        self._thread.join(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # -- worker thread -------------------------------------------------------------------

    def _run(self):
        if self.background:
            lower_thread_priority()
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        while True:
            with self._cond:
                while self._pending is None and not self._calls and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                if self._calls:
                    request, ticket = self._calls.pop(0), None
                else:
                    request, ticket = self._pending, self._ticket
                    self._pending = None
                self._busy = True
            try:
                if isinstance(request, WorkerJob):
                    self._running_job = request
                    request.run(self.renderer)
                    self._running_job = None
                elif isinstance(request, WorkerCall):
                    request.run(self.renderer)
                elif isinstance(request, _Preparation):
                    request.run(lambda: self._is_stale(ticket))
                else:
                    self._render(request, ticket)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _is_stale(self, ticket):
        # read without the lock: an int compare, and a late answer only costs one more block
        return self._closing or self._ticket != ticket

    def _render(self, request, ticket):
        shown = self.latest()
        should_stop = lambda: self._is_stale(ticket)  # noqa: E731
        only_closing = lambda: self._closing  # noqa: E731  (for the frame that is let finish)
        if shown is not None and not shown.preview and shown.error is None and shown.request == request:
            # Already on screen; the GUI may resubmit an unchanged state. A resubmit may also have
            # cancelled bringing the block cache up to a recalled frame: that goes on.
            if self._cache_behind == request:
                self._bring_cache_up(shown, should_stop)
            return
        preview_resolution = self.scheduler.preview_for(request)
        if preview_resolution is not None:
            # The preview runs to the end even when newer requests come in meanwhile (only closing
            # stops it): a drag sends one every few tens of ms, more often than a big network's
            # preview takes, so cancelled by each it would never show, and the picture would
            # freeze until the hand stops. Its full frame is what the next request cancels.
            frame = self._safe_render(request, should_stop, preview_resolution, preview_should_stop=only_closing)
            self._publish(frame)
            if not frame.preview:  # no preview for this network (or a recalled frame): that was the full frame
                self._bring_cache_up(frame, should_stop)
                return
        elif self.scheduler.finishes_anyway(request):
            # No preview shows meanwhile (previews off, or a layer view, which has none), and this
            # frame is quick: it is the one to finish.
            should_stop = only_closing
        if not should_stop():
            frame = self._safe_render(request, should_stop, None)
            self._publish(frame)
            self._bring_cache_up(frame, should_stop)

    def _bring_cache_up(self, frame, should_stop):
        """After a full frame is shown: where it was a recalled image, the pass it saved, unpublished
        and stopped by any newer request, so that the block cache follows what is shown and the next
        small change (a fine-layer drag) re-renders from where it enters, not from the first block.
        Not for recalled layer views: other views of one capture come recalled one after another,
        and a capture's pass reruns the layer's block wherever the cache does not hold its output."""
        if not frame.recalled or frame.request.layer is not None:
            return
        request = self._cache_behind = frame.request
        if not should_stop() and not self._safe_render(request, should_stop, None, recall=False).cancelled:
            self._cache_behind = None

    def _safe_render(self, request, should_stop, preview_resolution, preview_should_stop=None, recall=True):
        try:
            return self.renderer.render(request, should_stop=should_stop, preview_resolution=preview_resolution,
                                        preview_should_stop=preview_should_stop, recall=recall)
        except Exception as exc:  # Renderer.render should not raise; never let the thread die
            return Frame(request=request, error=f"{type(exc).__name__}: {exc}")

    def _publish(self, frame):
        if frame.cancelled:
            return
        self.scheduler.note(frame)
        with self._cond:
            self._latest = frame
            self.frames_rendered += 1
        if self.on_frame is not None:
            try:
                self.on_frame(frame)
            except Exception:  # a faulty callback must not stop the renders that follow
                traceback.print_exc()


class _Preparation:
    """Queued work that shows nothing (RenderWorker.prepare): run(should_stop)."""

    def __init__(self, run):
        self.run = run


class WorkerCall:
    """A function run on the worker thread (RenderWorker.call): poll done(), then read result or error."""

    def __init__(self, fn):
        self.fn = fn
        self.result = None
        self.error = None  # one line, where fn raised
        self._done = threading.Event()

    def done(self):
        return self._done.is_set()

    def wait(self, timeout=None):
        """Block until it ran; False on timeout. For scripts and tests (the window polls done())."""
        return self._done.wait(timeout)

    def run(self, renderer):
        try:
            with torch.no_grad():
                self.finish(result=self.fn(renderer))
        except Exception as exc:  # the caller shows it; the worker goes on
            self.finish(error=f"{type(exc).__name__}: {exc}".splitlines()[0])

    def finish(self, result=None, error=None):
        self.result, self.error = result, error
        self._done.set()


class WorkerJob(WorkerCall):
    """A WorkerCall that runs for a while (RenderWorker.start_job): fn(renderer, job) posts values
    for the window and stops when asked."""

    def __init__(self, fn):
        super().__init__(fn)
        self._stop = threading.Event()
        self._posted = None
        self.posts = 0  # how many values were posted

    def run(self, renderer):
        try:
            with torch.no_grad():  # what needs gradients turns them on itself
                self.finish(result=self.fn(renderer, self))
        except Exception as exc:  # the window shows it; the worker goes on
            self.finish(error=f"{type(exc).__name__}: {exc}".splitlines()[0])

    def stop(self):
        self._stop.set()

    def stopped(self):
        return self._stop.is_set()

    def post(self, value):
        """From the job: the newest thing to show (the window reads only the latest)."""
        self._posted = value
        self.posts += 1

    def latest(self):
        return self._posted
