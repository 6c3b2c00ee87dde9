"""Export jobs: the export errors, atomic output, rendering one picture for an export, and the
background job (progress, cancel) the window runs exports on."""

import threading
from pathlib import Path

from models.atomic_write import atomic_output as _atomic_output
from models.atomic_write import write_problem


class ExportError(ValueError):
    """An export could not be made; the message is one line a person can act on.

    A ValueError so that command lines report it like other input problems (one line, no trace).
    """


class ExportCancelled(Exception):
    """The user cancelled an export; nothing was left behind."""


# ---------------------------------------------------------------- atomic writing


def atomic_output(path):
    """Yield a temporary path in the target's folder; rename it onto `path` when the block ends.

    See models.atomic_write.atomic_output: readers see the old file or the whole new one; an
    error deletes the temporary file; an OSError becomes an ExportError naming `path`.
    """
    return _atomic_output(path, error_type=ExportError)


def writable_or_error(path):
    """None if a file can be created at `path`, else the one-line reason (checked before an
    hour of rendering, not after)."""
    return write_problem(path)


def fail_if_unwritable(path):
    """ExportError now, before an hour of rendering, when `path` cannot be written."""
    problem = writable_or_error(path)
    if problem:
        raise ExportError(problem)


def check_cancel(cancel):
    """ExportCancelled once the cancel event (a threading.Event, or None) is set."""
    if cancel is not None and cancel.is_set():
        raise ExportCancelled("export cancelled")


# ---------------------------------------------------------------- rendering for exports


def model_path_of(request):
    """The file a request's network comes from (the embedded default model when pkl is None)."""
    if request.pkl:
        return Path(request.pkl)
    from renderer.renderer import DEFAULT_MODEL

    return DEFAULT_MODEL


def render_image(renderer, request, cancel=None):
    """One picture, uint8 [H, W, 3]; a cancel stops the render between synthesis blocks."""
    should_stop = cancel.is_set if cancel is not None else None
    frame = renderer.render(request, should_stop=should_stop)
    if frame.cancelled or (cancel is not None and cancel.is_set()):
        raise ExportCancelled("export cancelled")
    if frame.error:
        raise ExportError(f"render failed: {frame.error}")
    return frame.image


# ---------------------------------------------------------------- background jobs


class ExportJob:
    """Runs one export on a thread of its own, with progress and cancel, for the GUI.

    work(progress, cancel) does the export (it should use its own Renderer, so the
    interactive worker is never blocked). Read done/total/finished/error/result from any
    thread; cancel() asks it to stop and the partial file is removed.
    """

    def __init__(self, description, work):
        self.description = description
        self._work = work
        self.cancel_event = threading.Event()
        self.done = 0
        self.total = 0
        self.finished = False
        self.cancelled = False
        self.error = None
        self.result = None
        self._thread = threading.Thread(target=self._run, name=f"Export: {description}", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def cancel(self):
        self.cancel_event.set()

    def wait(self, timeout=None):
        self._thread.join(timeout)
        return self.finished

    @property
    def fraction(self):
        return self.done / self.total if self.total else 0.0

    def _progress(self, done, total):
        self.done, self.total = done, total

    def _run(self):
        try:
            self.result = self._work(self._progress, self.cancel_event)
        except ExportCancelled:
            self.cancelled = True
        except Exception as error:  # shown in the panel; the window stays up
            text = str(error).strip().splitlines()
            self.error = text[0] if text else type(error).__name__
        finally:
            self.finished = True
