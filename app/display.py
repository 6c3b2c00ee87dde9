"""Whether an X display can be opened, asked before dearpygui (which aborts the process when there is none)."""

import ctypes
import ctypes.util
import os
import sys


def display_problem():
    """None when a window can be opened here, else one line saying why not."""
    if sys.platform in ("win32", "darwin"):
        return None
    name = os.environ.get("DISPLAY", "")
    if not name and not os.environ.get("WAYLAND_DISPLAY"):
        return "no display: DISPLAY is not set (run under a desktop session, or xvfb-run for a virtual one)"
    if not name:
        return None  # Wayland only; GLFW goes through XWayland and reports its own errors
    path = ctypes.util.find_library("X11")
    if path is None:
        return None  # cannot check; let GLFW try
    try:
        xlib = ctypes.CDLL(path)
        xlib.XOpenDisplay.restype = ctypes.c_void_p
        xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
        xlib.XCloseDisplay.argtypes = [ctypes.c_void_p]
        handle = xlib.XOpenDisplay(name.encode())
    except OSError:
        return None
    if not handle:
        return f"no display: cannot open X display {name!r}"
    xlib.XCloseDisplay(handle)
    return None
