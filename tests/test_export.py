"""Exports: atomic writes, PNG metadata, grids and videos made through the real renderer."""

import errno
import hashlib
import os
import subprocess
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

from renderer import export
from renderer.export import ExportCancelled, ExportError, atomic_output
from renderer.request import RenderRequest

ROOT = Path(__file__).resolve().parent.parent


def leftovers(folder):
    """Everything in a folder (partial files are hidden dot-files, so list them all)."""
    return sorted(p.name for p in Path(folder).iterdir())


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 64 KiB tmpfs (a disk that fills up), or skip where mounting is not allowed."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)], capture_output=True)
    if result.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=False)


@pytest.fixture
def read_only_folder(tmp_path):
    """A read-only mounted folder: root ignores chmod, but not a read-only file system."""
    mount_point = tmp_path / "ro"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mount_point)], capture_output=True)
    if result.returncode != 0:
        if os.geteuid() != 0:
            mount_point.chmod(0o500)  # not root: plain permissions do the job
            yield mount_point
            mount_point.chmod(0o700)
            return
        pytest.skip("cannot mount a read-only tmpfs here")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=False)


# ---------------------------------------------------------------- atomic writing


def test_atomic_output_renames_at_the_end(tmp_path):
    target = tmp_path / "out.bin"
    with atomic_output(target) as temp_name:
        Path(temp_name).write_bytes(b"abc")
        assert Path(temp_name).parent == tmp_path  # same folder, so the rename is atomic
        assert not target.exists()
    assert target.read_bytes() == b"abc"
    assert leftovers(tmp_path) == ["out.bin"]
    assert target.stat().st_mode & 0o644 == 0o644  # not the temp file's private 0600


def test_atomic_output_keeps_the_old_file_when_a_write_fails(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as temp_name:
            Path(temp_name).write_bytes(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == ["out.bin"]


def test_simulated_full_disk_leaves_nothing_and_says_so(tmp_path):
    target = tmp_path / "out.mp4"
    with pytest.raises(ExportError, match="disk is full"):
        with atomic_output(target) as temp_name:
            Path(temp_name).write_bytes(b"x" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")
    assert leftovers(tmp_path) == []


def test_real_full_disk_leaves_nothing_and_says_so(tiny_tmpfs):
    frame = np.random.RandomState(0).randint(0, 256, (256, 256, 3), dtype=np.uint8)  # ~200 KB as PNG
    with pytest.raises(ExportError, match="disk is full") as caught:
        export.save_png(frame, RenderRequest(), tiny_tmpfs / "big.png")
    assert "\n" not in str(caught.value)
    assert leftovers(tiny_tmpfs) == []


def test_real_full_disk_during_a_video_leaves_nothing(tiny_tmpfs):
    rng = np.random.RandomState(1)
    frames = [rng.randint(0, 256, (128, 128, 3), dtype=np.uint8) for _ in range(30)]
    with pytest.raises(ExportError, match="disk is full"):
        export.write_video(frames, tiny_tmpfs / "v.mp4", fps=30, quality=10)
    assert leftovers(tiny_tmpfs) == []


def test_unwritable_folder_gives_one_clear_line(read_only_folder):
    with pytest.raises(ExportError, match="read-only|permission denied") as caught:
        export.save_png(np.zeros((8, 8, 3), np.uint8), RenderRequest(), read_only_folder / "x.png")
    assert "\n" not in str(caught.value)
    assert export.writable_or_error(read_only_folder / "x.png") is not None


def test_file_where_a_folder_is_expected(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("I am a file")
    with pytest.raises(ExportError, match="is not a folder"):
        export.save_png(np.zeros((8, 8, 3), np.uint8), RenderRequest(), blocker / "x.png")
    with pytest.raises(ExportError, match="does not exist"):
        export.save_png(np.zeros((8, 8, 3), np.uint8), RenderRequest(), tmp_path / "missing" / "x.png")
    assert export.writable_or_error(tmp_path / "fine.png") is None
    assert leftovers(tmp_path) == ["not_a_folder"]


# ---------------------------------------------------------------- PNG metadata, helpers


def test_png_carries_request_and_model(tmp_path):
    model = tmp_path / "net.pkl"
    model.write_bytes(b"weights")
    request = RenderRequest(pkl=str(model), seeds=7, truncation_psi=0.7, mix_seed=3, mix_layers="coarse")
    image = np.random.RandomState(2).randint(0, 256, (16, 24, 3), dtype=np.uint8)
    export.save_png(image, request, tmp_path / "f.png", model_path=model)
    meta = export.read_png_metadata(tmp_path / "f.png")
    assert meta.request() == request
    assert meta.model_name == "net.pkl"
    assert meta.model_sha256 == hashlib.sha256(b"weights").hexdigest()
    np.testing.assert_array_equal(export.read_png_image(tmp_path / "f.png"), image)


def test_png_without_metadata_is_refused(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "plain.png")
    with pytest.raises(ExportError, match="no StyleScope request"):
        export.read_png_metadata(tmp_path / "plain.png")


def test_tile_and_cut_grid():
    cells = [np.full((4, 5, 3), i * 10, np.uint8) for i in range(6)]
    grid = export.tile_images(cells, 2, 3, padding=1)
    assert grid.shape == (9, 17, 3)
    for index, cell in enumerate(cells):
        row, col = divmod(index, 3)
        np.testing.assert_array_equal(export.grid_cell(grid, row, col, 4, 5, padding=1), cell)
    with pytest.raises(ValueError, match="do not fit"):
        export.tile_images(cells, 1, 3)


def test_parsers():
    assert export.parse_seeds("0, 1,5-7") == [0, 1, 5, 6, 7]
    assert export.parse_grid_shape("2x3") == (2, 3)
    with pytest.raises(ValueError):
        export.parse_grid_shape("2by3")
