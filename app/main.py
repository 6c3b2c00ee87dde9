"""The explorer window's entry point: run_app(args) opens it (app/window.py) and runs it until it is closed."""

import os
import sys

from app.display import display_problem


def run_app(args) -> int:
    """Open the explorer window and run until it is closed. Returns the process exit code."""
    from app.window_probe import window_problem

    problem = display_problem() or window_problem()
    if problem:
        print(f"stylescope: {problem}", file=sys.stderr)
        return 2
    import dearpygui.dearpygui as dpg

    from app.window import VIEWPORT_H, VIEWPORT_W, Window

    dpg.create_context()
    window = None
    try:
        dpg.configure_app(manual_callback_management=True)
        window = Window(args, dpg)
        window.build()
        dpg.create_viewport(title="StyleScope", width=VIEWPORT_W, height=VIEWPORT_H, x_pos=0, y_pos=0)
        dpg.setup_dearpygui()
        dpg.show_viewport()
        window.start_engine()
        window.observer.note("started", pid=os.getpid())
        window.frames.loop()
        window.observer.note("closing")
        return 0
    finally:
        if window is not None:
            window.close()  # a torch thread still running at exit aborts the process
        dpg.destroy_context()


def main(argv=None):
    """`python -m app.main --pkl FILE`: the window alone (run_app.py is the full command line)."""
    import argparse

    parser = argparse.ArgumentParser(description="StyleScope explorer window")
    parser.add_argument("--pkl", help="network file (default: the embedded default model)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--session", help="a session JSON (a RenderRequest) to start from")
    return run_app(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
