"""Idle CPU of the real window under a private Xvfb: a core's share used while nobody touches it.

`python bench/idle_cpu.py [--seconds 5]` opens the window on the embedded default model, waits
for its first frame and the idle delay, reads /proc/<pid>/stat over a few seconds, then does the
same with frames drawn at the idle frame rate instead of waiting for input (the loop before
wait_for_input; STYLESCOPE_NO_INPUT_WAIT=1), side by side.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from gui_driver import AppUnderTest, VirtualScreen  # noqa: E402


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_share(seconds, extra_env):
    screen = VirtualScreen()
    with tempfile.TemporaryDirectory() as workdir:
        app = AppUnderTest(screen, workdir, extra_env=extra_env)
        try:
            app.wait_for_frame(timeout=180)
            time.sleep(3.0)  # the idle delay, and the first layout
            before, start = cpu_seconds(app.process.pid), time.monotonic()
            time.sleep(seconds)
            return (cpu_seconds(app.process.pid) - before) / (time.monotonic() - start)
        finally:
            app.kill()
            screen.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    waiting = idle_share(args.seconds, {})
    drawing = idle_share(args.seconds, {"STYLESCOPE_NO_INPUT_WAIT": "1"})
    print(f"idle window, waits for input:        {100 * waiting:5.1f}% of a core")
    print(f"idle window, draws at the idle rate: {100 * drawing:5.1f}% of a core")


if __name__ == "__main__":
    main()
