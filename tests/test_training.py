"""The default model's dataset and trainer: seeded data, independent factors, finite losses, resume."""

import dataclasses

import numpy as np
import torch

from training import dataset as ds
from training.dataset import FaceDataset, render, sample_factors
from training.discriminator import Discriminator
from training.train import Trainer, TrainConfig, mixing_grid, sample_grid, style_groups


def test_dataset_is_deterministic_from_its_seed():
    a = FaceDataset(64, seed=3).batch(5, 6)
    b = FaceDataset(64, seed=3).batch(5, 6)
    assert a.shape == (6, 3, 64, 64)
    assert torch.equal(a, b)
    assert not torch.equal(a, FaceDataset(64, seed=4).batch(5, 6))
    assert not torch.equal(a, FaceDataset(64, seed=3).batch(6, 6))
    assert a.min() >= -1 and a.max() <= 1
    # Real pictures, not flat noise: a wide spread of values inside each image.
    assert a.std(dim=[1, 2, 3]).min() > 0.15


def _with(factors, other, names):
    mixed = dict(factors)
    for name in names:
        mixed[name] = other[name]
    return mixed


def _mask(parts, *names):
    return torch.isin(parts, torch.tensor([ds.PARTS.index(n) for n in names]))


def test_fine_factors_change_colours_only():
    base, other = sample_factors(16, 1), sample_factors(16, 2)
    img_a, parts_a = render(base, 64, with_parts=True)
    img_b, parts_b = render(_with(base, other, ds.FINE_FACTORS), 64, with_parts=True)
    assert torch.equal(parts_a, parts_b)  # the same shapes everywhere...
    assert (img_a - img_b).abs().mean() > 0.1  # ...painted in other colours


def test_middle_factors_change_features_but_not_pose():
    base, other = sample_factors(16, 1), sample_factors(16, 2)
    img_a, parts_a = render(base, 64, with_parts=True)
    img_b, parts_b = render(_with(base, other, ds.MIDDLE_FACTORS), 64, with_parts=True)
    # Neck and nose sit where the pose puts them, whatever the hair, eyes, mouth or glasses.
    assert torch.equal(_mask(parts_a, "neck", "nose"), _mask(parts_b, "neck", "nose"))
    features = ("hair_back", "hair_front", "eye_white", "iris", "eyelid", "mouth", "glasses")
    assert (_mask(parts_a, *features) != _mask(parts_b, *features)).float().mean() > 0.02


def test_coarse_factors_move_the_head():
    base, other = sample_factors(16, 1), sample_factors(16, 2)
    _, parts_a = render(base, 64, with_parts=True)
    _, parts_b = render(_with(base, other, ds.COARSE_FACTORS), 64, with_parts=True)
    assert (_mask(parts_a, "neck", "nose") != _mask(parts_b, "neck", "nose")).float().mean() > 0.01
    # The nose follows the yaw: its mean x coordinate rises with the yaw across samples.
    _, parts = render(base, 64, with_parts=True)
    xs = torch.arange(64.0).view(1, 1, 64)
    nose = _mask(parts, "nose").float()
    nose_x = (nose * xs).sum([1, 2]) / nose.sum([1, 2]).clamp_min(1)
    offset = nose_x - (base["center_x"] + 1) * 32
    assert np.corrcoef(offset.numpy(), base["yaw"].numpy())[0, 1] > 0.8


def test_factors_are_drawn_independently():
    f = sample_factors(4000, 11)
    columns = []
    for name in ds.ALL_FACTORS:
        value = f[name].float()
        columns.append(value if value.dim() == 1 else value.mean(1))
    corr = np.corrcoef(torch.stack(columns).numpy())
    off_diagonal = corr[~np.eye(len(columns), dtype=bool)]
    assert np.abs(off_diagonal).max() < 0.1


# ---------------------------------------------------------------------------------------------
# The trainer, on a tiny configuration of the real generator so each step takes milliseconds.

TINY = TrainConfig(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, g_channel_base=128, g_channel_max=16,
                   d_channel_base=128, d_channel_max=16, batch=4, r1_interval=2, pl_weight=1.0, pl_interval=2,
                   ema_kimg=0.01)


def _params(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def test_trainer_steps_give_finite_losses_and_move_the_weights():
    trainer = Trainer(TINY)
    g0, d0, ema0 = _params(trainer.G), _params(trainer.D), _params(trainer.G_ema)
    seen = set()
    for _ in range(4):
        losses = trainer.step()
        seen.update(losses)
        assert all(np.isfinite(v) for v in losses.values()), losses
    assert seen == {"G", "D", "R1", "PL"}
    assert trainer.step_count == 4 and trainer.cur_nimg == 16
    assert not torch.equal(g0, _params(trainer.G))
    assert not torch.equal(d0, _params(trainer.D))
    assert not torch.equal(ema0, _params(trainer.G_ema))
    assert not torch.equal(_params(trainer.G), _params(trainer.G_ema))


def test_resume_restores_step_weights_and_continues_identically(tmp_path):
    torch.manual_seed(0)
    trainer = Trainer(TINY)
    for _ in range(3):
        trainer.step()
    trainer.commands.append("python -m training.train --test")
    trainer.save_checkpoint(tmp_path / "ckpt.pt")

    resumed = Trainer(dataclasses.replace(TINY, seed=99))  # different init, overwritten by the load
    state = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    resumed.load_state_dict(state)
    assert resumed.step_count == 3 and resumed.cur_nimg == 12
    assert resumed.commands == trainer.commands
    for a, b in ((trainer.G, resumed.G), (trainer.D, resumed.D), (trainer.G_ema, resumed.G_ema)):
        assert torch.equal(_params(a), _params(b))
    # Same RNG state, same data index, same optimiser moments: the next step matches exactly.
    trainer.step()
    torch.set_rng_state(state["rng"])  # both trainers draw from the one global RNG
    resumed.step()
    assert torch.allclose(_params(trainer.G), _params(resumed.G), atol=1e-6)
    assert torch.allclose(_params(trainer.D), _params(resumed.D), atol=1e-6)


def test_discriminator_separates_by_input():
    D = Discriminator(16, 3, channel_base=128, channel_max=16)
    logits = D(torch.randn(4, 3, 16, 16))
    assert logits.shape == (4,) and torch.isfinite(logits).all()


def test_grids_have_the_expected_layout():
    G = Trainer(dataclasses.replace(TINY, resolution=64, g_channel_base=256)).G_ema
    assert sample_grid(G, 2, 3).shape == (128, 192, 3)
    coarse, middle, fine = style_groups(G)
    assert (coarse, middle, fine) == ([0, 1, 2, 3], [4, 5, 6, 7], [8, 9])  # 4-8, 16-32, 64 px (the paper)
    grid = mixing_grid(G, source_seeds=(1, 2), dest_seeds=(3,))
    assert grid.shape == (2 * 64, 3 * 3 * 64 + 2 * 32, 3)
    # Left panel: the destination row keeps its fine styles, so its cells differ from the sources.
    assert not np.array_equal(grid[64:, 64:128], grid[:64, 64:128])


def test_mixing_measures_tell_colour_from_shape_on_the_dataset():
    # The measures style_mixing_shares uses, on data whose factors we swap by hand: new fine
    # factors bring the other face's colours and keep the shapes; new coarse factors bring its pose.
    from training.train import colour_distance, shape_distance

    base, other = sample_factors(32, 1), sample_factors(32, 2)
    img_base, img_other = render(base, 64), render(other, 64)
    recoloured = render(_with(base, other, ds.FINE_FACTORS), 64)
    assert (colour_distance(recoloured, img_other) < colour_distance(recoloured, img_base)).float().mean() > 0.8
    assert (shape_distance(recoloured, img_base) < shape_distance(recoloured, img_other)).all()
    moved = render(_with(base, other, ds.COARSE_FACTORS), 64)
    assert (shape_distance(moved, img_other) < shape_distance(moved, img_base)).float().mean() > 0.8
    assert (colour_distance(moved, img_base) < colour_distance(moved, img_other)).float().mean() > 0.8


def test_checkpoints_from_before_the_architecture_setting_resume_as_skip():
    from training.train import checkpoint_config

    old = dataclasses.asdict(TINY)
    del old["g_architecture"]
    assert checkpoint_config({"config": old}).g_architecture == "skip"
    assert checkpoint_config({"config": dataclasses.asdict(TINY)}).g_architecture == TINY.g_architecture
    assert TrainConfig().g_architecture == "orig"  # the shipped model's setting is the default
