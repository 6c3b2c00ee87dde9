"""Coarse/middle/fine are the paper's groups everywhere: models, renderer, CLI and the GUI's state and presets."""

import json

import numpy as np
import pytest
from PIL import Image

import run_app
from app.bridge import model_info
from app.sessions import load_session
from app.panels.mixing import preset_layers
from app.state import ExplorerState
from models import stylegan1, stylegan2
from renderer import commands
from renderer.renderer import Renderer
from renderer.request import RenderRequest, mix_indices

# Karras et al. 2019, section 3.1: two ws per resolution; coarse 4-8 px, middle 16-32 px, fine 64 px and up.
PAPER_GROUPS = {"coarse": [0, 1, 2, 3], "middle": [4, 5, 6, 7]}


def assert_paper_groups(ws_resolutions, num_ws):
    assert len(ws_resolutions) == num_ws
    for name, indices in PAPER_GROUPS.items():
        assert mix_indices(name, ws_resolutions) == indices
    assert mix_indices("fine", ws_resolutions) == list(range(8, num_ws))


@pytest.mark.parametrize("resolution, num_ws", [(256, 14), (512, 16), (1024, 18)])
def test_stylegan2_groups(resolution, num_ws):
    G = stylegan2.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=resolution, img_channels=3,
                            synthesis_kwargs=dict(channel_base=4096, channel_max=2))
    assert G.num_ws == num_ws
    assert_paper_groups(G.synthesis.ws_resolutions, num_ws)
    assert G.synthesis.ws_resolutions[-2:] == [resolution, resolution]


@pytest.mark.parametrize("resolution, num_ws", [(256, 14), (1024, 18)])
def test_stylegan1_groups(resolution, num_ws):
    G = stylegan1.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=resolution, img_channels=3,
                            mapping_layers=1, mapping_fmaps=8, fmap_base=4096, fmap_max=2)
    assert G.num_ws == num_ws
    assert_paper_groups(G.synthesis.ws_resolutions, num_ws)


@pytest.fixture(scope="module")
def fixture_frame(fixtures_dir):
    pytest.importorskip("models.loader")
    path = str(fixtures_dir / "sg2ada_64.pkl")
    frame = Renderer("cpu").render(RenderRequest(pkl=path, device="cpu", seeds=1))
    assert frame.error is None, frame.error
    return path, frame


def test_gui_presets_and_load_request_on_the_64px_fixture(fixture_frame):
    path, frame = fixture_frame
    info = model_info(frame)
    resolutions = info["ws_resolutions"]
    assert preset_layers(resolutions, "coarse") == (0, 1, 2, 3)
    assert preset_layers(resolutions, "middle") == (4, 5, 6, 7)  # a screenshot once showed 3-6 here
    assert preset_layers(resolutions, "fine") == (8, 9)

    state = ExplorerState()
    state.load_request(RenderRequest(pkl=path, seeds=1, mix_seed=2, mix_layers=mix_indices("middle", resolutions)),
                       resolutions)
    assert state["mix_enabled"] and state["mix_layers"] == (4, 5, 6, 7)
    # a session file of an earlier version naming a group comes back as the open network's indices
    session = {**RenderRequest(pkl=path, seeds=1, mix_seed=2).to_dict(), "mix_layers": "coarse"}
    other = ExplorerState()
    load_session(other, session, info)
    assert other["mix_layers"] == (0, 1, 2, 3)


def test_stylegan3_has_no_coarse_preset():
    assert preset_layers([16] * 5 + [32] * 4 + [64] * 7, "coarse") == ()
    with pytest.raises(ValueError, match="no coarse layers"):
        mix_indices("coarse", [16] * 5 + [32] * 4 + [64] * 7)


def test_cli_info_and_frame_agree_with_the_gui(fixture_frame, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(commands, "headless_threads", lambda: None)  # one thread: tiny net, shared machine
    path, frame = fixture_frame
    assert run_app.main(["info", "--pkl", path, "--device", "cpu"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["ws_resolutions"] == model_info(frame)["ws_resolutions"]
    assert info["mix_groups"] == {**PAPER_GROUPS, "fine": [8, 9]}

    out = tmp_path / "coarse.png"
    argv = ["frame", "--pkl", path, "--seed", "1", "--mix-seed", "2", "--mix-layers", "coarse", "--device", "cpu",
            "--out", str(out)]
    assert run_app.main(argv) == 0
    by_index = Renderer("cpu").render(RenderRequest(pkl=path, device="cpu", seeds=1, mix_seed=2, mix_layers="0-3"))
    assert np.array_equal(np.asarray(Image.open(out)), by_index.image)
