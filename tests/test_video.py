"""Interpolation math and the video writers (no network needed)."""

import numpy as np
import pytest

from renderer import interpolate
from renderer.video import VideoWriter, pad_to_even, read_video, video_format


def smooth_frames(count, height=48, width=64):
    """Soft moving gradients: what a codec sees in real renders, unlike white noise."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    frames = []
    for i in range(count):
        phase = 2 * np.pi * i / max(count, 1)
        red = 127 + 100 * np.sin(xs / 9.0 + phase)
        green = 127 + 100 * np.cos(ys / 7.0 - phase)
        blue = 127 + 80 * np.sin((xs + ys) / 13.0 + 2 * phase)
        frames.append(np.stack([red, green, blue], axis=-1).round().astype(np.uint8))
    return frames


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


# ---------------------------------------------------------------- interpolation math


def test_seed_z_matches_gen_images_convention():
    z = interpolate.seed_z(42, 64)
    assert z.shape == (1, 64)
    np.testing.assert_array_equal(z, np.random.RandomState(42).randn(1, 64))


def test_slerp_hits_ends_and_keeps_angle_even():
    a = np.random.RandomState(0).randn(1, 32)
    b = np.random.RandomState(1).randn(1, 32)
    np.testing.assert_allclose(interpolate.slerp(a, b, 0.0), a, atol=1e-12)
    np.testing.assert_allclose(interpolate.slerp(a, b, 1.0), b, atol=1e-12)

    def angle(u, v):
        return np.arccos(np.clip(np.sum(u * v) / np.linalg.norm(u) / np.linalg.norm(v), -1, 1))

    middle = interpolate.slerp(a, b, 0.5)
    assert angle(a, middle) == pytest.approx(angle(middle, b), rel=1e-9)
    assert angle(a, middle) == pytest.approx(angle(a, b) / 2, rel=1e-9)
    # Unlike a lerp, the middle keeps a typical norm instead of shrinking toward 0.
    assert np.linalg.norm(middle) > np.linalg.norm(interpolate.lerp(a, b, 0.5)) * 1.2


def test_slerp_of_parallel_vectors_is_finite():
    a = np.ones((1, 8))
    result = interpolate.slerp(a, 2 * a, 0.5)
    assert np.all(np.isfinite(result))
    np.testing.assert_allclose(result, 1.5 * a)


def test_catmull_rom_passes_through_keys_and_is_c1():
    rng = np.random.RandomState(3)
    keys = [rng.randn(4, 8) for _ in range(5)]
    vectors = interpolate.interpolate_keys(keys, 20, method="cubic-w", loop=True)
    for k in range(5):
        np.testing.assert_allclose(vectors[20 * k], keys[k], atol=1e-12)
    # C1: the derivative leaving a key equals the derivative arriving at it.
    h = 1e-6
    for segment in range(5):
        prev_seg = (segment - 1) % 5
        args_prev = [keys[(prev_seg + d) % 5] for d in (-1, 0, 1, 2)]
        args_next = [keys[(segment + d) % 5] for d in (-1, 0, 1, 2)]
        arriving = (interpolate.catmull_rom(*args_prev, 1.0) - interpolate.catmull_rom(*args_prev, 1.0 - h)) / h
        leaving = (interpolate.catmull_rom(*args_next, h) - interpolate.catmull_rom(*args_next, 0.0)) / h
        np.testing.assert_allclose(arriving, leaving, atol=1e-4)


@pytest.mark.parametrize("easing", interpolate.EASINGS)
def test_easings_fix_the_ends_and_rise(easing):
    ts = np.linspace(0, 1, 101)
    values = np.array([interpolate.ease(t, easing) for t in ts])
    assert values[0] == pytest.approx(0.0)
    assert values[-1] == pytest.approx(1.0)
    assert np.all(np.diff(values) >= -1e-12)


def test_ease_in_out_starts_slow():
    assert interpolate.ease(0.05, "ease-in-out") < 0.05
    with pytest.raises(ValueError, match="unknown easing"):
        interpolate.ease(0.5, "bounce")


@pytest.mark.parametrize(
    "keys, per, loop, expected",
    [(3, 10, False, 21), (3, 10, True, 30), (1, 10, False, 1), (2, 1, True, 2), (4, 5, False, 16)],
)
def test_frame_counts(keys, per, loop, expected):
    assert interpolate.frame_count(keys, per, loop) == expected
    assert len(interpolate.frame_positions(keys, per, loop)) == expected


@pytest.mark.parametrize("method", interpolate.INTERPOLATIONS)
def test_open_path_starts_and_ends_on_keys(method):
    rng = np.random.RandomState(5)
    keys = [rng.randn(1, 16) for _ in range(3)]
    vectors = interpolate.interpolate_keys(keys, 7, method=method, easing="cosine")
    assert len(vectors) == 15
    np.testing.assert_array_equal(vectors[0], keys[0])
    np.testing.assert_allclose(vectors[7], keys[1], atol=1e-12)
    np.testing.assert_allclose(vectors[-1], keys[-1], atol=1e-12)


@pytest.mark.parametrize("method", interpolate.INTERPOLATIONS)
def test_loop_closes_with_an_ordinary_step(method):
    rng = np.random.RandomState(6)
    keys = [rng.randn(1, 16) for _ in range(3)]
    vectors = interpolate.interpolate_keys(keys, 12, method=method, loop=True)
    steps = [np.linalg.norm(vectors[i + 1] - vectors[i]) for i in range(len(vectors) - 1)]
    closing = np.linalg.norm(vectors[0] - vectors[-1])
    # The jump from the last frame back to the first is a step like the others, not a cut.
    assert closing <= 1.5 * max(steps)
    assert closing >= 0.2 * min(steps)


def test_interpolate_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown interpolation"):
        interpolate.interpolate_keys([np.zeros(2), np.ones(2)], 3, method="warp")
    with pytest.raises(ValueError, match="same shape"):
        interpolate.interpolate_keys([np.zeros(2), np.ones(3)], 3)
    with pytest.raises(ValueError, match="at least 1"):
        interpolate.frame_count(2, 0, False)


# ---------------------------------------------------------------- writers


def test_mp4_has_the_frames_size_and_quality(tmp_path):
    frames = smooth_frames(12)
    path = tmp_path / "clip.mp4"
    with VideoWriter(path, fps=24, quality=8) as writer:
        for frame in frames:
            writer.append(frame)
    decoded = read_video(path)
    assert len(decoded) == 12
    assert decoded[0].shape == (48, 64, 3)
    assert min(psnr(a, b) for a, b in zip(frames, decoded)) >= 35


def test_mp4_keeps_odd_sizes_and_pads_them_by_one_pixel_for_yuv420p(tmp_path):
    frames = [frame[:45, :61] for frame in smooth_frames(3)]
    for pixel_format, expected in (("yuv444p", (45, 61, 3)), ("yuv420p", (46, 62, 3))):
        path = tmp_path / f"odd_{pixel_format}.mp4"
        with VideoWriter(path, fps=10, pixel_format=pixel_format) as writer:
            for frame in frames:
                writer.append(frame)
        decoded = read_video(path)
        assert decoded[0].shape == expected  # never rescaled (imageio's macro_block_size would)
        assert psnr(decoded[1][:45, :61], frames[1]) >= 35
    assert pad_to_even(frames[0]).shape == (46, 62, 3)


def test_gif_has_the_frames_and_size(tmp_path):
    frames = smooth_frames(5, 32, 40)
    path = tmp_path / "clip.gif"
    with VideoWriter(path, fps=20) as writer:
        for frame in frames:
            writer.append(frame)
    decoded = read_video(path)
    assert len(decoded) == 5
    assert decoded[2].shape == (32, 40, 3)
    assert psnr(decoded[2], frames[2]) >= 25  # a 256-colour palette, still clearly the same picture


def test_writer_refuses_mixed_sizes_and_bad_types(tmp_path):
    writer = VideoWriter(tmp_path / "x.gif", fps=10)
    writer.append(smooth_frames(1, 16, 16)[0])
    with pytest.raises(ValueError, match="differs"):
        writer.append(smooth_frames(1, 8, 16)[0])
    with pytest.raises(ValueError, match="uint8"):
        writer.append(np.zeros((16, 16, 3), dtype=np.float32))
    writer.abort()
    with pytest.raises(ValueError, match="unknown video type"):
        video_format("clip.avi")


@pytest.mark.parametrize("fps,quality,field", [
    (float("nan"), 8, "fps"), (0, 8, "fps"), (-5, 8, "fps"), (float("inf"), 8, "fps"), ("fast", 8, "fps"),
    (30, float("nan"), "quality"), (30, -3, "quality"), (30, 99, "quality"), (30, None, "quality"),
])
def test_writer_refuses_bad_fps_and_quality_naming_the_field(tmp_path, fps, quality, field):
    with pytest.raises(ValueError, match=f"^{field}: "):
        VideoWriter(tmp_path / "x.mp4", fps=fps, quality=quality)
    assert list(tmp_path.iterdir()) == []


def test_cli_video_refuses_bad_fps_and_quality_before_rendering(tmp_path, capsys, monkeypatch):
    import run_app
    from renderer import sequences

    def no_rendering(*args, **kwargs):
        raise AssertionError("rendered before checking the video settings")

    monkeypatch.setattr(sequences, "keyframe_request", no_rendering)
    monkeypatch.setattr(sequences, "sweep_requests", no_rendering)
    for flags, field in ((["--fps", "nan"], "fps"), (["--quality", "99"], "quality"), (["--quality", "nan"], "quality")):
        code = run_app.main(["video", "--seeds", "1,2", *flags, "--out", str(tmp_path / "v.mp4")])
        err = capsys.readouterr().err
        assert code == 1 and f"stylescope: {field}: " in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_30_fps_gif_plays_at_30_fps(tmp_path):
    # GIF delays are whole hundredths of a second: 3 cs each would play at 33.3 fps.
    from PIL import Image

    from renderer.video import gif_delays_cs

    frames = smooth_frames(30, 16, 16)
    path = tmp_path / "clip.gif"
    with VideoWriter(path, fps=30) as writer:
        for frame in frames:
            writer.append(frame)
    with Image.open(path) as gif:
        durations = []
        for index in range(gif.n_frames):
            gif.seek(index)
            durations.append(gif.info["duration"])
    assert len(durations) == 30 and sum(durations) == 1000, durations
    assert set(durations) == {30, 40}
    assert sum(gif_delays_cs(24, 24)) == 100 and sum(gif_delays_cs(12.5, 25)) == 200
