"""The discriminators load_discriminator reads, against the logits the original code computed."""

import numpy as np
import pytest
import torch

from models.errors import LoadError
from models.loader import load_discriminator


@pytest.mark.parametrize("name", ["sg2ada_64", "sg3_t_64", "sg3_sg2_64", "tf_sg2_64"])
def test_logits_equal_nvidia(fixtures_dir, name):
    D = load_discriminator(fixtures_dir / f"{name}.pkl")
    ref = np.load(fixtures_dir / f"{name}_ref.npz")
    with torch.no_grad():
        logits = D(torch.from_numpy(ref["img_seed0_psi1p0_const"]))
    assert logits.shape == (1, 1)
    assert abs(float(logits[0, 0]) - float(ref["D_logits_seed0_psi1p0"][0, 0])) < 1e-4


def test_features_are_the_block_outputs_and_differentiable(fixtures_dir):
    D = load_discriminator(fixtures_dir / "sg2ada_64.pkl")
    img = torch.zeros([1, 3, 64, 64], requires_grad=True)
    features = D.features(img)
    assert [tuple(f.shape[-2:]) for f in features] == [(32, 32), (16, 16), (8, 8), (4, 4)]
    sum(f.square().sum() for f in features).backward()
    assert img.grad is not None and torch.isfinite(img.grad).all()


def test_tf_stylegan1_scores_equal_tensorflow(fixtures_dir):
    from models.tf_discriminator import BasicDiscriminator

    D = load_discriminator(fixtures_dir / "sg1_64.pkl")  # D_basic of a TF StyleGAN (G, D, Gs) tuple
    assert isinstance(D, BasicDiscriminator)
    ref = np.load(fixtures_dir / "sg1_64_ref.npz")
    with torch.no_grad():  # TF ran each image alone (minibatch-stddev group of 1)
        scores = torch.cat([D(torch.from_numpy(ref["images_psi1"][i:i + 1])) for i in range(4)])
    assert np.abs(scores.numpy() - ref["d_scores_psi1"]).max() < 1e-4


@pytest.mark.parametrize("name", ["tf_sg2_64", "sg1_64"])
def test_tf_discriminator_features_reach_the_image(fixtures_dir, name):
    D = load_discriminator(fixtures_dir / f"{name}.pkl")  # the D of a TF (G, D, Gs) tuple
    img = torch.zeros([1, 3, 64, 64], requires_grad=True)
    features = D.features(img)
    assert [tuple(f.shape[1:]) for f in features] == [(32, 32, 32), (64, 16, 16), (64, 8, 8), (64, 4, 4)]
    sum(f.square().sum() for f in features).backward()
    assert img.grad is not None and torch.isfinite(img.grad).all() and float(img.grad.abs().sum()) > 0


def test_tf_discriminator_with_odd_variables_is_one_line(fixtures_dir):
    import dataclasses

    from models import tf_discriminator
    from models.safe_pickle import read_pickle

    d = read_pickle(fixtures_dir / "tf_sg2_64.pkl")[1]
    missing = dataclasses.replace(d, variables={k: v for k, v in d.variables.items() if k != "16x16/Conv0/bias"})
    with pytest.raises(LoadError, match="missing TF variable '16x16/Conv0/bias'"):
        tf_discriminator.from_tf(missing)
    misshapen = dataclasses.replace(d, variables={**d.variables, "Output/weight": np.zeros([64, 2], np.float32)})
    with pytest.raises(LoadError, match="wrong shape for 'b4.out.weight'"):
        tf_discriminator.from_tf(misshapen)
    extra = dataclasses.replace(d, variables={**d.variables, "2x2/Conv/weight": np.zeros([1], np.float32)})
    with pytest.raises(LoadError, match="has no place"):
        tf_discriminator.from_tf(extra)
    conditional = dataclasses.replace(d, static_kwargs={**d.static_kwargs, "label_size": 10})
    with pytest.raises(LoadError, match="conditional"):
        tf_discriminator.from_tf(conditional)
    basic = read_pickle(fixtures_dir / "sg1_64.pkl")[1]
    misshapen = dataclasses.replace(basic, variables={**basic.variables, "4x4/Dense1/bias": np.zeros([2], np.float32)})
    with pytest.raises(LoadError, match="wrong shape for TF variable '4x4/Dense1/bias'"):
        tf_discriminator.from_tf(misshapen)
    growing = dataclasses.replace(basic, variables={**basic.variables, "lod": np.float32(1.0)})
    with pytest.raises(LoadError, match="lod > 0"):
        tf_discriminator.from_tf(growing)
    assert tf_discriminator.from_tf(dataclasses.replace(basic, build_func_name="D_other")) is None
    # Declared sizes far beyond the stored weights: refused before torch allocates them (the G side's bound).
    from models.loader import _build_within_budget, _stored_tensors

    huge = dataclasses.replace(d, static_kwargs={**d.static_kwargs, "resolution": 2 ** 14, "fmap_base": 1 << 20,
                                                 "fmap_max": 65536})
    with pytest.raises(LoadError, match="far larger than the weights it holds"):
        _build_within_budget(lambda: tf_discriminator.from_tf(huge), _stored_tensors(huge), "the file")


def test_files_without_a_discriminator_give_none(fixtures_dir, tmp_path):
    assert load_discriminator(fixtures_dir / "rosi_32_nada.pt") is None  # StyleGAN-NADA keeps only g_ema
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"not a pickle at all")
    assert load_discriminator(junk) is None
    with pytest.raises(LoadError, match="no such file"):
        load_discriminator(tmp_path / "missing.pkl")


def test_default_model_ships_its_discriminator():
    from models.residual_discriminator import Discriminator
    from renderer.renderer import DEFAULT_MODEL

    D = load_discriminator(DEFAULT_MODEL)
    assert isinstance(D, Discriminator)
    with torch.no_grad():
        features = D.features(torch.zeros([1, 3, 64, 64]))
        assert [f.shape[-1] for f in features] == [32, 16, 8, 4]
        assert torch.isfinite(D(torch.zeros([1, 3, 64, 64]))).all()


def test_broken_companion_discriminator_is_one_line(tmp_path):
    import shutil

    from renderer.renderer import DEFAULT_MODEL

    shutil.copy(DEFAULT_MODEL, tmp_path / "m.safetensors")
    assert load_discriminator(tmp_path / "m.safetensors") is None  # no companion: no D
    (tmp_path / "m_D.safetensors").write_bytes(b"garbage")
    with pytest.raises(LoadError, match="m_D.safetensors: not a readable discriminator file"):
        load_discriminator(tmp_path / "m.safetensors")
