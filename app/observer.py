"""The window's observer: named points an outside module (the GUI tests' log) may watch; by default nothing watches."""

import importlib
import os


class Observer:
    """Watches nothing. A module named by STYLESCOPE_OBSERVER provides one that records (tests/window_log.py)."""

    def note(self, event, **data):
        """Something happened: an edit, a status line, an error, a key, a saved session ..."""

    def engine_started(self, engine):
        """The engine door (app/bridge.py) is open; no request was sent yet."""

    def frame_shown(self, window, frame):
        """A rendered frame is on screen."""

    def pixels_shown(self, window):
        """Pixels that are no render of the state are on screen (a drag's steps)."""

    def drawn(self, window):
        """The window drew one UI frame."""

    def before_wait(self, window):
        """The idle window may wait for input next."""

    def busy(self, window):
        """Whether the observer still waits for something to be drawn (the window keeps drawing)."""
        return False


def installed_observer():
    """Observer() unless STYLESCOPE_OBSERVER names a module whose make_observer() makes one."""
    name = os.environ.get("STYLESCOPE_OBSERVER")
    if not name:
        return Observer()
    return importlib.import_module(name).make_observer()
