"""Benchmark the window: UI frame time (p50, p95) idle and while the worker renders nonstop, on a fixture and a 1024 net.

Run: `.venv/bin/python bench/ui.py` (starts its own Xvfb when there is no DISPLAY). Under Xvfb the
window is drawn in software (llvmpipe), which itself costs CPU, so read busy/idle as a ratio.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FIXTURE = ROOT.parent / "shared" / "fixtures" / "sg2ada_64.pkl"


def full_size_generator():
    """StyleGAN2 config-f at 1024 px (FFHQ's shape) with random weights."""
    from models.stylegan2 import Generator

    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=1024, img_channels=3,
                  mapping_kwargs=dict(num_layers=8),
                  synthesis_kwargs=dict(channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256))
    return G.eval().requires_grad_(False)


def percentiles(seconds):
    ms = np.array(seconds) * 1000
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)), "frames": len(ms)}


def measure(case, idle_seconds, busy_seconds):
    """Run the real window loop in this process; returns the frame times of both phases."""
    import dearpygui.dearpygui as dpg

    from app.window import Window
    from renderer.renderer import Renderer

    if case == "fixture":
        args = types.SimpleNamespace(pkl=str(FIXTURE), device="cpu")
    else:
        G = full_size_generator()
        # Any existing file stands for the network; the loader hands back the in-memory one.
        args = types.SimpleNamespace(pkl=__file__, device="cpu",
                                     renderer=Renderer(device="cpu", load=lambda path, device="cpu": G))
    dpg.create_context()
    dpg.configure_app(manual_callback_management=True)
    app = Window(args, dpg)
    result = {"case": case}
    try:
        app.build()
        dpg.create_viewport(title="StyleScope bench", width=1440, height=920, x_pos=0, y_pos=0)
        dpg.setup_dearpygui()
        dpg.show_viewport()
        app.start_engine()

        app_work = []

        def frame():
            start = time.perf_counter()
            app_work.append(app.frames.step())
            return time.perf_counter() - start

        deadline = time.monotonic() + 300
        while app.picture.last_full_frame is None and time.monotonic() < deadline:
            frame()
        if app.picture.last_full_frame is None:
            raise RuntimeError(f"no frame: {app.status_text}")
        result["render_ms"] = app.picture.render_ms
        result["resolution"] = app.picture.texture.width
        for _ in range(20):  # settle the layout
            frame()

        idle, app_work[:] = [], []
        end = time.monotonic() + idle_seconds
        while time.monotonic() < end:
            idle.append(frame())

        busy, renders, seed = [], 0, 0
        shown = app.picture.last_frame
        app.edit("seed_x", float(seed := seed + 1), coalesce=False)
        end = time.monotonic() + busy_seconds
        while time.monotonic() < end:
            busy.append(frame())
            if app.picture.last_frame is not shown:  # a frame arrived: ask for the next one at once
                shown = app.picture.last_frame
                renders += 1
                app.edit("seed_x", float(seed := seed + 1), coalesce=False)
        result.update(idle=percentiles(idle), busy=percentiles(busy), renders=renders, app=percentiles(app_work),
                      gl=list(app.picture.gl_info), device=app.ctx.engine.device)
    finally:
        app.close()
        dpg.destroy_context()
    return result


def ensure_display():
    """Use the DISPLAY there is, else start an Xvfb (returns the process to stop, or None)."""
    if os.environ.get("DISPLAY"):
        return None
    if shutil.which("Xvfb") is None:
        raise SystemExit("bench/ui.py: no DISPLAY and no Xvfb (scripts/system_deps.sh installs it)")
    number = next(n for n in range(120, 400) if not Path(f"/tmp/.X{n}-lock").exists())
    process = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not Path(f"/tmp/.X11-unix/X{number}").exists():
        time.sleep(0.1)
    os.environ["DISPLAY"] = f":{number}"
    return process


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="fixture,1024", help="fixture, 1024 or both (comma separated)")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle UI to time")
    parser.add_argument("--busy", type=float, default=15.0, help="seconds of nonstop rendering to time")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(measure(args.one, args.idle, args.busy)))
        return 0
    xvfb = ensure_display()
    try:
        print(f"{'case':8} {'res':>5} {'render':>9} {'idle p50/p95 ms':>16} {'busy p50/p95 ms':>16} "
              f"{'busy/idle p50':>13} {'renders':>7} {'app p50/p95 ms':>15}")
        for case in args.cases.split(","):
            # One process per case: a fresh dearpygui context and torch state each time.
            out = subprocess.run([sys.executable, __file__, "--one", case, "--idle", str(args.idle),
                                  "--busy", str(args.busy)], capture_output=True, text=True, timeout=900)
            line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
            if line is None:
                print(f"{case:8} failed ({out.returncode}): {out.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(line[len("RESULT "):])
            ratio = r["busy"]["p50"] / r["idle"]["p50"]
            print(f"{case:8} {r['resolution']:>5} {r['render_ms']:>7.0f}ms "
                  f"{r['idle']['p50']:>7.1f}/{r['idle']['p95']:<7.1f} {r['busy']['p50']:>7.1f}/{r['busy']['p95']:<7.1f}"
                  f" {ratio:>12.2f}x {r['renders']:>7} {r['app']['p50']:>7.2f}/{r['app']['p95']:<7.2f}")
        print(f"OpenGL: {' / '.join(r['gl']) if line else '?'}; torch device: {r['device'] if line else '?'}")
        print("goal: busy/idle p50 below 1.5x (rendering slows the UI by less than half); "
              "app = the app's own work per frame (callbacks, polling, texture upload), the rest is drawing")
    finally:
        if xvfb is not None:
            xvfb.terminate()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
