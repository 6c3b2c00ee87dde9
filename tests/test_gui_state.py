"""ExplorerState, the texture helpers and the renderer bridge, without a window."""

import dataclasses
import json
import os
import sys
import threading

import numpy as np
import pytest

from app.bridge import model_info
from app.sessions import load_session, session_json
from app.state import PARAMS, ExplorerState, blend_z
from app.texture import fit_size, to_rgb_uint8
from renderer.request import RenderRequest


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_defaults_make_the_plain_seed_request():
    request = ExplorerState().to_request()
    assert request == RenderRequest(seeds=((0, 1.0),), normalize="none")
    assert not request.mixing


def test_a_slider_drag_is_one_undo_step_and_redo_returns_it():
    clock = FakeClock()
    state = ExplorerState(clock=clock)
    for value in (0.9, 0.8, 0.7, 0.6):
        clock.now += 0.05
        state.set("truncation_psi", value)
    clock.now += 5  # the hand stopped: the next edit is a new step
    state.set("truncation_psi", 0.5)
    assert state.undo() and state["truncation_psi"] == 0.6
    assert state.undo() and state["truncation_psi"] == 1.0
    assert not state.undo()
    assert state.redo() and state["truncation_psi"] == 0.6
    assert state.redo() and state["truncation_psi"] == 0.5
    assert not state.redo()


def test_a_new_edit_clears_redo_and_version_moves_on_every_change():
    state = ExplorerState()
    version = state.version
    state.set("mix_seed", 5, coalesce=False)
    state.undo()
    assert state.can_redo()
    state.set("noise_seed", 3, coalesce=False)
    assert not state.can_redo()
    assert state.version == version + 3
    assert not state.set("noise_seed", 3)  # unchanged: no step, no version
    assert state.version == version + 3


def test_unknown_names_are_refused():
    with pytest.raises(KeyError):
        ExplorerState().set("psi", 0.5)


def test_fractional_seed_position_becomes_seed_xy_and_extra_seeds_a_blend():
    state = ExplorerState()
    state.update({"seed_x": 2.25, "seed_y": 1.0})
    assert state.to_request().seed_xy == (2.25, 1.0)
    state.set("blend_seeds", [(7, 0.5)], coalesce=False)
    request = state.to_request()
    assert request.seed_xy is None
    assert dict(request.seeds) == {102: 0.75, 103: 0.25, 7: 0.5}


def test_z_blend_keeps_the_spread_of_one_z():
    z = np.array(blend_z([(1, 0.5), (2, 0.5)], 4096))
    assert abs(z.std() - 1) < 0.05
    one = np.array(blend_z([(1, 1.0)], 8))
    np.testing.assert_allclose(one, np.random.RandomState(1).randn(1, 8)[0])
    state = ExplorerState()
    state.update({"seed_x": 0.5, "blend_space": "z"})
    assert len(state.to_request(z_dim=16).z) == 16


def test_mixing_only_when_enabled_with_layers():
    state = ExplorerState()
    state.set("mix_layers", (4, 5, 6, 9))
    assert state.to_request().mix_layers == ()
    state.set("mix_enabled", True)
    request = state.to_request()
    assert request.mix_layers == (4, 5, 6, 9) and request.mix_seed == 1 and request.mixing


def test_old_session_with_text_mix_layers_loads_as_indices():
    """Sessions of earlier versions hold mix_layers as text; a group resolves with the open network's ws."""
    old = {**RenderRequest(seeds=3, mix_seed=9).to_dict(), "mix_layers": "0-1,3"}
    state = ExplorerState()
    assert load_session(state, old) == []
    assert state["mix_enabled"] and state["mix_layers"] == (0, 1, 3)
    grouped = {**old, "mix_layers": "fine"}
    load_session(state, grouped, {"ws_resolutions": [4, 4, 8, 8, 16, 16, 32, 32, 64, 64]})
    assert state["mix_layers"] == (8, 9)
    before = state.snapshot()
    with pytest.raises(ValueError, match="mix_layers: 'fine'"):
        load_session(state, grouped)  # no network open: one clean error, nothing changed
    assert state.snapshot() == before


def test_adjust_joins_the_edit_just_made():
    state = ExplorerState(clock=FakeClock())
    state.set("channel", 40)
    version = state.version
    assert state.adjust({"channel": 13}) and state.version == version + 1
    assert not state.adjust({"channel": 13})  # nothing changed: no new version
    assert state.undo() and state["channel"] == 0  # one step takes back the edit and its adjustment
    assert state.redo() and state["channel"] == 13


def test_normalise_applies_to_feature_maps_only():
    state = ExplorerState()
    state.set("normalize", "minmax")
    assert state.to_request().normalize == "none"
    state.set("layer", "b16.conv1")
    assert state.to_request().normalize == "minmax"


def test_session_json_is_a_request_and_loads_back():
    state = ExplorerState()
    state.update({"seed_x": 42.0, "truncation_psi": 0.7, "truncation_cutoff": 4, "mix_enabled": True,
                  "mix_layers": (0, 1, 2), "mix_seed": 9, "noise_mode": "random", "noise_seed": 3,
                  "noise_layer_strength": {"b8.conv1": 0.5}, "layer": "b8.conv1", "channel_mode": "grid",
                  "transform_rotate": 15.0, "translate_x": 0.1})
    data = json.loads(json.dumps(session_json(state)))
    request = RenderRequest.from_dict(data)  # what `run_app.py frame --request` does
    assert request == state.to_request()
    other = ExplorerState()
    assert load_session(other, data) == []
    assert other.to_request() == state.to_request()
    assert other.undo() and other.to_request() == ExplorerState().to_request()  # loading is one undo step


def test_loading_a_bad_session_changes_nothing():
    state = ExplorerState()
    before = state.snapshot()
    with pytest.raises(ValueError):
        load_session(state, {"truncation_psi": "high"})
    assert state.snapshot() == before


def test_every_param_default_is_valid_in_a_request():
    state = ExplorerState()
    assert len({p.name for p in PARAMS}) == len(PARAMS)
    state.reset()
    state.to_request()


def test_fit_size_uses_integer_zoom_when_it_fits_and_scales_down_otherwise():
    assert fit_size(64, 64, 900, 800) == (768, 768)
    assert fit_size(256, 256, 900, 800) == (768, 768)
    assert fit_size(1024, 1024, 900, 800) == (800, 800)
    assert fit_size(512, 256, 900, 800) == (512, 256)
    assert fit_size(0, 0, 900, 800) == (0, 0)


def test_to_rgb_uint8_checks_what_it_gets():
    assert to_rgb_uint8(np.zeros((4, 4), np.uint8)).shape == (4, 4, 3)
    assert to_rgb_uint8(np.zeros((4, 4, 4), np.uint8)).shape == (4, 4, 3)
    with pytest.raises(TypeError):
        to_rgb_uint8(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError):
        to_rgb_uint8(np.zeros((4, 4, 2), np.uint8))


def test_frame_texture_double_buffers_without_reallocating():
    dpg = pytest.importorskip("dearpygui.dearpygui")
    from app.texture import FrameTexture

    dpg.create_context()
    try:
        registry = dpg.add_texture_registry()
        texture = FrameTexture(dpg, registry, 8, 8)
        buffers = [id(b) for b in texture._buffers]
        first = np.full((8, 8, 3), 200, np.uint8)
        assert texture.show(first) is None
        np.testing.assert_array_equal(texture.shown_pixels(), first)
        second = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
        texture.show(second)
        np.testing.assert_array_equal(texture.shown_pixels(), second)
        assert [id(b) for b in texture._buffers] == buffers  # same two arrays, flipped
        old_tag = texture.show(np.zeros((16, 8, 3), np.uint8))  # a new size needs a new texture
        assert old_tag is not None and (texture.width, texture.height) == (8, 16)
        for buffer in texture._buffers:
            assert buffer.dtype == np.float32 and buffer.flags.c_contiguous and buffer.size == 8 * 16 * 3
    finally:
        dpg.destroy_context()


class FakeFrame:
    def __init__(self, info, layers, pkl="net.pkl"):
        self.info = info
        self.layers = layers
        self.request = RenderRequest(pkl=pkl)


def test_model_info_passes_the_networks_noise_layers_and_lists_layers():
    layers = [("b4.conv1", (1, 8, 4, 4), 4), ("b4.torgb", (1, 3, 4, 4), 4), ("b8.conv0", (1, 8, 8, 8), 8)]
    info = model_info(FakeFrame({"num_ws": 4, "noise_layers": ["b4.conv1", "b8.conv0"]}, layers))
    assert info["noise_layers"] == ["b4.conv1", "b8.conv0"]  # the network's answer (models/family.py)
    assert info["layers"][0] == ("b4.conv1", (1, 8, 4, 4)) and info["pkl"] == "net.pkl"
    assert model_info(FakeFrame({"num_ws": 4}, layers))["noise_layers"] == []
    assert model_info(FakeFrame({}, [])) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority is a Linux feature")
def test_the_render_thread_runs_at_lower_priority_than_the_ui():
    from renderer.renderer import Frame
    from renderer.worker import RENDER_THREAD_NICENESS, RenderWorker

    seen = {}

    class Renderer:
        def render(self, request, **kwargs):
            seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            return Frame(request=request)

    ui_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    with RenderWorker(Renderer(), num_threads=0, background=True) as worker:
        worker.submit(RenderRequest(seeds=3))
        assert worker.wait_idle(timeout=10)
    assert worker.latest().request == RenderRequest(seeds=3)
    assert seen["nice"] >= max(ui_nice, RENDER_THREAD_NICENESS)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == ui_nice  # the UI thread kept its own


@pytest.mark.parametrize("name", ["sg2ada_64", "tf_sg2_64", "sg1_64", "sg3_t_64"])
def test_noise_layers_offered_are_exactly_the_networks_noise_inputs(fixtures_dir, name):
    """The per-layer noise sliders come from layer names; the renderer refuses any other name."""
    import models
    from renderer.renderer import Renderer

    request = RenderRequest(pkl=str(fixtures_dir / f"{name}.pkl"), device="cpu")
    frame = Renderer("cpu").render(request)
    assert frame.error is None
    info = model_info(frame)
    G = models.load_generator(request.pkl)
    noisy = [k[: -len(".noise_strength")] for k in G.synthesis.state_dict() if k.endswith(".noise_strength")]
    assert info["noise_layers"] == noisy


def test_performance_panel_says_how_the_last_frame_was_made():
    from app.panels.performance import frame_origin
    from renderer.renderer import Frame

    assert frame_origin(None) == "-"
    assert frame_origin(Frame()) == "a whole pass"
    assert frame_origin(Frame(reused_blocks=7)).startswith("7 blocks")
    assert frame_origin(Frame(recalled=True)).startswith("recalled")


# --- vectors: a loaded or frozen z / w, and directions in W ---------------------------------------
INFO = {"z_dim": 4, "w_dim": 3, "num_ws": 5, "pkl": None}


def test_a_loaded_vector_replaces_the_seeds_and_a_seed_edit_goes_back_to_them():
    state = ExplorerState()
    w = ((0.5, -1.0, 2.0),) * 5
    state.update({"latent": ("w", "projected_w.npz", w), "truncation_psi": 0.7})
    request = state.to_request()
    assert request.w == w and request.z is None and request.seed_xy is None
    state.set("seed_x", 3.0)  # the seed field, a key, a drag on the image: back to the seeds
    assert state["latent"] is None and state.to_request().w is None
    assert state.to_request().seeds == ((3, 1.0),)
    assert state.undo() and state.to_request().w == w  # one undo step brings the vector back
    state.set("latent", ("z", "z.npy", (0.1, 0.2, 0.3, 0.4)))
    assert state.to_request().z == (0.1, 0.2, 0.3, 0.4) and state.to_request().w is None
    state.set("directions", [("d", 1.0, 10.0, ((1.0, 0.0, 0.0),))])
    state.set("pkl", "/elsewhere/other.pkl")  # another network: the vector may not even fit it
    assert state["latent"] is None and state["directions"] == ()
    state.restore_previous_network(None)  # ... and that file failed to open: all comes back
    assert state["pkl"] is None and state["latent"][1] == "z.npy" and len(state["directions"]) == 1


def test_directions_add_their_strength_times_rows_to_every_w():
    state = ExplorerState()
    one = ((1.0, 0.0, 0.0),)  # a single row stands for every layer
    per_layer = tuple((float(i), 1.0, 0.0) for i in range(5))
    state.set("directions", [("a", 0.0, 10.0, one), ("b", 0.0, 2.0, per_layer)])
    assert state.to_request().w_offset is None  # strength 0: nothing added
    state.set("directions", [("a", 2.0, 10.0, one), ("b", -0.5, 2.0, per_layer)])
    offset = np.asarray(state.to_request().w_offset)
    expected = 2.0 * np.asarray(one) - 0.5 * np.asarray(per_layer)
    np.testing.assert_allclose(offset, expected)
    state.set("seed_x", 5.0)  # directions stay when the seed changes: they move any image
    np.testing.assert_allclose(np.asarray(state.to_request().w_offset), expected)


def test_a_session_with_a_w_and_an_offset_loads_back_exactly():
    state = ExplorerState()
    state.update({"latent": ("w", "mine.npy", ((0.25, 0.5, 0.75),) * 5), "mix_enabled": True,
                  "mix_layers": (3, 4), "mix_seed": 2,
                  "directions": [("d", 1.5, 10.0, ((0.0, 1.0, 0.0),))]})
    data = json.loads(json.dumps(session_json(state)))
    other = ExplorerState()
    assert load_session(other, data) == []
    assert other.to_request() == state.to_request()
    assert other["latent"][0] == "w" and len(other["directions"]) == 1


def test_vector_files_are_checked_against_the_network(tmp_path):
    from app.panels.vectors import direction_from_file, fit_w, latent_from_file

    np.savez(tmp_path / "projected_w.npz", w=np.ones((1, 5, 3)))  # NVIDIA's projector writes this
    kind, name, values = latent_from_file(tmp_path / "projected_w.npz", INFO)
    assert (kind, name) == ("w", "projected_w.npz") and np.asarray(values).shape == (5, 3)
    np.save(tmp_path / "seed_z.npy", np.arange(4.0))  # what the export writes beside a PNG
    assert latent_from_file(tmp_path / "seed_z.npy", INFO)[::2] == ("z", (0.0, 1.0, 2.0, 3.0))
    np.save(tmp_path / "boundary.npy", np.ones((1, 3)))  # an InterFaceGAN boundary: [1, w_dim]
    name, strength, limit, rows = direction_from_file(tmp_path / "boundary.npy", INFO)
    assert strength == 0.0 and limit > 0 and rows == ((1.0, 1.0, 1.0),)
    bad = {"wrong_w.npy": np.ones((7, 3)), "wrong_z_z.npy": np.ones(9), "nan_w.npy": np.full((5, 3), np.nan)}
    for filename, array in bad.items():
        np.save(tmp_path / filename, array)
        with pytest.raises(ValueError, match="shape|z_dim|NaN"):
            latent_from_file(tmp_path / filename, INFO)
    (tmp_path / "junk.npy").write_bytes(b"not numpy at all")
    with pytest.raises(ValueError, match=r"junk.npy: not a .npy/.npz array file$"):
        latent_from_file(tmp_path / "junk.npy", INFO)
    (tmp_path / "notes.txt").write_text("0.1 0.2 0.3\n")  # a text file: no numpy 'allow_pickle' talk
    with pytest.raises(ValueError, match=r"notes.txt: not a .npy/.npz array file$"):
        direction_from_file(tmp_path / "notes.txt", INFO)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickled"):  # pickled objects are never loaded
        direction_from_file(tmp_path / "objects.npy", INFO)
    with pytest.raises(ValueError, match="does not fit"):
        fit_w(np.ones((2, 2, 3)), INFO)


def test_the_windows_vector_requests_run_on_the_worker(fixtures_dir, tmp_path):
    # Freeze w, a direction between two seeds and the principal directions each run on the worker
    # thread (the window's thread never runs the network) and come back as polled results.
    import threading
    from types import SimpleNamespace

    from app.bridge import Engine
    from renderer.renderer import Renderer
    from renderer_standin import standin_loader

    def result(call):
        assert call.wait(60) and call.error is None, call.error
        return call.result

    renderer = Renderer("cpu")
    threads = []
    original = renderer.compute_ws
    renderer.compute_ws = lambda request: threads.append(threading.current_thread().name) or original(request)
    engine = Engine(SimpleNamespace(device="cpu"), renderer=renderer)
    try:
        state = ExplorerState()
        state.update({"pkl": str(fixtures_dir / "sg2ada_64.pkl"), "seed_x": 3.0, "truncation_psi": 0.5})
        request = state.to_request()
        lone = Renderer("cpu")
        np.testing.assert_array_equal(result(engine.image_ws(state)), lone.compute_ws(request)[0].numpy())
        psi_one = [lone.compute_ws(dataclasses.replace(request, seeds=seed, truncation_psi=1.0))[0].numpy()
                   for seed in (0, 4)]
        np.testing.assert_allclose(result(engine.seed_direction(state, 0, 4)), psi_one[1] - psi_one[0])
        # From the image (here a loaded w) to seed 6 with the state's psi: strength 1 lands on seed 6's ws.
        loaded = lone.compute_ws(dataclasses.replace(request, seeds=9))[0].numpy()
        state.set("latent", ("w", "nine", tuple(map(tuple, loaded.tolist()))))
        toward = result(engine.toward_seed(state, 6))
        np.testing.assert_allclose(loaded + toward, lone.compute_ws(dataclasses.replace(request, seeds=6))[0].numpy(),
                                   atol=1e-6)
        assert set(threads) == {"RenderWorker"}
        components, sigmas = lone.principal_directions(request)
        every = result(engine.principal_direction(state, 1))
        np.testing.assert_allclose(every, components[1:2] * sigmas[1])  # one row: every w, one sigma
        coarse = result(engine.principal_direction(state, 0, "coarse"))
        resolutions = lone.load(request)[1].synthesis.ws_resolutions
        on = [i for i, res in enumerate(resolutions) if res <= 8]
        assert np.abs(coarse[on] - components[0] * sigmas[0]).max() < 1e-12
        assert not np.delete(coarse, on, axis=0).any()  # the other ws are untouched
        bad = engine.principal_direction(state, 99)
        assert bad.wait(60) and "principal direction 99" in bad.error and bad.result is None
    finally:
        engine.close()
    closed = engine.image_ws(state)
    assert closed.done() and "closed" in closed.error  # after close: an answer, never a hang
    # A conditional network: the state's class, else random classes, both give directions.
    conditional = Engine(SimpleNamespace(device="cpu"), renderer=Renderer("cpu", load=standin_loader(c_dim=3)))
    try:
        state = ExplorerState()
        (tmp_path / "standin.pkl").write_bytes(b"x")
        state.set("pkl", str(tmp_path / "standin.pkl"))
        assert np.isfinite(result(conditional.principal_direction(state, 0))).all()
        state.set("class_idx", 2)
        assert np.isfinite(result(conditional.principal_direction(state, 0))).all()
    finally:
        conditional.close()
