"""Drives the real explorer window for the GUI tests: an Xvfb of its own, xdotool input, screenshots, the app's test log."""

import contextlib
import ctypes
import ctypes.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SCREEN_W, SCREEN_H = 1600, 1000


def missing_tools():
    return [tool for tool in ("Xvfb", "xdotool", "import") if shutil.which(tool) is None]


def free_display():
    """A display number with neither a lock file nor a socket."""
    for number in range(90, 400):
        if not Path(f"/tmp/.X{number}-lock").exists() and not Path(f"/tmp/.X11-unix/X{number}").exists():
            return number
    raise RuntimeError("no free X display number")


class VirtualScreen:
    """An Xvfb server on a free display, stopped on exit."""

    def __init__(self):
        self.number = free_display()
        self.display = f":{self.number}"
        self.process = subprocess.Popen(
            ["Xvfb", self.display, "-screen", "0", f"{SCREEN_W}x{SCREEN_H}x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not Path(f"/tmp/.X11-unix/X{self.number}").exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Xvfb {self.display} did not start")
            time.sleep(0.1)
        time.sleep(0.3)

    def env(self):
        return {**os.environ, "DISPLAY": self.display}

    def run(self, *args, check=True):
        return subprocess.run(list(args), env=self.env(), check=check, capture_output=True, text=True, timeout=30)

    def screenshot(self, path):
        self.run("import", "-window", "root", str(path))
        return np.asarray(Image.open(path).convert("RGB"))

    # --- input, like a person ---------------------------------------------------------------
    def move(self, x, y):
        self.run("xdotool", "mousemove", str(int(x)), str(int(y)))

    def click(self, x, y, button=1):
        self.run("xdotool", "mousemove", str(int(x)), str(int(y)), "sleep", "0.05", "click", str(button))

    def drag(self, x0, y0, x1, y1, steps=12, pause=0.04):
        x1, y1 = min(max(x1, 0), SCREEN_W - 1), min(max(y1, 0), SCREEN_H - 1)
        self.run("xdotool", "mousemove", str(int(x0)), str(int(y0)), "sleep", "0.1", "mousedown", "1")
        for i in range(1, steps + 1):
            t = i / steps
            time.sleep(pause)
            self.run("xdotool", "mousemove", str(int(x0 + (x1 - x0) * t)), str(int(y0 + (y1 - y0) * t)))
        time.sleep(0.15)
        self.run("xdotool", "mouseup", "1")

    def key(self, *keys):
        """Press keys like a hand: modifiers go down first and stay down a moment (a quick
        xdotool chord can land within one UI frame, with Ctrl already released)."""
        for key in keys:
            *modifiers, main = key.split("+")
            if modifiers:
                self.run("xdotool", "keydown", "+".join(modifiers), "sleep", "0.12", "key", main, "sleep", "0.12",
                         "keyup", "+".join(modifiers))
            else:
                self.run("xdotool", "key", main)
            time.sleep(0.05)

    def type(self, text):
        self.run("xdotool", "type", "--delay", "20", text)

    def close(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def send_close_request(display, title="StyleScope"):
    """Ask the window to close the way a window manager does (WM_DELETE_WINDOW), through libX11."""
    xlib = ctypes.CDLL(ctypes.util.find_library("X11"))
    xlib.XOpenDisplay.restype = ctypes.c_void_p
    xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    xlib.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    xlib.XDefaultRootWindow.restype = ctypes.c_ulong
    xlib.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    xlib.XInternAtom.restype = ctypes.c_ulong
    xlib.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    xlib.XFlush.argtypes = [ctypes.c_void_p]
    xlib.XCloseDisplay.argtypes = [ctypes.c_void_p]
    window_ids = subprocess.run(["xdotool", "search", "--name", title], env={**os.environ, "DISPLAY": display},
                                capture_output=True, text=True).stdout.split()
    if not window_ids:
        raise RuntimeError(f"no window named {title!r}")
    handle = xlib.XOpenDisplay(display.encode())

    class ClientMessage(ctypes.Structure):
        _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                    ("display", ctypes.c_void_p), ("window", ctypes.c_ulong), ("message_type", ctypes.c_ulong),
                    ("format", ctypes.c_int), ("data", ctypes.c_long * 5), ("pad", ctypes.c_long * 12)]

    protocols = xlib.XInternAtom(handle, b"WM_PROTOCOLS", 0)
    delete = xlib.XInternAtom(handle, b"WM_DELETE_WINDOW", 0)
    for window in window_ids:
        event = ClientMessage(type=33, window=int(window), message_type=protocols, format=32)  # 33: ClientMessage
        event.data[0] = delete
        xlib.XSendEvent(handle, int(window), 0, 0, ctypes.byref(event))
    xlib.XFlush(handle)
    xlib.XCloseDisplay(handle)


class AppUnderTest:
    """The explorer in a subprocess on a VirtualScreen, with its JSON-lines test log."""

    def __init__(self, screen, workdir, pkl=None, extra_args=(), extra_env=None, window_only=False,
                 display_filter="pixel"):
        self.screen = screen
        self.workdir = Path(workdir)
        if display_filter:  # the tests compare the screen with frames: whole pixels, unless asked
            (self.workdir / "config").mkdir(parents=True, exist_ok=True)
            (self.workdir / "config" / "settings.json").write_text(json.dumps({"display_filter": display_filter}))
        self.log_path = self.workdir / "app_log.jsonl"
        self.stderr_path = self.workdir / "app_stderr.txt"
        # tests/window_log.py watches the window (app/observer.py) and writes the log the tests read.
        env = {**screen.env(), "STYLESCOPE_OBSERVER": "window_log", "STYLESCOPE_TEST_LOG": str(self.log_path),
               "STYLESCOPE_CONFIG_DIR": str(self.workdir / "config"), "STYLESCOPE_SAVE_DIR": str(self.workdir),
               "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
               **(extra_env or {})}
        # run_app.py is the user's command; app.main runs the same window (and takes --session).
        if (ROOT / "run_app.py").exists() and not window_only:
            command = [sys.executable, str(ROOT / "run_app.py")]
        else:
            command = [sys.executable, "-m", "app.main"]
        if pkl:
            command += ["--pkl", str(pkl)]
        command += list(extra_args)
        self.stderr_file = open(self.stderr_path, "w")
        self.process = subprocess.Popen(command, cwd=self.workdir, env=env, stdout=self.stderr_file,
                                        stderr=subprocess.STDOUT)

    def alive(self):
        return self.process.poll() is None

    def events(self, kind=None):
        if not self.log_path.exists():
            return []
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line being written right now
            if kind is None or event.get("event") == kind:
                out.append(event)
        return out

    def wait_for(self, predicate, timeout=60, what="event"):
        """The first value predicate(events) returns that is truthy, polling the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate(self.events())
            if value:
                return value
            if not self.alive():
                raise AssertionError(f"app exited ({self.process.returncode}) waiting for {what}:\n{self.output()}")
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; output:\n{self.output()[-3000:]}")

    def frames(self):
        return self.events("frame")

    def wait_for_frame(self, after=0, predicate=lambda f: True, timeout=60, full=True):
        """The first frame logged after the first `after` ones that satisfies predicate."""
        def find(events):
            frames = [e for e in events if e.get("event") == "frame"][after:]
            for frame in frames:
                if predicate(frame) and not (full and frame.get("preview")):
                    return frame
            return None
        return self.wait_for(find, timeout, "a frame")

    def rects(self, after_time=0.0):
        found = [e for e in self.events("rects") if e["time"] >= after_time]
        return found[-1] if found else None

    def wait_for_rects(self, after_time=0.0, timeout=30):
        return self.wait_for(lambda ev: self.rects(after_time), timeout, "item rects")

    def wait_for_item(self, name, after_time=0.0, timeout=30):
        """The latest rects event (from after_time on) in which item `name` is on screen."""
        def shown(_events):
            rects = self.rects(after_time)
            return rects if rects and name in rects["rects"] else None
        return self.wait_for(shown, timeout, f"{name} on screen")

    def close_window(self, timeout=30):
        send_close_request(self.screen.display)
        try:
            return self.process.wait(timeout)
        finally:
            self.stderr_file.close()

    def output(self):
        if not self.stderr_file.closed:
            self.stderr_file.flush()
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def kill(self):
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if not self.stderr_file.closed:
            self.stderr_file.close()


@contextlib.contextmanager
def laid_out_app(screen, workdir, **kwargs):
    """An AppUnderTest whose first frame is on screen and laid out; killed on exit, a setup that
    fails included (a window left running would slow every later test)."""
    app = AppUnderTest(screen, workdir, **kwargs)
    try:
        app.wait_for_frame(timeout=120)
        app.wait_for_rects(after_time=app.frames()[0]["time"])
        yield app
    finally:
        app.kill()


def crop(image, rect):
    x0, y0, x1, y1 = (int(round(v)) for v in rect)
    return image[y0:y1, x0:x1]


def downsample(image, size):
    """Average blocks to size x size (the shown image is an integer zoom of the frame)."""
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BOX)).astype(np.float32)


def take_screenshot(out, pkl, clicks=(), keys=(), settle=2.0, session=None):
    """Open the app on pkl in a private Xvfb, click the named items, press keys, save a screenshot
    of the window: `python tests/gui_driver.py out.png network.pkl [--session s.json] [item ...]`."""
    import tempfile

    screen = VirtualScreen()
    with tempfile.TemporaryDirectory() as workdir:
        app = AppUnderTest(screen, workdir, pkl=pkl, extra_args=["--session", str(session)] if session else (),
                           window_only=bool(session))
        try:
            app.wait_for_frame(timeout=120)
            for item in clicks:
                rects = app.wait_for_rects(after_time=app.frames()[-1]["time"])
                rects = app.rects()
                vx, vy = rects.get("viewport_pos", [0, 0])
                x0, y0, x1, y1 = rects["rects"][item]
                screen.click(vx + (x0 + x1) / 2, vy + (y0 + y1) / 2)
                time.sleep(0.8)
            for key in keys:
                screen.key(key)
                time.sleep(0.5)
            time.sleep(settle)
            rects = app.rects()
            shot = screen.screenshot(out)
            width, height = rects["viewport"]
            Image.fromarray(shot[:height, :width]).save(out)
        finally:
            app.kill()
            screen.close()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="screenshot of the explorer under a private Xvfb")
    parser.add_argument("out")
    parser.add_argument("pkl")
    parser.add_argument("clicks", nargs="*", help="item tags to click first (see the app's test log)")
    parser.add_argument("--session", help="a session JSON to open")
    cli = parser.parse_args()
    take_screenshot(cli.out, cli.pkl, clicks=cli.clicks, session=cli.session)
