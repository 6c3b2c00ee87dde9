"""run_app.py: flags -> RenderRequest, frame and info commands, clean one-line errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import models
import run_app
from renderer import commands
from renderer.renderer import Renderer
from renderer.request import RenderRequest
from renderer_standin import standin_loader


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """run_app sets all cores for headless work; tiny networks run far faster on one thread on a
    busy shared machine, so the in-process commands here get one."""
    import torch

    before = torch.get_num_threads()
    original = commands.headless_threads
    commands.headless_threads = lambda: torch.set_num_threads(1)
    torch.set_num_threads(1)
    yield
    commands.headless_threads = original
    torch.set_num_threads(before)


def parse(*argv):
    return run_app.build_parser().parse_args(list(argv))


def test_help_lists_the_commands():
    text = run_app.build_parser().format_help()
    assert "info" in text and "frame" in text


def test_flags_make_the_request():
    args = parse(
        "frame", "--pkl", "net.pkl", "--seed", "7", "--psi", "0.7", "--cutoff", "8", "--mix-seed", "3",
        "--mix-layers", "4-7", "--mix-strength", "0.5", "--noise-mode", "random", "--noise-seed", "2",
        "--noise-strength", "0.5", "--noise-layer", "b16.conv1=2", "--layer", "b16.conv1",
        "--channels", "grid:9", "--normalize", "std", "--gain-db", "6", "--fft", "--translate", "0.1,-0.2",
        "--rotate", "10", "--output-scale", "2", "--device", "cpu", "--out", "x.png",
    )
    request = run_app.request_from_args(args)
    assert request == RenderRequest(
        pkl="net.pkl", device="cpu", seeds=7, truncation_psi=0.7, truncation_cutoff=8, mix_seed=3,
        mix_layers=(4, 5, 6, 7), mix_strength=0.5, noise_mode="random", noise_seed=2, noise_strength=0.5,
        noise_layer_strength={"b16.conv1": 2.0}, layer="b16.conv1", channel_mode="grid", grid_channels=9,
        normalize="std", gain_db=6.0, fft=True, transform_translate=(0.1, -0.2), transform_rotate=10.0,
        output_scale=2.0,
    )
    assert run_app.request_from_args(parse("frame", "--channels", "rgb:5", "--out", "x")).channel == 5
    assert run_app.request_from_args(parse("frame", "--seeds", "1:0.25,2:0.75", "--out", "x")).seeds == ((1, 0.25), (2, 0.75))
    assert run_app.request_from_args(parse("frame", "--seed-xy", "0.5,1", "--out", "x")).seed_xy == (0.5, 1.0)


def test_request_file_with_overrides(tmp_path):
    saved = RenderRequest(pkl="a.pkl", seeds=[(1, 0.5), (2, 0.5)], mix_seed=9, mix_layers=(8, 9), gain_db=3.0)
    path = tmp_path / "r.json"
    path.write_text(saved.to_json())
    # The file's network is used only when the user names it too (--pkl), or it lies beside the file.
    assert run_app.request_from_args(parse("frame", "--request", str(path), "--pkl", "a.pkl", "--out", "x")) == saved
    changed = run_app.request_from_args(parse("frame", "--request", str(path), "--pkl", "a.pkl", "--seed", "4",
                                              "--psi", "0.5", "--out", "x"))
    assert changed.seeds == ((4, 1.0),) and changed.truncation_psi == 0.5 and changed.mix_layers == (8, 9)


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--channels", "cube:3"], "--channels"),
        (["--translate", "1"], "--translate"),
        (["--noise-layer", "b4.conv1"], "--noise-layer"),
        (["--mix-seed", "3"], "--mix-layers"),
        (["--psi", "nan"], "truncation_psi"),
        (["--mix-layers", "huge"], "mix_layers"),
        (["--seed", "1", "--seeds", "2:1"], "only one"),
        (["--pkl", "/no/such/net.pkl"], "/no/such/net.pkl"),
        (["--request", "/no/such/request.json"], "/no/such/request.json"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path, capsys, argv, words):
    code = run_app.main(["frame", *argv, "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code != 0
    assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not list(tmp_path.iterdir())


@pytest.fixture
def standin_models(monkeypatch, tmp_path):
    """Route the CLI's loader to the stand-in generator; returns a network file path."""
    monkeypatch.setattr(models, "load_generator", standin_loader(resolution=32))
    path = tmp_path / "standin.pkl"
    path.write_bytes(b"x")
    return str(path)


def test_frame_writes_the_same_pixels_as_the_renderer(standin_models, tmp_path, capsys):
    out = tmp_path / "out" / "frame.png"
    out.parent.mkdir()
    argv = ["frame", "--pkl", standin_models, "--seed", "3", "--mix-seed", "4", "--mix-layers", "coarse",
            "--noise-mode", "random", "--noise-seed", "1", "--device", "cpu", "--out", str(out)]
    assert run_app.main(argv) == 0
    written = np.asarray(Image.open(out))
    request = run_app.request_from_args(parse(*argv))
    shown = Renderer("cpu").render(request).image  # what the GUI's renderer shows for it
    assert np.array_equal(written, shown)
    assert [p.name for p in out.parent.iterdir()] == ["frame.png"]  # no temp file left behind
    # the same request through --request gives the same file content
    (tmp_path / "r.json").write_text(request.to_json())
    again = tmp_path / "out" / "again.png"
    assert run_app.main(["frame", "--request", str(tmp_path / "r.json"), "--pkl", standin_models,
                         "--out", str(again)]) == 0
    assert np.array_equal(np.asarray(Image.open(again)), written)


def test_frame_into_a_missing_folder_fails_cleanly(standin_models, tmp_path, capsys):
    code = run_app.main(["frame", "--pkl", standin_models, "--out", str(tmp_path / "nope" / "x.png")])
    assert code == 1 and "nope" in capsys.readouterr().err


def test_info_prints_json(standin_models, capsys):
    assert run_app.main(["info", "--pkl", standin_models]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["resolution"] == 32 and info["num_ws"] == 8 and info["z_dim"] == 8
    assert {"name": "b16.conv1", "shape": [1, 4, 16, 16], "resolution": 16} in info["layers"]


def test_info_on_a_fixture(fixtures_dir, capsys):
    pytest.importorskip("models.loader")
    assert run_app.main(["info", "--pkl", str(fixtures_dir / "sg2ada_64.pkl"), "--device", "cpu"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "stylegan2-ada-pytorch" and info["architecture"] == "stylegan2"
    assert info["resolution"] == 64 and info["num_ws"] == 10
    assert any(layer["name"] == "b64.torgb" for layer in info["layers"])
    assert info["mix_groups"] == {"coarse": [0, 1, 2, 3], "middle": [4, 5, 6, 7], "fine": [8, 9]}


def test_bad_file_from_a_real_process_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"not a pickle at all")
    result = subprocess.run(
        [sys.executable, str(run_app.__file__), "info", "--pkl", str(bad)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_no_command_without_a_window_module_exits_2(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "app.main", None)  # as if app/main.py did not exist
    assert run_app.main([]) == 2
    assert "not built yet" in capsys.readouterr().err


def test_no_command_opens_the_window_with_the_args(monkeypatch):
    seen = []
    fake = type(sys)("app.main")
    fake.run_app = lambda args: seen.append(args) or 0
    monkeypatch.setitem(sys.modules, "app.main", fake)
    assert run_app.main(["--pkl", "net.pkl", "--device", "cpu"]) == 0
    assert seen[0].pkl == "net.pkl" and seen[0].device == "cpu"


def test_no_display_message_goes_to_stderr(monkeypatch, capsys):
    import app.main

    monkeypatch.setattr(app.main, "display_problem", lambda: "no display (DISPLAY is not set)")
    assert app.main.run_app(run_app.build_parser().parse_args([])) == 2
    captured = capsys.readouterr()
    assert "no display" in captured.err and captured.out == ""


def test_convert_on_a_full_disk_is_one_line_naming_the_target(fixtures_dir, tiny_tmpfs, capsys):
    out = tiny_tmpfs / "c.safetensors"
    code = run_app.main(["convert", "--pkl", str(fixtures_dir / "sg2ada_64.pkl"), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and err.strip() == f"stylescope: cannot write {out}: the disk is full (no space left on device)"
    assert list(tiny_tmpfs.iterdir()) == []


def test_convert_onto_a_folder_names_the_target(fixtures_dir, tmp_path, capsys):
    code = run_app.main(["convert", "--pkl", str(fixtures_dir / "sg2ada_64.pkl"), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and err.strip() == f"stylescope: cannot write {tmp_path}: it is a folder"


def test_transform_on_a_network_without_one_warns_and_still_writes(standin_models, tmp_path, capsys):
    out = tmp_path / "x.png"
    assert run_app.main(["frame", "--pkl", standin_models, "--rotate", "30", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "StyleGAN3" in err and len(err.strip().splitlines()) == 1
    assert out.is_file()
    assert run_app.main(["frame", "--pkl", standin_models, "--out", str(out)]) == 0
    assert capsys.readouterr().err == ""  # no transform asked for: no warning


def test_frame_refuses_a_non_png_name_before_rendering(standin_models, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(commands, "render_or_fail", lambda *a: pytest.fail("rendered before checking --out"))
    code = run_app.main(["frame", "--pkl", standin_models, "--out", str(tmp_path / "x.jpg")])
    err = capsys.readouterr().err
    assert code == 1 and "x.jpg" in err and ".png" in err and len(err.strip().splitlines()) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["standin.pkl"]


def test_w_file_that_needs_pickle_names_the_file(tmp_path, capsys):
    bad = tmp_path / "objects.npy"
    np.save(bad, np.array([{"w": 1}], dtype=object), allow_pickle=True)
    code = run_app.main(["frame", "--w", str(bad), "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 1 and str(bad) in err and len(err.strip().splitlines()) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["objects.npy"]


def test_convert_into_a_read_only_folder_fails_before_loading(read_only_folder, capsys, monkeypatch):
    monkeypatch.setattr(models, "load_generator", lambda *a, **k: pytest.fail("loaded before checking --out"))
    out = read_only_folder / "c.safetensors"
    assert run_app.main(["convert", "--pkl", "net.pkl", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"stylescope: cannot write {out}: folder {read_only_folder} is on a read-only file system"


def test_directions_add_their_strength_times_rows_as_the_w_offset(tmp_path, capsys):
    np.save(tmp_path / "smile.npy", np.ones((1, 4)))  # an InterFaceGAN boundary: [1, w_dim]
    np.savez(tmp_path / "age=2.npz", direction=np.arange(12.0).reshape(3, 4))  # '=' in the name
    request = run_app.request_from_args(parse("frame", "--seed", "3", "--direction", f"{tmp_path / 'smile.npy'}=1.5",
                                              "--direction", f"{tmp_path / 'age=2.npz'}=-0.5", "--out", "x"))
    expected = 1.5 * np.ones((1, 4)) - 0.5 * np.arange(12.0).reshape(3, 4)
    np.testing.assert_allclose(np.asarray(request.w_offset), expected)
    assert request.seeds == ((3, 1.0),)
    np.save(tmp_path / "wide.npy", np.ones((2, 5)))
    for bad, words in ((f"{tmp_path / 'smile.npy'}", "FILE=STRENGTH"), (f"{tmp_path / 'smile.npy'}=much", "much"),
                       (f"{tmp_path / 'nope.npy'}=1", "nope.npy")):
        code = run_app.main(["frame", "--direction", bad, "--out", str(tmp_path / "x.png")])
        err = capsys.readouterr().err
        assert code != 0 and words in err and len(err.strip().splitlines()) == 1, err
    code = run_app.main(["frame", "--direction", f"{tmp_path / 'age=2.npz'}=1", "--direction",
                         f"{tmp_path / 'wide.npy'}=1", "--out", str(tmp_path / "x.png")])
    assert code != 0 and "do not add up" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_video_sweeps_a_direction_from_its_opposite_to_itself(standin_models, tmp_path, capsys):
    from renderer.video import read_video

    w_dim = Renderer("cpu").compute_ws(RenderRequest(pkl=standin_models)).shape[-1]
    np.save(tmp_path / "d.npy", np.full(w_dim, 0.8))
    out = tmp_path / "sweep.gif"
    code = run_app.main(["video", "--pkl", standin_models, "--seed", "2", "--direction", f"{tmp_path / 'd.npy'}=1",
                         "--sweep", "direction", "--frames", "3", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    frames = read_video(out)
    assert len(frames) == 3 and np.abs(frames[0].astype(float) - frames[2]).mean() > 1
    plain = tmp_path / "plain.png"
    assert run_app.main(["frame", "--pkl", standin_models, "--seed", "2", "--out", str(plain)]) == 0
    plain = np.asarray(Image.open(plain).convert("RGB")).astype(float)
    gaps = [np.abs(frame.astype(float) - plain).mean() for frame in frames]
    assert gaps[1] < min(gaps[0], gaps[2]) / 2, gaps  # the middle frame has no edit (GIF colours are coarse)
    code = run_app.main(["video", "--pkl", standin_models, "--sweep", "direction", "--out", str(tmp_path / "x.gif")])
    assert code != 0 and "w_offset" in capsys.readouterr().err
