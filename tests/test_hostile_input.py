"""Hostile and broken input through every entry point: one clean line each, within 2 GB and in bounded time, never a crash."""

# Each entry point runs in its own Python (tests/hostile_harness.py) under a 2 GB address-space
# limit, over every file of the classes it reads: a SIGSEGV or a bomb there fails the test
# (naming the file), instead of taking pytest down.

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

import hostile_resources as bombs

ROOT = Path(__file__).resolve().parent.parent
MEMORY_LIMIT = 2 << 30
ENTRY_FILES = {
    "load_generator": "networks", "info": "networks", "window_open": "networks",
    "request": "requests", "session": "requests", "from_png": "pngs",
    "w": "numpy", "direction": "numpy", "vectors_latent": "numpy", "vectors_direction": "numpy",
    "cli_args": "args",
}
# What a file's refusal must say (by file name prefix), where more than "one clean line" matters.
EXPECTED = {
    "deep_": "nested", "zip_expansion_bomb": "expand", "diamond_modules": "too large", "zip_of_100k": "entries",
    "billion_laughs": "values", "declares_": "declares", "safetensors_declares": "declares",
    "class_name_escape": "\\x1b", "names_system_file": "not the one you chose", "png_claims": "absurd size",
    "npy_claims": "claims", "npz_claims": "claims", "npz_inflates": "claims", "npy_structured": "not plain numbers",
    "npz_structured": "not plain numbers", "json_nested": "nested", "png_json_nested": "nested",
    "json_400_digit": "digits", "png_json_400_digit": "digits",
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Every class's files, one folder per kind of input."""
    root = tmp_path_factory.mktemp("hostile")
    made = {}
    for kind in set(ENTRY_FILES.values()):
        made[kind] = root / kind
        made[kind].mkdir()
    for name, (suffix, data) in bombs.network_files().items():
        (made["networks"] / f"{name}{suffix}").write_bytes(data)
    for name, (suffix, data) in bombs.numpy_files().items():
        (made["numpy"] / f"{name}{suffix}").write_bytes(data)
    texts = dict(bombs.request_texts(), names_system_file=json.dumps({"pkl": "/etc/passwd"}))
    for name, text in texts.items():
        (made["requests"] / f"{name}.json").write_text(text)
    pngs = dict(bombs.png_files(), names_system_file=bombs.png_with_text(
        {"stylescope.request": json.dumps({"pkl": "/etc/passwd"}), "stylescope.model": "passwd",
         "stylescope.model_sha256": "0" * 64}))
    for name, data in pngs.items():
        (made["pngs"] / f"{name}.png").write_bytes(data)
    out = root / "out"
    out.mkdir()
    arguments = {"path_4mb": ["info", "--pkl", "/tmp/" + "a" * (4 << 20)],
                 "layer_name_4kb": ["frame", "--layer", "b4." + "x" * 4096, "--out", str(out / "x.png")],
                 "class_name_in_path": ["info", "--pkl", str(root / "no\x1b[2Jsuch\x07.pkl")]}
    for name, argv in arguments.items():
        (made["args"] / f"{name}.json").write_text(json.dumps(argv))
    made["out"] = out
    return made


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_harness(entry, folder, out):
    files = len(list(folder.iterdir()))
    result = subprocess.run([sys.executable, str(ROOT / "tests" / "hostile_harness.py"), entry, str(folder), str(out)],
                            capture_output=True, text=True, timeout=120 + 60 * files, cwd=ROOT,
                            preexec_fn=_limit_memory)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result, lines


@pytest.mark.parametrize("entry", list(ENTRY_FILES))
def test_every_file_is_refused_with_one_clean_line(folders, entry):
    folder = folders[ENTRY_FILES[entry]]
    result, lines = run_harness(entry, folder, folders["out"])
    started = [line["start"] for line in lines if "start" in line]
    assert result.returncode == 0, (f"{entry} died (status {result.returncode}) on {started[-1] if started else '?'}: "
                                    f"{result.stderr[-1500:]}")
    reports = {line["file"]: line for line in lines if "file" in line}
    assert sorted(reports) == sorted(p.name for p in folder.iterdir())
    for name, report in reports.items():
        print(f"{entry:18s} {name:40s} {report['seconds']:6.2f} s  {str(report['message'])[-90:]}")
        assert report["failure"] is None, f"{entry} {name}: {report['failure']}"
        assert report["clean"], f"{entry} {name}: not one clean line: {report['message']!r}"[:2000]
        wanted = next((text for prefix, text in EXPECTED.items() if name.startswith(prefix)), "")
        assert wanted in report["message"], f"{entry} {name}: {report['message']}"
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    peak = next(line["peak_rss_mb"] for line in lines if "peak_rss_mb" in line)
    assert peak < MEMORY_LIMIT >> 20


def test_a_crash_in_the_window_loader_costs_only_its_child(tmp_path):
    """Defence in depth: whatever a parser does to its process, the caller gets one line."""
    from models.child_load import read_in_child
    from models.errors import LoadError

    import crash_targets

    path = tmp_path / "any.pkl"
    path.write_bytes(b"x")
    with pytest.raises(LoadError, match="crashed the reader process \\(SIGSEGV\\)"):
        read_in_child(path, tmp_path / "out.safetensors", target=crash_targets.segfault)
    with pytest.raises(LoadError, match="reader process failed|more than its time or memory"):
        read_in_child(path, tmp_path / "out.safetensors", target=crash_targets.allocate_forever,
                      memory_bytes=1 << 30)
    with pytest.raises(LoadError, match="longer than 2 s"):
        read_in_child(path, tmp_path / "out.safetensors", target=crash_targets.sleep_forever, seconds=2)


def test_a_request_file_opens_its_network_only_beside_it_with_its_sha256(tmp_path, fixtures_dir):
    import shutil

    from renderer.png_metadata import file_sha256
    from renderer.request_files import NetworkNotChosen, choose_network, read_request_file

    network = fixtures_dir / "sg2ada_64.pkl"
    request = {"pkl": "/far/away/sg2ada_64.pkl", "model_sha256": file_sha256(network)}
    (tmp_path / "r.json").write_text(json.dumps(request))
    saved = read_request_file(tmp_path / "r.json")
    with pytest.raises(NetworkNotChosen, match="sg2ada_64.pkl.*--pkl"):
        choose_network(saved, None, "pass --pkl FILE")
    assert choose_network(saved, "/far/away/sg2ada_64.pkl").pkl == "/far/away/sg2ada_64.pkl"  # the user's choice
    shutil.copy(network, tmp_path / "sg2ada_64.pkl")
    assert choose_network(saved).pkl == str((tmp_path / "sg2ada_64.pkl").resolve())
    (tmp_path / "sg2ada_64.pkl").write_bytes(b"another file of that name")
    with pytest.raises(NetworkNotChosen, match="another sha256"):
        choose_network(read_request_file(tmp_path / "r.json"))


def test_sigterm_during_a_video_export_leaves_no_file_and_no_ffmpeg(tmp_path):
    import os
    import signal
    import time

    out = tmp_path / "v.mp4"
    process = subprocess.Popen([sys.executable, str(ROOT / "run_app.py"), "video", "--seeds", "0-40",
                                "--frames-per-transition", "30", "--device", "cpu", "--out", str(out)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not _ffmpeg_children(process.pid):
        time.sleep(0.2)
    ffmpeg = _ffmpeg_children(process.pid)
    assert ffmpeg, "the export never started ffmpeg"
    time.sleep(1.0)  # a few frames in
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM and "Traceback" not in err, err[-2000:]
    time.sleep(0.5)
    assert not [pid for pid in ffmpeg if os.path.exists(f"/proc/{pid}") and _state(pid) != "Z"]
    assert list(tmp_path.iterdir()) == []  # neither the video nor its hidden partial file


def _ffmpeg_children(pid):
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(c) for c in children if "ffmpeg" in Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace")]


def _state(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "gone"



def test_a_session_finds_its_network_beside_it_by_name_and_sha256(tmp_path, fixtures_dir):
    import shutil

    from app.sessions import load_session_file, session_json
    from app.state import ExplorerState

    network = tmp_path / "made_here" / "net.pkl"
    network.parent.mkdir()
    shutil.copy(fixtures_dir / "sg2ada_64.pkl", network)
    state = ExplorerState()
    state.values["pkl"] = str(network)
    session = session_json(state)
    assert session["model_name"] == "net.pkl" and len(session["model_sha256"]) == 64
    elsewhere = tmp_path / "sent" / "session.json"
    elsewhere.parent.mkdir()
    elsewhere.write_text(json.dumps(session))
    # Opened on another machine: its recorded path is not the open network; nothing beside it yet.
    fresh = ExplorerState()
    notes, wanted = load_session_file(fresh, elsewhere)
    assert wanted == str(network) and fresh["pkl"] is None and "press Load" in notes[0]
    shutil.copy(network, elsewhere.parent / "net.pkl")  # the network sent along with it
    notes, wanted = load_session_file(fresh, elsewhere)
    assert wanted is None and fresh["pkl"] == str((elsewhere.parent / "net.pkl").resolve())


def test_json_nesting_skips_strings_and_escapes():
    from models.limits import json_nesting, load_json

    assert json_nesting('{"a": [1, {"b": "[[[[\\"]]]{"}]}') == 3
    assert json_nesting("[" * 500, limit=200) == 201  # stops counting past the limit
    assert load_json('{"seeds": [[7, 1.0]]}', "r") == {"seeds": [[7, 1.0]]}
    with pytest.raises(ValueError, match="24|digits"):
        load_json('{"seed": ' + "1" * 30 + "}", "r")


def test_clean_line_escapes_and_cuts():
    from models.errors import clean_line, error_line

    assert clean_line("net\x1b[2J\x07.pkl\nnext") == "net\\x1b[2J\\x07.pkl\\nnext"
    long = clean_line("x" * (50 << 20))
    assert len(long) == 300 and long.endswith("…")
    assert error_line(FileNotFoundError(2, "No such file or directory", "a\x1bb")) == \
        "a\\x1bb: No such file or directory"
