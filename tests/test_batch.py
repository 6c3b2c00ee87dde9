"""batch, and video/grid with --workers/--ray: files equal to frame's, resumable, sharded output in order."""

import hashlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import run_app
from renderer import batch, distributed
from renderer.video import read_video

ROOT = Path(__file__).resolve().parent.parent
NETWORKS = {"default": None, "sg2ada": "sg2ada_64.pkl", "sg3_t": "sg3_t_64.pkl", "sg1": "sg1_64.pkl"}


@pytest.fixture(scope="module", autouse=True)
def product_speed_paths():
    """conftest sends small networks through the numba loops; the Ray workers are fresh processes
    with the product's settings, so this module's in-process renders take those settings too."""
    from models import fast_stylegan2, winograd

    fresh = {}
    for module in (fast_stylegan2, winograd):
        spec = importlib.util.spec_from_file_location(f"fresh_{module.__name__}", module.__file__)
        fresh[module] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(fresh[module])
    before = fast_stylegan2.FUSED_MIN_VALUES, winograd.MIN_CHANNELS, winograd.MIN_PIXELS
    fast_stylegan2.FUSED_MIN_VALUES = fresh[fast_stylegan2].FUSED_MIN_VALUES
    winograd.MIN_CHANNELS, winograd.MIN_PIXELS = fresh[winograd].MIN_CHANNELS, fresh[winograd].MIN_PIXELS
    yield
    fast_stylegan2.FUSED_MIN_VALUES, winograd.MIN_CHANNELS, winograd.MIN_PIXELS = before


@pytest.fixture(scope="module", autouse=True)
def one_thread_commands():
    """The commands set every core for headless work; on a shared machine one thread is kinder."""
    import torch

    from renderer import commands

    original = commands.headless_threads
    commands.headless_threads = lambda: torch.set_num_threads(1)
    yield
    commands.headless_threads = original


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray for the in-process commands of this module (they join it), shut down after."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             object_store_memory=distributed.OBJECT_STORE_BYTES,
             job_config=ray.job_config.JobConfig(code_search_path=[str(ROOT)]))
    yield ray
    ray.shutdown()


def net_args(fixtures_dir, name):
    return ["--pkl", str(fixtures_dir / NETWORKS[name])] if NETWORKS[name] else []


def frame_files(tmp_path, args, seeds):
    """What `frame --seed S` writes with the same flags, for each seed."""
    folder = tmp_path / "frames"
    folder.mkdir(exist_ok=True)
    files = {}
    for seed in seeds:
        files[seed] = folder / f"{seed}.png"
        assert run_app.main(["frame", *args, "--seed", str(seed), "--out", str(files[seed])]) == 0
    return files


def batch_files(out):
    return sorted(path.name for path in Path(out).glob("seed*"))


def no_partial_files(out):
    return not [path for path in Path(out).iterdir() if "partial" in path.name]


@pytest.mark.parametrize("name", list(NETWORKS))
def test_two_workers_then_ray_local_fill_only_the_missing_files_equal_to_frame(name, fixtures_dir, ray_cluster,
                                                                             tmp_path, capsys):
    args = [*net_args(fixtures_dir, name), "--psi", "0.7", "--noise-mode", "random"]
    out = tmp_path / "batch"
    assert run_app.main(["batch", *args, "--seeds", "0-3", "--out", str(out), "--workers", "2"]) == 0
    first = {path.name: path.stat().st_mtime_ns for path in out.glob("seed*")}
    assert sorted(first) == [f"seed{s:04d}.png" for s in range(4)]
    os.remove(out / "seed0002.png")  # a hole, as an interrupted run leaves
    assert run_app.main(["batch", *args, "--seeds", "0-7", "--out", str(out), "--ray", "local"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 5 images" in printed and "(3 were there)" in printed, printed
    for path in out.glob("seed000[013].png"):
        assert path.stat().st_mtime_ns == first[path.name], f"{path.name} was rewritten"
    frames = frame_files(tmp_path, args, range(8))
    for seed, frame in frames.items():
        assert (out / f"seed{seed:04d}.png").read_bytes() == frame.read_bytes(), f"seed {seed} differs from frame's"
    assert no_partial_files(out)


def test_ray_local_started_by_the_command_itself(fixtures_dir, tmp_path):
    """A real `--ray local` start (and shut-down) in its own process, after an in-process batch."""
    args = ["--pkl", str(fixtures_dir / "sg3_t_64.pkl"), "--psi", "0.5"]
    out = tmp_path / "batch"
    assert run_app.main(["batch", *args, "--seeds", "0-1", "--out", str(out)]) == 0  # no workers: this process
    done = subprocess.run([sys.executable, "run_app.py", "batch", *args, "--seeds", "0-3", "--out", str(out),
                           "--ray", "local"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "wrote 2 images" in done.stdout and "(2 were there)" in done.stdout
    assert "Traceback" not in done.stderr
    frames = frame_files(tmp_path, args, range(4))
    assert all((out / f"seed{s:04d}.png").read_bytes() == frames[s].read_bytes() for s in range(4))


def _free_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_ray_address_of_a_cluster_started_with_ray_start(fixtures_dir, tmp_path, monkeypatch):
    """The README's set-up: `ray start --head`, then the command joins it by address (relative paths too)."""
    monkeypatch.chdir(ROOT)
    port = _free_port()
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_USAGE_STATS_ENABLED="0")
    head = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--port", str(port),
                             "--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        out = tmp_path / "batch"
        pkl = os.path.relpath(fixtures_dir / "sg1_64.pkl", ROOT)
        command = [sys.executable, "run_app.py", "batch", "--pkl", pkl, "--seeds", "0-3", "--out", str(out),
                   "--ray", f"127.0.0.1:{port}"]
        deadline = time.monotonic() + 120
        while True:  # the head takes a while to listen
            done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
            if done.returncode == 0 or "cannot reach" not in done.stderr or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "wrote 4 images" in done.stdout
    finally:
        head.terminate()  # `ray start --block` stops the head's processes on SIGTERM
        head.wait(timeout=120)
    frames = frame_files(tmp_path, ["--pkl", pkl], range(4))
    assert all((out / f"seed{s:04d}.png").read_bytes() == frames[s].read_bytes() for s in range(4))


def test_manifest_names_the_request_and_the_network(fixtures_dir, tmp_path, capsys):
    pkl = fixtures_dir / "sg2ada_64.pkl"
    out = tmp_path / "batch"
    assert run_app.main(["batch", "--pkl", str(pkl), "--psi", "0.6", "--seeds", "3,5", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model_sha256"] == hashlib.sha256(pkl.read_bytes()).hexdigest()
    assert manifest["request"]["truncation_psi"] == 0.6 and manifest["request"]["pkl"] == str(pkl)
    assert manifest["seeds"] == "3,5" and manifest["files"] == "seed{seed:04d}.png"
    capsys.readouterr()
    # Another psi into the same folder would mix two jobs' files: refused in one line.
    assert run_app.main(["batch", "--pkl", str(pkl), "--psi", "0.7", "--seeds", "3-6", "--out", str(out)]) == 1
    error = capsys.readouterr().err
    assert "another request" in error and len(error.strip().splitlines()) == 1
    assert batch_files(out) == ["seed0003.png", "seed0005.png"]


def test_contact_sheets_equal_the_grid_command_and_grow_with_the_range(fixtures_dir, tmp_path):
    args = ["--pkl", str(fixtures_dir / "sg2ada_64.pkl")]
    out = tmp_path / "batch"
    assert run_app.main(["batch", *args, "--seeds", "0-5", "--grid", "2x2", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("grid_*")) == ["grid_seed0000-0003.png", "grid_seed0004-0005.png"]
    for seeds, name in (("0-3", "grid_seed0000-0003.png"), ("4,5", "grid_seed0004-0005.png")):
        expected = tmp_path / f"grid_{name}"
        assert run_app.main(["grid", *args, "--seeds", seeds, "--grid", "2x2", "--out", str(expected)]) == 0
        assert (out / name).read_bytes() == expected.read_bytes(), name
    part = np.asarray(Image.open(out / "grid_seed0004-0005.png"))
    assert (part[64:] == 255).all(), "the empty cells of the last sheet are white"
    # A longer run fills the part-filled sheet: it is replaced, not left beside the full one.
    assert run_app.main(["batch", *args, "--seeds", "0-7", "--grid", "2x2", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("grid_*")) == ["grid_seed0000-0003.png", "grid_seed0004-0007.png"]


def test_jpg_files_carry_the_request_and_are_near_frame(fixtures_dir, tmp_path):
    args = ["--pkl", str(fixtures_dir / "sg2ada_64.pkl")]
    out = tmp_path / "batch"
    assert run_app.main(["batch", *args, "--seeds", "4", "--format", "jpg", "--out", str(out)]) == 0
    assert batch_files(out) == ["seed0004.jpg"]
    frame = np.asarray(Image.open(frame_files(tmp_path, args, [4])[4])).astype(float)
    with Image.open(out / "seed0004.jpg") as picture:
        note = json.loads(picture.info["comment"])
        jpg = np.asarray(picture.convert("RGB")).astype(float)
    assert note["stylescope.request"]["seeds"] == [[4, 1.0]]
    psnr = 10 * np.log10(255 ** 2 / np.mean((jpg - frame) ** 2))
    assert psnr > 30, psnr


def test_bad_batch_input_is_one_line(tmp_path, capsys):
    for argv, words in ((["--seeds", "5-1"], "empty"), (["--seeds", "0-3", "--seed", "4"], "--seed"),
                        (["--seeds", "0-3", "--workers", "0"], "--workers"),
                        (["--seeds", "0-1", "--ray", "127.0.0.1:1"], "cannot reach")):
        assert run_app.main(["batch", *argv, "--out", str(tmp_path / "b")]) == 1
        error = capsys.readouterr().err
        assert words in error and len(error.strip().splitlines()) == 1, error


@pytest.mark.parametrize("name", list(NETWORKS))
def test_video_with_workers_equals_the_single_process_video(name, fixtures_dir, ray_cluster, tmp_path):
    args = [*net_args(fixtures_dir, name), "--seeds", "1,2", "--frames-per-transition", "5", "--quality", "10"]
    single, sharded = tmp_path / "single.mp4", tmp_path / "sharded.mp4"
    assert run_app.main(["video", *args, "--out", str(single)]) == 0
    pool = ["--workers", "2"] if name != "sg3_t" else ["--ray", "local"]
    assert run_app.main(["video", *args, *pool, "--out", str(sharded)]) == 0
    expected, got = read_video(single), read_video(sharded)
    assert len(got) == len(expected) == 6
    for index, (a, b) in enumerate(zip(expected, got)):
        assert np.array_equal(a, b), f"frame {index}"
    assert len({frame.tobytes() for frame in got}) == 6, "six different frames"


def test_grid_video_and_grid_with_ray_local_equal_the_single_process_output(fixtures_dir, ray_cluster, tmp_path):
    args = ["--pkl", str(fixtures_dir / "sg1_64.pkl")]
    video = [*args, "--seeds", "1-4", "--grid", "2x1", "--frames-per-transition", "3", "--loop", "--out"]
    assert run_app.main(["video", *video, str(tmp_path / "a.gif")]) == 0
    assert run_app.main(["video", *video, str(tmp_path / "b.gif"), "--ray", "local"]) == 0
    expected, got = read_video(tmp_path / "a.gif"), read_video(tmp_path / "b.gif")
    assert len(got) == len(expected) == 6 and all(np.array_equal(a, b) for a, b in zip(expected, got))
    grid = [*args, "--rows", "1,2", "--cols", "3,4,5", "--mix", "coarse", "--out"]
    assert run_app.main(["grid", *grid, str(tmp_path / "a.png")]) == 0
    assert run_app.main(["grid", *grid, str(tmp_path / "b.png"), "--workers", "2"]) == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_a_killed_worker_has_its_shard_retried(fixtures_dir, ray_cluster, tmp_path):
    from renderer.request import RenderRequest

    base = RenderRequest(pkl=str(fixtures_dir / "sg3_t_64.pkl"))
    seeds = list(range(60))
    out = tmp_path / "batch"
    failures = []
    with distributed.open_pool(base, workers=2) as pool:
        def job():
            try:
                batch.run_batch(pool, base, seeds, out)
            except BaseException as error:  # reported to the test's thread
                failures.append(error)

        worker = threading.Thread(target=job)
        worker.start()
        deadline = time.monotonic() + 120
        while len(batch_files(out) if out.is_dir() else []) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        written_before_kill = len(batch_files(out))
        os.kill(pool.pids[0], signal.SIGKILL)  # a worker process of this test's own cluster
        worker.join(300)
    assert not failures, failures
    assert written_before_kill < len(seeds), "the kill came after the job: make it longer"
    assert batch_files(out) == [f"seed{s:04d}.png" for s in seeds]
    assert no_partial_files(out)
    frames = frame_files(tmp_path, ["--pkl", base.pkl], seeds[::7])
    assert all((out / f"seed{s:04d}.png").read_bytes() == frames[s].read_bytes() for s in frames)


def _descendants(root):
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def _running(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_ctrl_c_stops_the_workers_and_leaves_only_complete_files(fixtures_dir, tmp_path):
    args = ["--pkl", str(fixtures_dir / "sg2ada_64.pkl")]
    out = tmp_path / "batch"
    # Its own session: Ctrl+C in a terminal reaches the whole foreground group, the workers too.
    process = subprocess.Popen([sys.executable, "run_app.py", "batch", *args, "--seeds", "0-999", "--out", str(out),
                                "--workers", "2"], cwd=ROOT, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while (not out.is_dir() or len(batch_files(out)) < 3) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    started = _descendants(process.pid)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr[-2000:]
    time.sleep(2)
    assert started and not [pid for pid in started if _running(pid)], "Ray's processes outlived the command"
    names = batch_files(out)
    assert 3 <= len(names) < 1000 and no_partial_files(out)
    seeds = [int(name[4:8]) for name in names]
    frames = frame_files(tmp_path, args, seeds[:5])
    assert all((out / f"seed{s:04d}.png").read_bytes() == frames[s].read_bytes() for s in frames)


def test_ray_is_imported_only_by_the_commands_that_use_workers(tmp_path):
    code = ("import sys, run_app; run_app.build_parser(); "
            f"assert run_app.main(['frame', '--seed', '1', '--out', {str(tmp_path / 'f.png')!r}]) == 0; "
            "print('ray' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "False", done.stderr[-2000:]


def test_worker_plan_divides_cpus_and_asks_for_gpus():
    assert distributed.worker_plan(2, {"CPU": 2.0}, 2) == (2, {"num_cpus": 1.0}, 1)
    assert distributed.worker_plan(None, {"CPU": 8.0}, 8)[0] == 8 // distributed.CPU_THREADS_PER_WORKER
    assert distributed.worker_plan(2, {"CPU": 64.0}, 16) == (2, {"num_cpus": 16}, 16)  # one node's cores at most
    assert distributed.worker_plan(3, {"CPU": 8.0}, 8) == (3, {"num_cpus": 2}, 2)  # whole CPUs above one
    assert distributed.worker_plan(4, {"CPU": 2.0}, 2) == (4, {"num_cpus": 0.5}, 1)
    count, options, _ = distributed.worker_plan(None, {"CPU": 32.0, "GPU": 4.0}, 16)
    assert count == 4 and options["num_gpus"] == 1.0


def test_shards_cover_every_item_once_in_order():
    items = list(range(37))
    shards = batch.split_shards(items, 2)
    assert [x for shard in shards for x in shard] == items
    assert len(shards) >= 8 and max(map(len, shards)) <= batch.MAX_SHARD
