"""Opens and closes a dearpygui window in a child process first: where GLFW cannot make one,
dearpygui aborts the whole process (glfwSetWindowPos: window != NULL), so the child takes that."""

import os
import subprocess
import sys
import time

PROBE_TRIES = 3  # a busy X server may refuse once and accept a moment later
PROBE_PAUSE_SECONDS = 1.0
PROBE_TIMEOUT_SECONDS = 60


def probe_once():
    """(ok, the child's last GLFW complaint or exit status)."""
    try:
        child = subprocess.run([sys.executable, __file__], capture_output=True, text=True,  # any cwd
                               timeout=PROBE_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        return False, f"opening a test window took over {PROBE_TIMEOUT_SECONDS} s"
    if child.returncode == 0:
        return True, ""
    lines = (child.stdout + child.stderr).splitlines()
    complaints = [line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("glfw error")]
    return False, complaints[-1] if complaints else f"a test window exited with status {child.returncode}"


def window_problem(tries=PROBE_TRIES, pause=PROBE_PAUSE_SECONDS, probe=probe_once):
    """None when a test window opened (within `tries`), else one line saying why not."""
    reason = ""
    for attempt in range(tries):
        ok, reason = probe()
        if ok:
            return None
        if attempt + 1 < tries:
            time.sleep(pause)
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or "this display"
    return f"cannot open a window on {display} ({reason}; tried {tries} times)"


def open_and_close():
    import dearpygui.dearpygui as dpg

    dpg.create_context()
    dpg.create_viewport(title="StyleScope (checking the display)", width=64, height=64, x_pos=0, y_pos=0)
    dpg.setup_dearpygui()
    dpg.show_viewport()
    dpg.render_dearpygui_frame()
    dpg.destroy_context()


if __name__ == "__main__":
    open_and_close()
