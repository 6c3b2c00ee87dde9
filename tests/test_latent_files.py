"""models/latent_files.py: a w from .npy/.npz, one clean line for a bad file."""

import numpy as np
import pytest

from models.latent_files import read_w


def test_read_w_takes_a_npy_and_the_w_of_a_npz(tmp_path):
    w = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    np.save(tmp_path / "w.npy", w)
    np.savez(tmp_path / "projected_w.npz", w=w, other=np.zeros(2))
    assert np.array_equal(read_w(tmp_path / "w.npy"), w)
    assert np.array_equal(read_w(tmp_path / "projected_w.npz"), w)


@pytest.mark.parametrize("name, make, words", [
    ("z.npz", lambda p: np.savez(p, z=np.zeros(4)), "no array named 'w' (found z)"),
    ("objects.npy", lambda p: np.save(p, np.array([{"w": 1}], dtype=object), allow_pickle=True), "never loaded"),
    ("text.npy", lambda p: p.write_text("not an array"), "not a .npy/.npz array file"),
    ("missing.npy", lambda p: None, "not a readable numpy array file"),
])
def test_read_w_refuses_a_bad_file_in_one_line_naming_it(tmp_path, name, make, words):
    path = tmp_path / name
    make(path)
    with pytest.raises(ValueError) as caught:
        read_w(path)
    message = str(caught.value)
    assert str(path) in message and words in message and "\n" not in message
