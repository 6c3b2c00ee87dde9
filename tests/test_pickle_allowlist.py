"""The allow-list stays auditable: every global maps to a stand-in of ours, and only the listed ones resolve."""

import functools
from collections import OrderedDict

import pytest
import torch

from models.errors import UnsafeFileError
from models.pickle_allowlist import NETWORK, STORAGE_BLOB
from models.pickle_machine import Marker
from models.safe_pickle import read_pickle


def _ours(value):
    """A function or class written in models/pickle_*.py, possibly bound by functools.partial."""
    if isinstance(value, functools.partial):
        value = value.func
    return getattr(value, "__module__", "").startswith("models.pickle_")


@pytest.mark.parametrize("allowed", [NETWORK, STORAGE_BLOB], ids=["network", "storage_blob"])
def test_every_global_maps_to_a_stand_in_of_ours_or_an_inert_value(allowed):
    for (module, name), value in allowed.globals.items():
        inert = isinstance(value, (Marker, torch.dtype)) or value is OrderedDict
        assert inert or _ours(value), f"{module}.{name} -> {value!r} is not one of our stand-ins"
    for kind, maker in allowed.creatable:
        assert kind is OrderedDict or isinstance(kind, Marker) or _ours(kind), kind
        assert maker is OrderedDict or _ours(maker), maker


def test_a_storage_blob_may_name_only_storage_types():
    assert {module for module, _ in STORAGE_BLOB.globals} == {"torch", "torch.storage"}
    assert all(isinstance(value, Marker) and name.endswith("Storage") for (_, name), value in STORAGE_BLOB.globals.items())


def test_each_listed_global_resolves_and_an_unlisted_neighbour_is_refused():
    for module, name in NETWORK.globals:
        data = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"]\x86."  # (global, []): a pair, not run
        assert read_pickle(data)[1] == []
    with pytest.raises(UnsafeFileError, match="refused global 'torch._utils._rebuild_device_tensor_from_numpy'"):
        read_pickle(b"\x80\x02ctorch._utils\n_rebuild_device_tensor_from_numpy\n]\x86.")


def test_python2_builtins_resolve_as_builtins_and_no_further():
    assert read_pickle(b"\x80\x02c__builtin__\nset\n]\x85R.") == set()
    with pytest.raises(UnsafeFileError, match="refused global 'builtins.eval'"):
        read_pickle(b"\x80\x02c__builtin__\neval\nX\x01\x00\x00\x001\x85R.")
