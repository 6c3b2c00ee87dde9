"""rosinality files with a non-default blur_kernel, and torch.save options (pickle_protocol) the fixtures do not show."""

import numpy as np
import pytest
import torch

import rosinality_reference as rosi
import run_app
from models.loader import load_generator
from renderer import commands


@pytest.mark.parametrize("taps", [(1, 2, 1), (1, 4, 6, 4, 1), (1, 1), (1, 2, 2, 1)], ids=lambda t: f"{len(t)}taps")
@torch.no_grad()
def test_rosinality_blur_kernels_render_like_rosinality_and_survive_convert(tmp_path, taps, monkeypatch):
    monkeypatch.setattr(commands, "headless_threads", lambda: torch.set_num_threads(1))
    sd = rosi.random_generator(32, 16, 2, {4: 16, 8: 12, 16: 12, 32: 8}, seed=3, blur_kernel=taps)
    path = tmp_path / "g.pt"
    torch.save({"g_ema": sd}, path)
    out = tmp_path / "g.safetensors"
    assert run_app.main(["convert", "--pkl", str(path), "--out", str(out)]) == 0
    z = torch.from_numpy(np.random.RandomState(0).randn(1, 16).astype(np.float32))
    w = rosi.mapping(sd, z, 2)[:, None].repeat(1, 8, 1)
    expected = rosi.synthesis(sd, w)
    for source in (path, out):
        for reference in (False, True):
            G = load_generator(source, reference=reference)
            assert G.synthesis.b8.conv0.resample_filter.shape == (len(taps), len(taps)), (source, reference)
            assert G.synthesis.b8.resample_filter.shape == (4, 4)
            image = G.synthesis(G.mapping(z, None), noise_mode="const")
            assert float((image - expected).abs().max()) < 1e-4, (source, reference)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@torch.no_grad()
def test_any_pickle_protocol_loads_in_both_torch_formats(tmp_path, protocol, legacy):
    sd = rosi.random_generator(16, 8, 2, rosi.channel_table(16, divide=64), seed=4)
    tree = {"state_dict": {f"decoder.{k}": v for k, v in sd.items()}, "opts": {"n_styles": 6}, "latent_avg": torch.ones(8)}
    path = tmp_path / "psp.pt"
    torch.save(tree, path, pickle_protocol=protocol, _use_new_zipfile_serialization=not legacy)
    G = load_generator(path)
    assert G.info["format"] == "psp-e4e" and torch.equal(G.mapping.w_avg, torch.ones(8))
    z = torch.from_numpy(np.random.RandomState(0).randn(1, 8).astype(np.float32))
    expected = rosi.synthesis(sd, rosi.mapping(sd, z, 2)[:, None].repeat(1, G.num_ws, 1))
    assert float((G.synthesis(G.mapping(z, None), noise_mode="const") - expected).abs().max()) < 1e-4
