"""Shared pytest fixtures: where the reference networks live, and the window tests' virtual screen."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FIXTURES = Path(os.environ.get("STYLESCOPE_FIXTURES", ROOT.parent / "shared" / "fixtures"))


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The test networks are tiny: one thread is as fast, and far faster on a busy shared machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def numba_loops_on_small_networks():
    """The app keeps small StyleGAN2 tensors on torch passes (no compile wait for the default
    model) and small convolutions direct; the test networks are small, and the loops and
    Winograd's convolutions must be what they test."""
    from models import fast_stylegan2, winograd

    before = fast_stylegan2.FUSED_MIN_VALUES, winograd.MIN_CHANNELS, winograd.MIN_PIXELS
    fast_stylegan2.FUSED_MIN_VALUES = winograd.MIN_CHANNELS = winograd.MIN_PIXELS = 0
    yield
    fast_stylegan2.FUSED_MIN_VALUES, winograd.MIN_CHANNELS, winograd.MIN_PIXELS = before


@pytest.fixture(scope="session")
def fixtures_dir():
    if not FIXTURES.is_dir():
        pytest.skip(f"fixtures not found at {FIXTURES}")
    return FIXTURES


def _mount_tmpfs(mount_point, options):
    """Mount a small tmpfs; False where mounting is not allowed (not root, no mount)."""
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)], capture_output=True)
    return result.returncode == 0


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 64 KiB tmpfs (a disk that fills up), or skip where mounting is not allowed."""
    mount_point = tmp_path / "tiny"
    if not _mount_tmpfs(mount_point, "size=64k"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=False)


@pytest.fixture
def read_only_folder(tmp_path):
    """A read-only folder: root ignores chmod, so as root a read-only mounted tmpfs."""
    mount_point = tmp_path / "ro"
    if not _mount_tmpfs(mount_point, "ro,size=64k"):
        if os.geteuid() != 0:
            mount_point.chmod(0o500)  # not root: plain permissions do the job
            yield mount_point
            mount_point.chmod(0o700)
            return
        pytest.skip("cannot mount a read-only tmpfs here")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=False)


@pytest.fixture
def net_file(tmp_path):
    """A file path for tests whose Renderer loads an in-process network (the contents are ignored)."""
    path = tmp_path / "net.pkl"
    path.write_bytes(b"in-process network")
    return str(path)


@pytest.fixture(scope="module")
def screen():
    """An Xvfb screen of its own for a module's window tests (tests/gui_driver.py)."""
    from gui_driver import VirtualScreen

    screen = VirtualScreen()
    yield screen
    screen.close()
