"""load_generator dispatches every file kind by structure, fails with one clear line, and round-trips safetensors."""

import json
import pickle

import numpy as np
import pytest
import torch

from models.errors import LoadError
from models.loader import load_generator, save_safetensors


def _z(seed, z_dim):
    return torch.from_numpy(np.random.RandomState(seed).randn(1, z_dim).astype(np.float32))


def _assert_one_line_naming(err, path):
    message = str(err.value)
    assert "\n" not in message and path.name in message, message


# ----------------------------------------------------------------------------
# Dispatch.


@pytest.mark.parametrize("name,file_format,architecture,module", [
    ("sg2ada_64", "stylegan2-ada-pytorch", "stylegan2", None),
    ("sg3_sg2_64", "stylegan3", "stylegan2", None),
    ("tf_sg2_64", "tf-stylegan2", "stylegan2", None),
    ("sg3_t_64", "stylegan3", "stylegan3-t", "models.stylegan3"),
    ("sg1_64", "tf-stylegan", "stylegan", "models.stylegan1"),
])
def test_each_file_kind_loads_as_its_family(fixtures_dir, name, file_format, architecture, module):
    if module is not None:
        pytest.importorskip(module)
    G = load_generator(fixtures_dir / f"{name}.pkl")
    assert G.info["format"] == file_format
    assert G.architecture == architecture == G.info["architecture"]
    assert not G.training
    assert not any(p.requires_grad for p in G.parameters())
    assert all(t.device.type == "cpu" for t in G.state_dict().values())
    json.dumps(G.info)


@torch.no_grad()
@pytest.mark.parametrize("name", ["sg2ada_64", "sg3_sg2_64", "tf_sg2_64"])
def test_key_G_loads_the_training_generator(fixtures_dir, name):
    ref = np.load(fixtures_dir / f"{name}_ref.npz")
    G = load_generator(fixtures_dir / f"{name}.pkl", key="G")
    img = G(_z(0, G.z_dim), None, noise_mode="const").numpy()
    assert np.abs(img - ref["img_G_nonema_seed0_psi1p0_const"]).max() < 1e-4
    assert np.abs(img - ref["img_seed0_psi1p0_const"]).max() > 1e-3  # G really differs from G_ema


def test_dispatch_ignores_module_source_text(fixtures_dir):
    """A StyleGAN2 tree whose module_src claims StyleGAN3 still builds as StyleGAN2 (structure decides)."""
    from models.loader import _from_network
    from models.safe_pickle import read_pickle

    net = read_pickle(fixtures_dir / "sg2ada_64.pkl")["G_ema"]
    net.module_src = "# networks_stylegan3.py: class SynthesisInput"
    G, file_format = _from_network(net)
    assert G.architecture == "stylegan2" and file_format == "stylegan2-ada-pytorch"


def test_reference_flag_is_accepted(fixtures_dir):
    G = load_generator(fixtures_dir / "sg2ada_64.pkl", reference=True)
    assert G.architecture == "stylegan2"


# ----------------------------------------------------------------------------
# Our safetensors format.


@torch.no_grad()
@pytest.mark.parametrize("name", ["sg2ada_64", "tf_sg2_64"])
def test_safetensors_round_trip_gives_identical_output(fixtures_dir, tmp_path, name):
    from safetensors import safe_open

    original = load_generator(fixtures_dir / f"{name}.pkl")
    out = tmp_path / "G.safetensors"
    save_safetensors(original, out, extra_metadata={"note": "hello", "numbers": [1, 2]})
    assert [p.name for p in tmp_path.iterdir()] == ["G.safetensors"]  # no temp file left behind

    loaded = load_generator(out)
    assert loaded.info["format"] == "stylescope-safetensors"
    assert loaded.info["source_format"] == original.info["format"]
    assert loaded.info["init_kwargs"] == original.info["init_kwargs"]
    z = _z(7, original.z_dim)
    for kwargs in (dict(noise_mode="const"), dict(noise_mode="none", truncation_psi=0.7)):
        assert torch.equal(original(z, None, **kwargs), loaded(z, None, **kwargs))

    with safe_open(str(out), framework="pt") as f:
        metadata = f.metadata()
    assert metadata["note"] == "hello" and json.loads(metadata["numbers"]) == [1, 2]
    assert json.loads(metadata["stylescope"])["family"] == "stylegan2"
    raw = out.read_bytes()
    assert b"\x80\x04" not in raw[:8 + int.from_bytes(raw[:8], "little")]  # a JSON header, no pickle


def test_failed_save_leaves_the_old_file_and_no_temp_file(fixtures_dir, tmp_path, monkeypatch):
    import safetensors.torch

    G = load_generator(fixtures_dir / "sg2ada_64.pkl")
    out = tmp_path / "G.safetensors"
    out.write_bytes(b"previous contents")

    def broken_save(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken_save)
    with pytest.raises(OSError):
        save_safetensors(G, out)
    assert out.read_bytes() == b"previous contents"
    assert [p.name for p in tmp_path.iterdir()] == ["G.safetensors"]


def _resave(G, path, drop=None, reshape=None, config_edit=None):
    """Write G's tensors with the loader's metadata, but broken in one chosen way."""
    from safetensors.torch import save_file

    save_safetensors(G, path)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if drop:
        del tensors[drop]
    if reshape:
        tensors[reshape] = torch.zeros(3, 3)
    if config_edit:
        config = json.loads(metadata["stylescope"])
        config_edit(config)
        metadata["stylescope"] = json.dumps(config)
    save_file(tensors, str(path), metadata=metadata)


@pytest.fixture(scope="module")
def small_G(fixtures_dir):
    return load_generator(fixtures_dir / "sg2ada_64.pkl")


def test_safetensors_missing_key_is_a_clear_error(small_G, tmp_path):
    path = tmp_path / "missing.safetensors"
    _resave(small_G, path, drop="synthesis.b16.conv1.weight")
    with pytest.raises(LoadError, match="missing key 'synthesis.b16.conv1.weight'") as err:
        load_generator(path)
    _assert_one_line_naming(err, path)


def test_safetensors_wrong_shape_is_a_clear_error(small_G, tmp_path):
    path = tmp_path / "shape.safetensors"
    _resave(small_G, path, reshape="synthesis.b8.conv0.bias")
    with pytest.raises(LoadError, match="wrong shape for 'synthesis.b8.conv0.bias'") as err:
        load_generator(path)
    _assert_one_line_naming(err, path)


def test_safetensors_unsupported_architecture_is_a_clear_error(small_G, tmp_path):
    path = tmp_path / "arch.safetensors"
    _resave(small_G, path, config_edit=lambda c: c["init_kwargs"]["synthesis_kwargs"].update(architecture="fancy"))
    with pytest.raises(LoadError, match="architecture 'fancy'") as err:
        load_generator(path)
    _assert_one_line_naming(err, path)


def test_safetensors_unknown_family_is_a_clear_error(small_G, tmp_path):
    path = tmp_path / "family.safetensors"
    _resave(small_G, path, config_edit=lambda c: c.update(family="biggan"))
    with pytest.raises(LoadError, match="biggan") as err:
        load_generator(path)
    _assert_one_line_naming(err, path)


def test_garbage_safetensors_is_a_clear_error(tmp_path):
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(b"\xff" * 100)
    with pytest.raises(LoadError) as err:
        load_generator(path)
    _assert_one_line_naming(err, path)


# ----------------------------------------------------------------------------
# Pickles that hold no usable generator.


def test_missing_file_is_a_clear_error(tmp_path):
    path = tmp_path / "nope.pkl"
    with pytest.raises(LoadError) as err:
        load_generator(path)
    _assert_one_line_naming(err, path)


def test_truncated_pickle_is_a_clear_error(fixtures_dir, tmp_path):
    path = tmp_path / "truncated.pkl"
    path.write_bytes((fixtures_dir / "sg2ada_64.pkl").read_bytes()[:50000])
    with pytest.raises(LoadError) as err:
        load_generator(path)
    _assert_one_line_naming(err, path)


def test_snapshot_without_generator_is_a_clear_error(tmp_path):
    path = tmp_path / "nogen.pkl"
    path.write_bytes(pickle.dumps({"training_set_kwargs": {"resolution": 64}, "augment_pipe": None}, protocol=4))
    with pytest.raises(LoadError, match="no generator in this snapshot") as err:
        load_generator(path)
    _assert_one_line_naming(err, path)


def test_asking_for_the_discriminator_is_a_clear_error(fixtures_dir):
    with pytest.raises(LoadError, match="expected a Generator, found Discriminator") as err:
        load_generator(fixtures_dir / "sg2ada_64.pkl", key="D")
    _assert_one_line_naming(err, fixtures_dir / "sg2ada_64.pkl")


def test_unknown_key_is_a_clear_error(fixtures_dir):
    with pytest.raises(LoadError, match="no 'G_old'") as err:
        load_generator(fixtures_dir / "tf_sg2_64.pkl", key="G_old")
    _assert_one_line_naming(err, fixtures_dir / "tf_sg2_64.pkl")


def _edited_snapshot(fixtures_dir, tmp_path, edit):
    """sg2ada_64's G_ema tree with one edit, checked through the loader's own dispatch."""
    from models.loader import _from_network
    from models.safe_pickle import read_pickle

    net = read_pickle(fixtures_dir / "sg2ada_64.pkl")["G_ema"]
    edit(net)
    return lambda: _from_network(net)


def test_pickle_with_wrong_shape_names_the_key(fixtures_dir, tmp_path):
    def shrink(net):
        b8 = net.submodules()["synthesis"].submodules()["b8"]
        b8.submodules()["conv1"].state["_parameters"]["bias"] = torch.zeros(3)

    with pytest.raises(LoadError, match="wrong shape for 'synthesis.b8.conv1.bias'"):
        _edited_snapshot(fixtures_dir, tmp_path, shrink)()


def test_pickle_with_unsupported_architecture_says_so(fixtures_dir, tmp_path):
    def fancy(net):
        net.init_kwargs["synthesis_kwargs"]["architecture"] = "fancy"

    with pytest.raises(LoadError, match="architecture 'fancy'"):
        _edited_snapshot(fixtures_dir, tmp_path, fancy)()


# ----------------------------------------------------------------------------
# Saving where the disk or the folder says no: one line naming the target, nothing left behind.


def test_save_on_a_full_disk_is_one_line_naming_the_target(fixtures_dir, tiny_tmpfs):
    G = load_generator(fixtures_dir / "sg2ada_64.pkl", reference=True)
    out = tiny_tmpfs / "G.safetensors"
    with pytest.raises(OSError) as err:
        save_safetensors(G, out)
    _assert_one_line_naming(err, out)
    assert "disk is full" in str(err.value) and ".tmp" not in str(err.value) and ".partial" not in str(err.value)
    assert list(tiny_tmpfs.iterdir()) == []


def test_save_into_a_read_only_folder_names_the_target(small_G, read_only_folder):
    out = read_only_folder / "G.safetensors"
    with pytest.raises(OSError) as err:
        save_safetensors(small_G, out)
    _assert_one_line_naming(err, out)
    assert "read-only" in str(err.value) and ".partial" not in str(err.value)


def test_save_onto_a_folder_or_into_a_missing_one_names_the_target(small_G, tmp_path):
    with pytest.raises(OSError) as err:
        save_safetensors(small_G, tmp_path)
    assert str(err.value) == f"cannot write {tmp_path}: it is a folder"
    missing = tmp_path / "nowhere" / "G.safetensors"
    with pytest.raises(OSError) as err:
        save_safetensors(small_G, missing)
    assert "does not exist" in str(err.value) and missing.name in str(err.value)
    assert list(tmp_path.iterdir()) == []
