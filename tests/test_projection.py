"""Projection (renderer/projection.py, `run_app.py project`): targets, schedule, files, every family, the done criterion."""

import numpy as np
import pytest
import torch
from PIL import Image

import run_app
from models.errors import LoadError, UnsafeFileError
from models.loader import load_discriminator, load_generator
from renderer import projection
from renderer.projection import ProjectionSettings, Projector, prepare_target, psnr


def png(path, image):
    Image.fromarray(np.asarray(image, np.uint8)).save(path)
    return str(path)


def read_png(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_target_is_the_centre_square_resized():
    wide = np.zeros((40, 100, 3), np.uint8)
    wide[:, 30:70] = 200  # exactly the centred 40 x 40 square
    target, box = prepare_target(wide, 16)
    assert box == (30, 0, 40) and target.shape == (16, 16, 3)
    assert target.min() >= 199
    grey, _ = prepare_target(np.full((8, 8), 7, np.uint8), 4)
    assert grey.shape == (4, 4, 3)


def test_schedule_ramps_like_nvidia():
    s = ProjectionSettings(lr_rampup=0.05, lr_rampdown=0.25)
    assert projection.learning_rate(0.0, s) == 0
    assert projection.learning_rate(0.5, s) == pytest.approx(s.learning_rate)
    assert projection.learning_rate(0.9, s) < s.learning_rate / 2
    assert projection.w_noise_scale(0.0, s.replace(w_noise=0.05), 2.0) == pytest.approx(0.1)
    assert projection.w_noise_scale(0.8, s.replace(w_noise=0.05), 2.0) == 0
    plain = ProjectionSettings()  # the measured default: plain Adam (docs/projection.md)
    assert projection.learning_rate(0.0, plain) == projection.learning_rate(0.99, plain) == plain.learning_rate


def test_settings_refuse_bad_values():
    for bad in (dict(space="z"), dict(steps=0), dict(pixel=float("nan")), dict(vgg=-1.0)):
        with pytest.raises(ValueError):
            ProjectionSettings(**bad)


def test_cli_writes_nvidia_layout_that_frame_and_from_png_read(fixtures_dir, tmp_path, capsys):
    net = str(fixtures_dir / "sg2ada_64.pkl")
    target = png(tmp_path / "t.png", np.random.default_rng(0).integers(0, 255, (80, 60, 3)))
    out, out_png, video = tmp_path / "p.npz", tmp_path / "final.png", tmp_path / "progress.mp4"
    code = run_app.main(["project", "--pkl", net, "--target", target, "--space", "w+", "--steps", "12",
                         "--out", str(out), "--out-png", str(out_png), "--video", str(video)])
    assert code == 0
    err = capsys.readouterr().err
    assert "centre square 60x60" in err and "loss=" in err
    w = np.load(out)["w"]
    assert w.shape == (1, 10, 64) and w.dtype == np.float32
    assert video.stat().st_size > 0
    # frame --w reads it, and renders the same picture the PNG holds; --from-png rebuilds that PNG.
    again, rebuilt = tmp_path / "again.png", tmp_path / "rebuilt.png"
    assert run_app.main(["frame", "--pkl", net, "--w", str(out), "--noise-mode", "const", "--out", str(again)]) == 0
    assert run_app.main(["frame", "--pkl", net, "--from-png", str(out_png), "--out", str(rebuilt)]) == 0
    assert np.array_equal(read_png(again), read_png(out_png))
    assert np.array_equal(read_png(rebuilt), read_png(out_png))


def test_ctrl_c_leaves_no_file(fixtures_dir, tmp_path, monkeypatch):
    target = png(tmp_path / "t.png", np.full((64, 64, 3), 90, np.uint8))
    real_step = Projector.step

    def interrupted(self):
        if self.step_index == 4:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(Projector, "step", interrupted)
    code = run_app.main(["project", "--pkl", str(fixtures_dir / "sg2ada_64.pkl"), "--target", target,
                         "--steps", "20", "--out", str(tmp_path / "p.npz"), "--out-png", str(tmp_path / "f.png"),
                         "--video", str(tmp_path / "v.mp4")])
    assert code == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.png"]


def test_bad_targets_give_one_line(fixtures_dir, tmp_path, capsys):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG but not really")
    for target, words in ((tmp_path / "missing.png", "no such file"), (junk, "not a readable image")):
        code = run_app.main(["project", "--pkl", str(fixtures_dir / "sg2ada_64.pkl"), "--target", str(target),
                             "--steps", "2", "--out", str(tmp_path / "p.npz")])
        err = capsys.readouterr().err.strip()
        assert code == 1 and words in err and len(err.splitlines()) == 1
    assert not (tmp_path / "p.npz").exists()


@pytest.mark.parametrize("name", ["sg1_64.pkl", "sg2ada_64.pkl", "sg3_sg2_64.pkl", "sg3_t_64.pkl", "tf_sg2_64.pkl",
                                  "rosi_32.pt", "psp_32.pt"])
def test_photo_projects_on_every_family(fixtures_dir, name):
    from skimage import data

    G = load_generator(fixtures_dir / name)
    target, _ = prepare_target(data.astronaut(), G.img_resolution)
    projector = Projector(G, target, ProjectionSettings(space="w+", steps=6, msssim=0.5, w_avg_samples=500))

    def total_loss():
        with torch.no_grad():
            return float(sum(projector.losses(G.synthesis(projector.ws(), noise_mode="const")).values()))

    first = total_loss()
    projector.run_steps(6)
    assert projector.done and np.isfinite(projector.loss)
    assert projector.ws().shape == (1, G.num_ws, G.w_dim)
    assert total_loss() < first


def random_vgg_file(path):
    """A random-weight VGG16 in torchvision's key layout (features only: the classifier is not read)."""
    from models.vgg import CONFIG_D, TORCHVISION_CONV_INDICES

    gen, state, in_channels = torch.Generator().manual_seed(0), {}, 3
    channels = [c for c in CONFIG_D if c != "M"]
    for index, out_channels in zip(TORCHVISION_CONV_INDICES, channels):
        std = (2 / (9 * in_channels)) ** 0.5
        state[f"features.{index}.weight"] = torch.randn([out_channels, in_channels, 3, 3], generator=gen) * std
        state[f"features.{index}.bias"] = torch.zeros([out_channels])
        in_channels = out_channels
    torch.save(state, path)
    return path


def test_vgg_and_discriminator_terms(fixtures_dir, tmp_path):
    from models.vgg import load_vgg16

    vgg = load_vgg16(random_vgg_file(tmp_path / "vgg16-random.pth"))
    D = load_discriminator(fixtures_dir / "sg2ada_64.pkl")
    G = load_generator(fixtures_dir / "sg2ada_64.pkl")
    target = np.random.default_rng(1).integers(0, 255, (64, 64, 3)).astype(np.uint8)
    settings = ProjectionSettings(steps=4, vgg=1.0, discriminator=1.0, w_avg_samples=500)
    projector = Projector(G, target, settings, feature_nets={"vgg": vgg.features_for_distance,
                                                             "discriminator": D.features})
    with torch.enable_grad():
        terms = projector.losses(G.synthesis(projector.ws(), noise_mode="const"))
    assert set(terms) == {"pixel", "vgg", "discriminator"} and all(float(v) > 0 for v in terms.values())
    projector.run_steps(4)
    assert np.isfinite(projector.loss)


def test_vgg_files_refused_cleanly(tmp_path):
    import zipfile

    from models.vgg import load_vgg16

    script = tmp_path / "vgg16.pt"  # the shape of a TorchScript archive: code beside the data
    with zipfile.ZipFile(script, "w") as archive:
        archive.writestr("vgg16/code/__torch__/vgg.py", "def forward(self, x): ...")
        archive.writestr("vgg16/data.pkl", b"\x80\x02}q\x00.")
    with pytest.raises(UnsafeFileError, match="TorchScript"):
        load_vgg16(script)
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(3)}, wrong)
    with pytest.raises(LoadError, match="features.0.weight"):
        load_vgg16(wrong)
    with pytest.raises(LoadError, match="no such file"):
        load_vgg16(tmp_path / "none.pth")


@pytest.mark.parametrize("space, floor_db", [("w+", 33.0), ("w", 28.0)])
def test_default_model_projects_its_own_mixed_noisy_image_back(tmp_path, space, floor_db):
    # Seeds no other test uses; style mixing and random noise, so no single w gives it exactly.
    target = tmp_path / "target.png"
    assert run_app.main(["frame", "--seed", "7301", "--mix-seed", "7302", "--mix-layers", "middle,fine",
                         "--noise-mode", "random", "--noise-seed", "11", "--out", str(target)]) == 0
    out, again = tmp_path / "p.npz", tmp_path / "again.png"
    assert run_app.main(["project", "--target", str(target), "--space", space, "--steps", "300",
                         "--out", str(out)]) == 0
    assert run_app.main(["frame", "--w", str(out), "--noise-mode", "const", "--out", str(again)]) == 0
    assert psnr(read_png(again), read_png(target)) >= floor_db


def test_cli_perceptual_terms(fixtures_dir, tmp_path, capsys):
    target = png(tmp_path / "t.png", np.full((64, 64, 3), 120, np.uint8))
    vgg = random_vgg_file(tmp_path / "vgg16-random.pth")
    out = tmp_path / "p.npz"
    assert run_app.main(["project", "--pkl", str(fixtures_dir / "sg2ada_64.pkl"), "--target", target, "--steps", "3",
                         "--vgg", str(vgg), "--discriminator-weight", "0.5", "--out", str(out)]) == 0
    assert np.load(out)["w"].shape == (1, 10, 64)
    # A file without a discriminator: the term is left out with a warning, the projection runs.
    assert run_app.main(["project", "--pkl", str(fixtures_dir / "rosi_32_nada.pt"), "--target", target, "--steps", "2",
                         "--discriminator-weight", "1", "--out", str(out)]) == 0
    assert "has no discriminator" in capsys.readouterr().err
    # TF (G, D, Gs) pickles carry their D: the term is used.
    for name in ("tf_sg2_64.pkl", "sg1_64.pkl"):
        assert run_app.main(["project", "--pkl", str(fixtures_dir / name), "--target", target, "--steps", "2",
                             "--discriminator-weight", "1", "--out", str(out)]) == 0
        assert "has no discriminator" not in capsys.readouterr().err and np.load(out)["w"].shape == (1, 10, 64)
    # rosinality's training checkpoint carries its D ('d'): the term is used.
    assert run_app.main(["project", "--pkl", str(fixtures_dir / "rosi_32.pt"), "--target", target, "--steps", "2",
                         "--discriminator-weight", "1", "--out", str(out)]) == 0
    assert "has no discriminator" not in capsys.readouterr().err and np.load(out)["w"].shape == (1, 8, 128)
    script = tmp_path / "vgg16.pt"
    import zipfile

    with zipfile.ZipFile(script, "w") as archive:
        archive.writestr("vgg16/code/__torch__/vgg.py", "def forward(self, x): ...")
    assert run_app.main(["project", "--pkl", str(fixtures_dir / "sg2ada_64.pkl"), "--target", target, "--steps", "2",
                         "--vgg", str(script), "--out", str(tmp_path / "q.npz")]) == 1
    err = capsys.readouterr().err.strip()
    assert "TorchScript" in err and len(err.splitlines()) == 1 and not (tmp_path / "q.npz").exists()


def test_discriminator_sees_the_pictures_area_downsampled():
    # D's blocks take both pictures at half size (the area average): a quarter of D's work.
    seen = []

    def features(img):
        seen.append(img.shape[-1])
        return [img]

    from renderer.renderer import DEFAULT_MODEL

    G = load_generator(DEFAULT_MODEL)
    target = np.random.default_rng(2).integers(0, 255, (64, 64, 3)).astype(np.uint8)
    settings = ProjectionSettings(steps=1, discriminator=1.0, w_avg_samples=100)
    projector = Projector(G, target, settings, feature_nets={"discriminator": features})
    projector.step()
    assert seen == [32, 32]
    expected = torch.nn.functional.avg_pool2d(projection.to_network_range(target), 2)
    assert torch.equal(projector.feature_terms[0][3][0], expected)
    seen.clear()
    Projector(G, target, settings.replace(discriminator_downsample=1), feature_nets={"discriminator": features})
    assert seen == [64]
    assert projection.downsampled(features, 4, 32)(torch.zeros([1, 3, 32, 32])) is not None and seen[-1] == 16
    with pytest.raises(ValueError, match="discriminator_downsample"):
        ProjectionSettings(discriminator_downsample=3)


@pytest.mark.parametrize("name", ["sg2ada_64.pkl", "tf_sg2_64.pkl", "sg1_64.pkl", "rosi_32.pt"])
def test_every_discriminator_takes_the_halved_picture(fixtures_dir, name):
    # The D term gives D both pictures at half size: every block of every D kind is a convolution.
    D = load_discriminator(fixtures_dir / name)
    size = 32 if name.startswith("rosi") else 64
    with torch.no_grad():
        full = D.features(torch.zeros([1, 3, size, size]))
        half = D.features(torch.zeros([1, 3, size // 2, size // 2]))
    assert len(full) == len(half) and [f.shape[-1] // 2 for f in full] == [f.shape[-1] for f in half]
    if name.startswith("rosi"):
        img = torch.linspace(-1, 1, 3 * size * size).view(1, 3, size, size)
        stages = D.stages(img)
        assert all(torch.equal(f, stages[f"convs.{i + 1}"]) for i, f in enumerate(D.features(img)))
