"""Safe loading: fixtures read as inert data; hostile files refused with nothing run; broken files give one line."""

import io
import json
import pickle
import pickletools
import random
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

import hostile
from models.errors import LoadError, UnsafeFileError
from models.pickle_nvidia import PersistentObject, TFNetwork
from models.safe_pickle import read_pickle

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = ["sg2ada_64", "sg3_sg2_64", "sg3_t_64"]
TF_FILES = ["tf_sg2_64", "sg1_64"]


@pytest.fixture(scope="module")
def trees(fixtures_dir):
    """Each fixture read once (reading is the slow part of these tests)."""
    return {name: read_pickle(fixtures_dir / f"{name}.pkl") for name in SNAPSHOTS + TF_FILES}


def manifest(fixtures_dir, name):
    return json.loads((fixtures_dir / f"{name}_manifest.json").read_text())


def assert_one_line_about(error, name):
    message = str(error.value)
    assert message.isprintable()  # no newlines, no escape codes from names in the file
    assert message.startswith(f"{name}: ") and len(message) > len(name) + 4


# ---------------------------------------------------------------------------------------
# The fixtures


@pytest.mark.parametrize("name", SNAPSHOTS)
def test_snapshot_matches_manifest(trees, fixtures_dir, name):
    tree, info = trees[name], manifest(fixtures_dir, name)
    assert type(tree) is dict and list(tree) == info["top_level_keys"]
    for key, entry in info["entries"].items():
        if "state_dict_shapes" not in entry:
            assert tree[key] == entry["value"]
            continue
        network = tree[key]
        assert isinstance(network, PersistentObject) and network.class_name == entry["class_name"]
        state_dict = network.state_dict()
        shapes = {k: list(v.shape) for k, v in state_dict.items()}
        assert list(shapes) == list(entry["state_dict_shapes"])  # same keys, same order
        assert shapes == entry["state_dict_shapes"]
        assert all(type(t) is torch.Tensor and t.dtype == torch.float32 for t in state_dict.values())
        assert network.init_kwargs == entry["init_kwargs"]
        assert list(network.init_args) == entry["init_args"]
        # EasyDicts come back as plain dicts, never as anything with behaviour.
        assert all(type(v) is dict for v in network.init_kwargs.values() if isinstance(v, dict))


@pytest.mark.parametrize("name", SNAPSHOTS)
def test_snapshot_module_tree_and_source_text(trees, fixtures_dir, name):
    entry = manifest(fixtures_dir, name)["entries"]["G_ema"]
    found = {}

    def walk(prefix, module):
        found[prefix or "<root>"] = module.class_name
        for child_name, child in module.submodules().items():
            walk(f"{prefix}.{child_name}" if prefix else child_name, child)

    walk("", trees[name]["G_ema"])
    assert found == entry["module_tree"]
    assert trees[name]["G_ema"].module_src.startswith("# source omitted")


@pytest.mark.parametrize("name", SNAPSHOTS)
def test_w_avg_values_match_reference_truncation(trees, fixtures_dir, name):
    # ws(psi) = w_avg + psi * (ws(1) - w_avg), so the reference ws give w_avg exactly:
    # a check on the bytes decoded from a storage blob, not only on shapes.
    ref = np.load(fixtures_dir / f"{name}_ref.npz")
    w_avg = trees[name]["G_ema"].state_dict()["mapping.w_avg"].numpy()
    ws1, ws07 = ref["ws_seed0_psi1p0"][0, 0], ref["ws_seed0_psi0p7"][0, 0]
    np.testing.assert_allclose((ws07 - 0.7 * ws1) / 0.3, w_avg, atol=2e-4)
    assert np.abs(w_avg).max() > 0.05  # perturbed away from zero, so the check means something


def test_resample_filters_are_normalized_1331(trees):
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    expected = torch.outer(taps, taps) / 64
    filters = {k: v for k, v in trees["sg2ada_64"]["G_ema"].state_dict().items()
               if k.endswith("resample_filter")}
    assert len(filters) >= 5
    for key, value in filters.items():
        assert torch.equal(value, expected), key


def test_sg3_numpy_state_and_non_persistent_buffers(trees):
    generator = trees["sg3_t_64"]["G_ema"]
    synthesis = generator.submodules()["synthesis"]
    layer = next(m for m in synthesis.submodules().values() if m.class_name == "SynthesisLayer")
    assert isinstance(layer.state["in_size"], np.ndarray) and layer.state["in_size"].dtype.kind == "i"
    assert isinstance(layer.init_kwargs["use_fp16"], (bool, np.bool_))
    # The last layer has None filters in _buffers: skipped, as torch's state_dict skips them.
    keys = generator.state_dict()
    assert not any(v is None for v in keys.values())


@pytest.mark.parametrize("name", TF_FILES)
def test_tf_pickle_is_three_networks(trees, name):
    networks = trees[name]
    assert isinstance(networks, tuple) and [n.name for n in networks] == ["G", "D", "Gs"]
    gs = networks[2]
    assert isinstance(gs, TFNetwork) and list(gs.components) == ["synthesis", "mapping"]
    assert all(isinstance(c, TFNetwork) for c in gs.components.values())
    lod = gs.variables["lod"]
    assert isinstance(lod, np.ndarray) and lod.shape == () and lod.dtype == np.float32
    assert gs.build_module_src.startswith("# source omitted")
    assert networks[0].components["synthesis"] is not gs.components["synthesis"]


def test_tf_sg2_variables_match_manifest(trees, fixtures_dir):
    def check(network, entry):
        listed = [(name, list(value.shape), str(value.dtype)) for name, value in network.variables.items()]
        assert listed == [(name, shape, dtype) for name, shape, _, dtype in entry["variables"]]
        assert network.static_kwargs == entry["static_kwargs"]
        assert network.build_func_name == entry["build_func_name"]
        for key, child in entry["components"].items():
            check(network.components[key], child)

    for network, entry in zip(trees["tf_sg2_64"], manifest(fixtures_dir, "tf_sg2_64")["entries"]):
        check(network, entry)


def test_sg1_variables_match_listing_and_reference(trees, fixtures_dir):
    rows = [line.split("\t") for line in (fixtures_dir / "sg1_64_vars.tsv").read_text().splitlines()[1:]]
    by_net = {"G": trees["sg1_64"][0], "D": trees["sg1_64"][1], "Gs": trees["sg1_64"][2]}
    for net_name, var_name, shape in rows:
        network = by_net[net_name]
        head, _, rest = var_name.partition("/")
        component = next((c for c in network.components.values() if c.name == head), None)
        value = component.variables[rest] if component is not None else network.variables[var_name]
        expected = () if shape == "scalar" else tuple(int(n) for n in shape.split("x"))
        assert value.shape == expected, (net_name, var_name)
    # Truncation (psi 0.7, cutoff 8) gives dlatent_avg back from the reference dlatents.
    ref = np.load(fixtures_dir / "sg1_64_ref.npz")
    avg = (ref["dlatents_psi07"][0, 0] - 0.7 * ref["dlatents"][0, 0]) / 0.3
    np.testing.assert_allclose(avg, by_net["Gs"].variables["dlatent_avg"], atol=2e-4)


def test_bytes_and_file_objects_read_like_paths(fixtures_dir):
    data = (fixtures_dir / "sg3_t_64.pkl").read_bytes()
    from_bytes = read_pickle(data, name="x.pkl")
    with open(fixtures_dir / "sg3_t_64.pkl", "rb") as stream:
        from_stream = read_pickle(stream)
    a, b = from_bytes["G_ema"].state_dict(), from_stream["G_ema"].state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------------
# Other allowed shapes of data: torch checkpoints, numpy under several protocols


def checkpoint_payload():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    base = torch.arange(12.0)
    return {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "halves": torch.linspace(-1, 1, 7, dtype=torch.bfloat16),
        "shared": [base, base[2:8].view(2, 3)], "flags": torch.tensor([True, False]),
        "device": torch.device("cpu"), "dtype": torch.float16, "size": torch.Size([2, 3]),
        "numbers": {"step": 10, "set": {1, 2}, "fs": frozenset({3}), "c": complex(1, 2)},
    }


def assert_same(a, b):
    if isinstance(a, torch.Tensor):
        assert type(b) is torch.Tensor and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b and type(a) is type(b)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_torch_checkpoint_round_trip(tmp_path, zip_format):
    payload = checkpoint_payload()
    path = tmp_path / "checkpoint.pt"
    torch.save(payload, path, _use_new_zipfile_serialization=zip_format)
    loaded = read_pickle(path)
    assert_same(payload, loaded)
    assert loaded["model"]._metadata == payload["model"]._metadata
    shared = loaded["shared"]
    shared[0][3] = 99.0  # one storage, two views, as torch.load gives
    assert shared[1][0, 1] == 99.0


def test_storage_blob_in_zip_format_is_read_too():
    # torch.storage._load_from_bytes hands its bytes to torch.load, which takes zips as well.
    blob = io.BytesIO()
    torch.save(torch.arange(4.0).untyped_storage(), blob)
    storage = hostile.Call(hostile.Ref("torch.storage", "_load_from_bytes"), blob.getvalue())
    record = hostile.Call(hostile.Ref("torch._utils", "_rebuild_tensor_v2"), storage, 1, (2,), (1,),
                          False, OrderedDict())
    loaded = read_pickle(hostile.dumps(record))
    assert loaded.dtype == torch.uint8 and loaded.tolist() == [0, 0]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_values_under_each_protocol(protocol):
    values = {"f4": np.arange(6, dtype=np.float32).reshape(2, 3), "fortran": np.asfortranarray(
        np.arange(6.0).reshape(2, 3)), "bool": np.bool_(True), "f8": np.float64(0.25),
        "big_endian": np.arange(3, dtype=">i4"), "empty": np.zeros((0, 2), np.int16)}
    data = pickle.dumps(values, protocol=protocol)
    loaded, trusted = read_pickle(data), pickle.loads(data)  # our own bytes: safe to compare
    for key, value in values.items():
        assert np.array_equal(loaded[key], value), key
        assert loaded[key].dtype == trusted[key].dtype and type(loaded[key]) is type(value), key


# ---------------------------------------------------------------------------------------
# Hostile files


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "MARKER_ran"
    yield path
    assert not path.exists(), "something in a hostile file was executed"


HOSTILE = sorted(hostile.hostile_files(Path("/nonexistent/marker")))


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_file_is_refused_and_nothing_runs(tmp_path, marker, case):
    files = hostile.write_hostile_files(tmp_path, marker)
    path, expected = files[case]
    with pytest.raises(UnsafeFileError) as error:
        read_pickle(path)
    assert_one_line_about(error, path.name)
    assert expected in str(error.value)
    assert not marker.exists()


@pytest.mark.parametrize("case", ["os_system", "builtins_exec", "builtins_eval", "getattr_chain",
                                  "getattr_from_allowed", "subprocess_check_call",
                                  "os_system_proto0"])
def test_hostile_files_really_run_code_under_plain_pickle(tmp_path, case):
    # Checks the test files themselves: an unrestricted unpickler does run them.
    ran = tmp_path / "plain_pickle_ran"
    data, _ = hostile.hostile_files(ran)[case]
    pickle.loads(data)
    assert ran.exists()


def test_refusal_names_the_global(tmp_path, marker):
    path, _ = hostile.write_hostile_files(tmp_path, marker)["os_system"]
    with pytest.raises(UnsafeFileError, match=r"^os_system\.pkl: refused global 'os\.system'"):
        read_pickle(path)


def test_persistent_module_source_is_data_not_code(tmp_path, marker):
    network = hostile.small_network(module_src=hostile.python_that_touches(marker))
    tree = read_pickle(hostile.dumps({"G_ema": network}))
    generator = tree["G_ema"]
    assert generator.module_src == hostile.python_that_touches(marker)
    assert generator.class_name == "Generator"
    assert list(generator.state_dict()) == ["w_avg", "fc.weight"]
    assert torch.equal(generator.state_dict()["fc.weight"], torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert generator.init_kwargs == {"z_dim": 4, "mapping_kwargs": {"num_layers": 2}}
    assert type(generator.init_kwargs["mapping_kwargs"]) is dict
    assert not marker.exists()


def test_tf_build_module_source_is_data_not_code(marker):
    networks = read_pickle(hostile.dumps((hostile.tf_network(hostile.python_that_touches(marker)),)))
    assert isinstance(networks[0], TFNetwork)
    assert networks[0].build_module_src == hostile.python_that_touches(marker)
    assert networks[0].variables["lod"] == np.float32(1.0)
    assert not marker.exists()


def test_state_dict_refuses_a_module_that_contains_itself():
    module = PersistentObject("Generator", "", {"_parameters": {}, "_buffers": {}, "_modules": {}})
    module.state["_modules"]["again"] = module
    with pytest.raises(LoadError, match="loops back"):
        module.state_dict()


# ---------------------------------------------------------------------------------------
# Broken files


@pytest.fixture(scope="module")
def broken(fixtures_dir):
    return hostile.broken_files((fixtures_dir / "sg2ada_64.pkl").read_bytes())


BROKEN = ["empty", "random_bytes", "random_bytes_after_proto", "text", "json", "pickle_of_int",
          "pickle_of_none", "zip_without_data_pkl", "truncated_zip", "absurd_storage_numel",
          "storage_count_mismatch", "tensor_past_storage", "tensor_expanded_view",
          "absurd_bytearray8", "zip_bomb", "tf_network_without_state", "persistent_unknown_type", "truncated_1", "truncated_2", "truncated_100",
          "truncated_third", "truncated_half", "truncated_last_byte"]


def broken_file(broken, case):
    return broken[case]


@pytest.mark.parametrize("case", BROKEN)
def test_broken_file_gives_one_line_load_error(tmp_path, broken, case):
    path = tmp_path / f"{case}.pkl"
    path.write_bytes(broken_file(broken, case))
    with pytest.raises(LoadError) as error:
        read_pickle(path)
    assert_one_line_about(error, path.name)


@pytest.mark.parametrize("case,expected", [("empty", "empty file"), ("text", "text file"),
                                           ("json", "JSON"), ("pickle_of_int", "single int"),
                                           ("truncated_half", "truncated"),
                                           ("absurd_storage_numel", "larger than"),
                                           ("absurd_bytearray8", "larger than"),
                                           ("zip_bomb", "absurd size"),
                                           ("tf_network_without_state", "never gets its state")])
def test_broken_file_messages_say_what_is_wrong(tmp_path, broken, case, expected):
    path = tmp_path / f"{case}.pkl"
    path.write_bytes(broken_file(broken, case))
    with pytest.raises(LoadError, match=expected):
        read_pickle(path)


def test_corrupted_opcodes_give_load_error_or_data(fixtures_dir):
    # Random damage to the pickle's opcodes (not its raw data): whatever happens, only a
    # LoadError leaves read_pickle.
    data = (fixtures_dir / "tf_sg2_64.pkl").read_bytes()
    positions = [pos for _, _, pos in pickletools.genops(data)]
    rng = random.Random(7)
    failures = 0
    for _ in range(80):
        damaged = bytearray(data)
        for _ in range(rng.choice([1, 2, 3])):
            damaged[rng.choice(positions) + rng.randrange(3)] = rng.randrange(256)
        try:
            read_pickle(bytes(damaged), name="damaged.pkl")
        except LoadError as error:
            assert str(error).startswith("damaged.pkl: ") and "\n" not in str(error)
            failures += 1
    assert failures > 20  # the damage really broke most files


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(LoadError, match="^nope.pkl: cannot read"):
        read_pickle(tmp_path / "nope.pkl")
    with pytest.raises(LoadError):
        read_pickle(tmp_path)


# ---------------------------------------------------------------------------------------
# The same files through load_generator and the command line


def test_load_generator_refuses_hostile_files(tmp_path, marker):
    loader = pytest.importorskip("models.loader")
    for name, (path, _) in hostile.write_hostile_files(tmp_path, marker).items():
        with pytest.raises(UnsafeFileError) as error:
            loader.load_generator(path)
        assert "\n" not in str(error.value), name
    assert not marker.exists()


def test_load_generator_rejects_broken_files(tmp_path, broken):
    loader = pytest.importorskip("models.loader")
    for case in BROKEN:
        path = tmp_path / f"{case}.pkl"
        path.write_bytes(broken_file(broken, case))
        with pytest.raises(LoadError) as error:
            loader.load_generator(path)
        assert "\n" not in str(error.value), case


# Each case starts a Python with torch (seconds), so only a few representative files.
@pytest.mark.parametrize("case", ["os_system", "zip_gadget", "truncated_half"])
def test_cli_info_refuses_with_one_line(tmp_path, marker, broken, case):
    if not (ROOT / "run_app.py").exists():
        pytest.skip("run_app.py not written yet")
    files = hostile.write_hostile_files(tmp_path, marker)
    if case in files:
        path = files[case][0]
    else:
        path = tmp_path / f"{case}.pkl"
        path.write_bytes(broken_file(broken, case))
    result = subprocess.run([sys.executable, str(ROOT / "run_app.py"), "info", "--pkl", str(path)],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and path.name in lines[0], result.stderr
    assert not marker.exists()
