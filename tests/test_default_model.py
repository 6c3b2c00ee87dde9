"""The shipped default model: safe format, small, documented, and really trained; `run_app.py convert`."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from training.dataset import FaceDataset

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
MODEL = ASSETS / "default_model.safetensors"


@pytest.fixture(scope="module")
def shipped():
    from models import load_generator

    return load_generator(MODEL)


def test_shipped_files_are_small_safe_and_documented():
    assert MODEL.stat().st_size <= 20 * 1024 * 1024
    manifest = json.loads((ASSETS / "default_model.json").read_text())
    for key in ("dataset", "images_shown", "wall_time_seconds", "commands", "generator_kwargs"):
        assert key in manifest, key
    assert manifest["images_shown"] > 0 and manifest["wall_time_seconds"] > 0
    assert all(c.startswith("python -m training.train") for c in manifest["commands"])
    for name in (manifest["sample_grid"], manifest["mixing_grid"]):
        assert (ASSETS / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # safetensors: an 8-byte header length, then a JSON header; no pickle anywhere.
    raw = MODEL.read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_len])
    assert "__metadata__" in header


def test_shipped_model_loads_like_any_generator(shipped):
    G = shipped
    assert G.architecture == "stylegan2"
    assert G.info["format"] == "stylescope-safetensors"
    assert G.img_resolution >= 64 and G.img_channels == 3
    z = torch.from_numpy(np.random.RandomState(0).randn(2, G.z_dim).astype(np.float32))
    with torch.no_grad():
        img = G(z, torch.zeros(2, G.c_dim), noise_mode="const")
    assert img.shape == (2, 3, G.img_resolution, G.img_resolution)
    assert torch.isfinite(img).all()


def _colour_histogram(images):
    """Per-channel 16-bin histograms of the pixel values, each summing to 1."""
    images = images.clamp(-1, 1)
    return torch.cat([torch.histc(images[:, c], bins=16, min=-1, max=1) / images[:, c].numel() for c in range(3)])


def _mean_layout(images):
    """The average image at 8x8: where colour and brightness sit on average (a face's layout)."""
    return F.adaptive_avg_pool2d(images.clamp(-1, 1), 8).mean(0)


@torch.no_grad()
def _generate(G, count=96):
    z = torch.from_numpy(np.random.RandomState(123).randn(count, G.z_dim).astype(np.float32))
    return G(z, torch.zeros(count, G.c_dim), noise_mode="const")


def test_shipped_weights_are_trained_not_initial(shipped):
    from models.stylegan2 import Generator

    G = shipped
    reals = FaceDataset(G.img_resolution, seed=2024).batch(0, 96)
    torch.manual_seed(0)
    untrained = Generator(**G.info["init_kwargs"]).eval()
    fakes, noise = _generate(G), _generate(untrained)

    hist_real = _colour_histogram(reals)
    trained_gap = (_colour_histogram(fakes) - hist_real).abs().sum().item()
    untrained_gap = (_colour_histogram(noise) - hist_real).abs().sum().item()
    assert trained_gap < 0.5 * untrained_gap, (trained_gap, untrained_gap)

    layout_real = _mean_layout(reals)
    trained_gap = (_mean_layout(fakes) - layout_real).abs().mean().item()
    untrained_gap = (_mean_layout(noise) - layout_real).abs().mean().item()
    assert trained_gap < 0.5 * untrained_gap, (trained_gap, untrained_gap)


def test_style_mixing_coarse_takes_shape_fine_takes_colour(shipped):
    # Issue 7: mixing in a source face's coarse styles brings its pose and shape, its fine styles
    # its colours. The measures (colour palettes, edge maps) are checked on the dataset itself in
    # tests/test_training.py; shares are fractions of the source's own distance from the face.
    from training.train import style_mixing_shares

    shares = style_mixing_shares(shipped)
    coarse, fine = shares["coarse"], shares["fine"]
    assert coarse["shape"]["share"] >= 0.6 and coarse["shape"]["closer_to_source"] >= 0.5, shares
    assert coarse["colour"]["share"] <= coarse["shape"]["share"] - 0.3, shares  # the shape, not a repaint
    assert fine["colour"]["share"] >= 0.5, shares
    assert fine["shape"]["share"] <= 0.2 and fine["shape"]["closer_to_source"] <= 0.1, shares  # the shape stays


def test_convert_turns_a_pickle_into_an_equivalent_safe_file(fixtures_dir, tmp_path):
    from models import load_generator

    pkl = fixtures_dir / "sg2ada_64.pkl"
    out = tmp_path / "G.safetensors"
    result = subprocess.run([sys.executable, str(ROOT / "run_app.py"), "convert", "--pkl", str(pkl), "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 0
    original, converted = load_generator(pkl), load_generator(out)
    assert converted.info["format"] == "stylescope-safetensors"
    z = torch.from_numpy(np.random.RandomState(7).randn(1, original.z_dim).astype(np.float32))
    with torch.no_grad():
        a = original(z, torch.zeros(1, original.c_dim), noise_mode="const")
        b = converted(z, torch.zeros(1, converted.c_dim), noise_mode="const")
    assert torch.equal(a, b)


def test_convert_refuses_a_missing_pickle(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "run_app.py"), "convert", "--pkl", str(tmp_path / "nope.pkl"),
                             "--out", str(tmp_path / "G.safetensors")], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0
    assert "nope.pkl" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "G.safetensors").exists()
