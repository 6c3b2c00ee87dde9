"""What a new user meets, without a window: file names, summaries, typed values, dialogs' paths, settings, start-up."""

import types

import numpy as np
import pytest

from renderer.request import RenderRequest


def test_a_float32_slider_value_is_kept_as_typed():
    from app.controls import typed_float

    assert typed_float(float(np.float32(0.7))) == 0.7
    assert typed_float(float(np.float32(-0.35))) == -0.35
    assert typed_float(1.0) == 1.0


def test_the_network_summary_names_the_variant_only_when_it_adds_something():
    from app.panels.network import architecture_text

    assert architecture_text({"architecture": "stylegan3-t", "variant": "t"}) == "stylegan3-t"
    assert architecture_text({"architecture": "stylegan", "variant": "stylegan"}) == "stylegan"
    assert architecture_text({"architecture": "stylegan2", "variant": "skip"}) == "stylegan2 (skip)"
    assert architecture_text({"architecture": "stylegan2"}) == "stylegan2"


def test_counts_read_in_the_singular_for_one():
    from app.panels.export import plural

    assert plural(1, "frame") == "1 frame" and plural(2, "frame") == "2 frames" and plural(0, "frame") == "0 frames"


def test_a_saved_frame_is_named_by_the_seed_shown():
    from app.panels.export import seed_name
    from app.panels.latent import combined_seed
    from app.state import ExplorerState

    state = ExplorerState()
    state.update({"seed_x": 45.2, "seed_y": 2.1})  # where a drag on the image stops: the field shows 245
    assert seed_name(state.to_request()) == f"seed{combined_seed(45.2, 2.1)}-blend" == "seed245-blend"
    state.update({"seed_x": 2.5, "seed_y": 3.5})  # a tie: the name follows the field, not the first corner
    assert seed_name(state.to_request()) == f"seed{combined_seed(2.5, 3.5)}-blend"
    state.update({"seed_x": 245.0, "seed_y": 0.0})
    assert seed_name(state.to_request()) == "seed245"
    state.set("blend_seeds", [(7, 0.5)], coalesce=False)
    assert seed_name(state.to_request()) == "seed245-blend"
    assert seed_name(RenderRequest(w=np.zeros((1, 8)))) == "latent"


def test_the_class_field_shows_the_class_in_use():
    from app.bridge import class_in_use
    from app.state import ExplorerState
    from renderer.session import seed_class

    state = ExplorerState()
    info = {"c_dim": 10, "z_dim": 16}
    state.update({"seed_x": 7.0})
    assert class_in_use(state, info) == (seed_class(7, 16, 10), "from seed 7")
    state.set("class_idx", 3)
    assert class_in_use(state, info) == (3, "chosen")
    assert class_in_use(state, {"c_dim": 0, "z_dim": 16}) is None


def test_the_window_takes_the_request_flags(tmp_path):
    import json

    import run_app
    from renderer import commands

    args = run_app.build_parser().parse_args(["--seed", "5", "--psi", "0.7", "--noise-mode", "none"])
    request = run_app.window_request(args)
    assert request.seeds == ((5, 1.0),) and request.truncation_psi == 0.7 and request.noise_mode == "none"
    assert run_app.window_request(run_app.build_parser().parse_args([])) is None
    session = tmp_path / "s.json"
    session.write_text(json.dumps(RenderRequest(seeds=9, mix_seed=3, mix_layers="0-2").to_dict()))
    args = run_app.build_parser().parse_args(["--session", str(session), "--psi", "0.5"])
    request = run_app.window_request(args)  # the session is the base, the flags go on top
    assert request.seeds == ((9, 1.0),) and request.mix_layers == (0, 1, 2) and request.truncation_psi == 0.5
    frame_args = run_app.build_parser().parse_args(["frame", "--seed", "3", "--out", "x.png"])
    assert frame_args.seed == 3 and frame_args.func is commands.cmd_frame


def test_a_text_file_is_not_a_numpy_array_file(tmp_path):
    from renderer.export_jobs import ExportError
    from renderer.latent_files import load_direction, load_latent

    text = tmp_path / "notes.txt"
    text.write_text("0.1 0.2\n")
    for reader in (load_latent, load_direction):
        with pytest.raises(ExportError) as error:
            reader(text)
        assert str(error.value) == f"{text}: not a .npy/.npz array file"


def test_a_typed_full_path_is_taken_as_it_is_and_sizes_read_in_mb(tmp_path):
    from app.file_dialog import human_size, list_folder, resolve_typed

    assert resolve_typed("/home/me/work", "/tmp/x/session.json") == tmp_path.__class__("/tmp/x/session.json")
    assert resolve_typed("/home/me/work", "s.json") == tmp_path.__class__("/home/me/work/s.json")
    assert str(resolve_typed("/a", "~/s.json")).startswith(str(tmp_path.home()))
    assert human_size(812) == "812 B" and human_size(1_400_000) == "1.4 MB" and human_size(2.1e9) == "2.1 GB"
    for name in ("a.pkl", "b.PT", "c.pth", "d.safetensors", "e.txt", ".hidden.pkl"):
        (tmp_path / name).write_bytes(b"x" * 10)
    (tmp_path / "sub").mkdir()
    shown = [label.split()[0] for label, _, _ in list_folder(tmp_path, (".pkl", ".pt", ".pth", ".safetensors"))]
    assert shown == ["../", "sub/", "a.pkl", "b.PT", "c.pth", "d.safetensors"]  # one filter, every network file
    assert "e.txt" in [label.split()[0] for label, _, _ in list_folder(tmp_path, ())]


def test_folders_are_remembered_under_the_xdg_config_home(tmp_path, monkeypatch):
    from app import settings

    monkeypatch.delenv("STYLESCOPE_CONFIG_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "Pictures").mkdir(parents=True)
    assert settings.config_dir() == tmp_path / "xdg" / "stylescope"
    assert settings.last_folder("export") == tmp_path / "home" / "Pictures"  # a new user's default
    (tmp_path / "nets").mkdir()
    settings.remember_folder("network", tmp_path / "nets")
    assert settings.last_folder("network") == tmp_path / "nets"
    assert (tmp_path / "xdg" / "stylescope" / "settings.json").is_file()
    (tmp_path / "nets").rmdir()  # a remembered folder that is gone: the default again
    assert settings.last_folder("network") == tmp_path / "home" / "Pictures"


def test_the_window_probe_retries_then_gives_one_line(monkeypatch):
    from app import window_probe

    monkeypatch.setenv("DISPLAY", ":42")
    answers = iter([(False, "busy"), (False, "busy"), (True, "")])
    calls = []
    assert window_probe.window_problem(tries=3, pause=0, probe=lambda: calls.append(1) or next(answers)) is None
    assert len(calls) == 3, "a refusal is tried again"
    problem = window_probe.window_problem(tries=2, pause=0, probe=lambda: (False, "GLX: GLX extension not found"))
    assert problem == "cannot open a window on :42 (GLX: GLX extension not found; tried 2 times)"


def test_noise_usage_is_the_mean_change_with_a_layers_noise_off(fixtures_dir):
    import dataclasses

    from renderer.noise_usage import layer_usage, usage_summary
    from renderer.renderer import Renderer

    renderer = Renderer("cpu")
    request = RenderRequest(pkl=str(fixtures_dir / "sg2ada_64.pkl"), seeds=3, layer="b16.conv1", noise_mode="random")
    plain = dataclasses.replace(request, layer=None, noise_mode="const")
    reference = renderer.render(plain).image.astype(float)
    off = renderer.render(dataclasses.replace(plain, noise_layer_strength={"b8.conv0": 0.0})).image.astype(float)
    assert layer_usage(renderer, request, "b8.conv0") == pytest.approx(np.abs(off - reference).mean(), rel=1e-5)
    everything = layer_usage(renderer, request, None)
    none = renderer.render(dataclasses.replace(plain, noise_mode="none")).image.astype(float)
    assert everything == pytest.approx(np.abs(none - reference).mean(), rel=1e-5) and everything > 1
    assert "barely" in usage_summary(0.1) and "clearly" in usage_summary(everything)


def test_the_export_panel_writes_at_the_output_scale(fixtures_dir, tmp_path):
    dpg = pytest.importorskip("dearpygui.dearpygui")
    from app.panels.export import ExportPanel
    from renderer import png_metadata

    current = RenderRequest(pkl=str(fixtures_dir / "sg2ada_64.pkl"), device="cpu", seeds=3)

    class FakeState:
        def to_request(self):
            return current

    class FakeContext:  # the part of PanelContext the export panel uses
        state, engine, picture, text_inputs = FakeState(), None, types.SimpleNamespace(last_frame=None), []

        def set_status(self, text, error=False):
            pass

        def note(self, event, **data):
            pass

    dpg.create_context()
    try:
        job = ExportPanel(FakeContext()).save_frame({"folder": str(tmp_path), "latents": False, "scale": 2.0})
        assert job.wait(timeout=120) and job.error is None, job.error
        (png,) = job.result
        assert png.name.startswith("stylescope_seed3_")
        assert png_metadata.read_png_image(png).shape == (128, 128, 3)
        assert png_metadata.read_png_metadata(png).request().output_scale == 2.0
    finally:
        dpg.destroy_context()
