"""Runs one entry point of StyleScope on every file in a folder, in this process, and prints one JSON line per file.

Usage: hostile_harness.py ENTRY FOLDER OUT_FOLDER. The test that starts it sets the memory
limit (RLIMIT_AS) first; a crash shows as the process's death right after the file's "start"
line. Each line says how the file was refused: the message, whether it is one clean line,
and the seconds it took.
"""

import contextlib
import io
import json
import resource
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

FILE_SECONDS = 60  # a file that takes longer is reported as not refused in time
INFO = {"z_dim": 3, "w_dim": 3, "num_ws": 5, "pkl": "net.pkl"}  # the network the Vectors panel checks against


class TookTooLong(Exception):
    pass


def _alarm(signum, frame):
    raise TookTooLong()


def run_cli(argv):
    """run_app.main in this process: (exit code, what it wrote on stderr)."""
    import run_app

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = run_app.main(argv)
        except SystemExit as exit_:
            code = exit_.code
    return code, err.getvalue()


def refused_by_cli(argv):
    code, err = run_cli(argv)
    if code == 0:
        return None, "accepted"
    lines = err.strip().splitlines()
    return (lines[0] if len(lines) == 1 else err), None


def refused_by_call(call, errors):
    try:
        result = call()
    except errors as error:
        return str(error), None
    return None, f"accepted ({str(result)[:80]})"


def entry_points(out):
    from app import bridge
    from app.panels import vectors
    from app.sessions import load_session_file
    from app.state import ExplorerState
    from models import LoadError, load_generator

    def session(path):
        state = ExplorerState()
        try:
            notes, wanted = load_session_file(state, path)
        except (ValueError, OSError) as error:
            return str(error), None
        if wanted is not None and state["pkl"] is None:  # the session's network was not opened
            return notes[0], None
        return None, "accepted"

    png = str(out / "out.png")
    return {
        "load_generator": lambda p: refused_by_call(lambda: load_generator(p), LoadError),
        "info": lambda p: refused_by_cli(["info", "--pkl", p]),
        "window_open": lambda p: refused_by_call(lambda: bridge.load_network_isolated(p), LoadError),
        "request": lambda p: refused_by_cli(["frame", "--request", p, "--out", png]),
        "session": session,
        "from_png": lambda p: refused_by_cli(["frame", "--from-png", p, "--out", png]),
        "w": lambda p: refused_by_cli(["frame", "--w", p, "--out", png]),
        "direction": lambda p: refused_by_cli(["frame", "--direction", f"{p}=1", "--out", png]),
        "vectors_latent": lambda p: refused_by_call(lambda: vectors.latent_from_file(Path(p), INFO), ValueError),
        "vectors_direction": lambda p: refused_by_call(lambda: vectors.direction_from_file(Path(p), INFO),
                                                       ValueError),
        # Arguments rather than files: a 4 MB path, a 4 KB layer name.
        "cli_args": lambda p: refused_by_cli(json.loads(Path(p).read_text())),
    }


def clean(message):
    return bool(message) and "\n" not in message and message.isprintable() and len(message) <= 400


def main(entry, folder, out):
    signal.signal(signal.SIGALRM, _alarm)
    run = entry_points(Path(out))[entry]
    for path in sorted(Path(folder).iterdir()):
        print(json.dumps({"start": path.name}), flush=True)
        started = time.perf_counter()
        signal.alarm(FILE_SECONDS)
        try:
            message, failure = run(str(path))
        except TookTooLong:
            message, failure = None, f"still running after {FILE_SECONDS} s"
        except BaseException as error:  # noqa: BLE001 -- reported, not hidden: this is the finding
            message, failure = None, f"raised {type(error).__name__}: {str(error)[:200]}"
        finally:
            signal.alarm(0)
        print(json.dumps({"file": path.name, "message": message, "failure": failure,
                          "clean": clean(message), "seconds": round(time.perf_counter() - started, 2)}), flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mb": round(peak)}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
