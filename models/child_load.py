"""load_generator in a child process with memory and time limits: a crash or bomb in any parser costs the child, not the caller."""

# The child reads the file with load_generator (safe_pickle, numpy, zipfile, safetensors...),
# builds the network, and writes it as our own .safetensors (plain tensors + a JSON config)
# into a private temporary folder; the parent then reads that file. Whatever the file makes a
# parser do (a segfault, gigabytes, minutes) ends in the child under its limits, and the
# caller gets one LoadError line.

import json
import multiprocessing
import os
import resource
import shutil
import signal
import tempfile
from pathlib import Path

from models.errors import LoadError, clean_line

MEMORY_BYTES = 3 << 30  # the child's address space: a 1024 px network needs about 1.5 GB
SECONDS = 120  # wall-clock limit of one read (a 1024 px snapshot takes a few seconds)
EXIT_REFUSED = 3  # the child refused the file and printed why


_context = None


def _fork_context():
    """A forkserver that has torch and the loaders imported once: each read forks from it in
    milliseconds instead of starting a Python that imports torch (seconds)."""
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(["torch", "models.loader"])
    return _context


def warm_up():
    """Start the forkserver now (e.g. in the background while the window opens)."""
    _fork_context().Process(target=_noop).start()


def _noop():
    pass


def _signal_name(exitcode):
    try:
        return signal.Signals(-exitcode).name
    except ValueError:
        return f"signal {-exitcode}"


def read_in_child(path, out_path, key=None, memory_bytes=None, seconds=SECONDS, target=None):
    """Run the child on `path`, writing `out_path`; returns its format, or raises LoadError (one line).

    target: what the child runs (tests pass one that crashes); the reader by default."""
    path = Path(path)
    size = path.stat().st_size if path.is_file() else 0
    memory_bytes = memory_bytes or MEMORY_BYTES + 4 * size  # the file's bytes, its tensors, the built network
    report = Path(str(out_path) + ".json")
    name = clean_line(path.name, 120)
    process = _fork_context().Process(target=target or _child_run, args=(str(path), str(out_path), str(report), key,
                                                                memory_bytes, seconds), daemon=True)
    try:
        process.start()
        process.join(seconds)
    finally:  # a timeout, or the caller stopped waiting: the child goes too
        if process.is_alive():
            process.kill()
            process.join()
            raise LoadError(f"{name}: reading it took longer than {seconds} s; stopped")
    result = json.loads(report.read_text()) if process.exitcode in (0, EXIT_REFUSED) and report.is_file() else {}
    if process.exitcode == 0:
        return result.get("format")
    if result.get("error"):
        raise LoadError(clean_line(result["error"]))
    if process.exitcode < 0:
        what = _signal_name(process.exitcode)
        if what in ("SIGXCPU", "SIGKILL"):
            raise LoadError(f"{name}: reading it used more than its time or memory; stopped")
        raise LoadError(f"{name}: the file crashed the reader process ({what}); nothing else was affected")
    raise LoadError(f"{name}: the reader process failed (exit status {process.exitcode})")


def load_generator_isolated(path, device="cpu", reference=False, key=None, memory_bytes=None, seconds=SECONDS):
    """load_generator's result, with the file itself parsed only in a limited child process."""
    from models.loader import load_generator

    path = Path(path)
    if not path.is_file():
        raise LoadError(f"{clean_line(path)}: no such file")
    # In memory where the system has a tmpfs: the plain tensors are written once and read once.
    shared = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    folder = tempfile.mkdtemp(prefix="stylescope-load-", dir=shared)
    try:
        out_path = Path(folder) / "network.safetensors"
        file_format = read_in_child(path, out_path, key, memory_bytes, seconds)
        G = load_generator(out_path, device=device, reference=reference)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    G.info["format"] = file_format or G.info.get("source_format") or G.info["format"]
    return G


def apply_limits(memory_bytes, seconds):
    """This process may use `memory_bytes` of address space and `seconds` of CPU, and dumps no core."""
    for kind, soft in ((resource.RLIMIT_AS, memory_bytes), (resource.RLIMIT_CPU, seconds), (resource.RLIMIT_CORE, 0)):
        _, hard = resource.getrlimit(kind)  # never above a limit the caller already lives under
        soft = soft if hard == resource.RLIM_INFINITY else min(soft, hard)
        resource.setrlimit(kind, (soft, soft))


def _child_run(source, out, report, key, memory_bytes, seconds):
    """In the child: read `source` with load_generator under the limits, write `out` as .safetensors
    and the format (or the one-line refusal) as JSON into `report`."""
    apply_limits(memory_bytes, seconds)
    if Path(source).name == os.environ.get("STYLESCOPE_TEST_READER_CRASHES_ON"):
        import ctypes

        ctypes.string_at(0)  # the window test's stand-in for a parser bug: SIGSEGV in the reader
    import torch

    from models.loader import load_generator, save_safetensors

    torch.set_num_threads(1)
    try:
        G = load_generator(source, device="cpu", reference=True, key=key)
        save_safetensors(G, out)
        outcome, code = {"format": G.info.get("format")}, 0
    except LoadError as error:
        outcome, code = {"error": clean_line(error)}, EXIT_REFUSED
    except MemoryError:
        outcome = {"error": f"{clean_line(Path(source).name)}: reading it needs more memory than the reader may use"}
        code = EXIT_REFUSED
    Path(report).write_text(json.dumps(outcome))
    os._exit(code)  # no atexit work of the forkserver's in this child
