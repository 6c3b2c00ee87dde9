"""The allow-list: every global a network file may name, what stands in for it, and why; nothing else resolves."""

# A global not listed here is refused (UnsafeFileError naming it). Each stand-in only builds
# data and checks its arguments; markers are inert names that other stand-ins compare against.
# Python 2 files name builtins '__builtin__'; the machine reads that as 'builtins'.
# Besides globals, a file may only: create (NEWOBJ, no arguments) the classes in `creatable`,
# and set state (BUILD) on the objects in `finishers` and `state_setters`.

from collections import OrderedDict
from functools import partial

import torch

from models import pickle_numpy, pickle_nvidia, pickle_stdlib, pickle_storages
from models.pickle_machine import AllowList, Finisher

_TORCH_DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16",
                 "int8", "uint8", "bool", "complex64", "complex128")

# Inside an NVIDIA pickle each storage is its own little torch.save blob: it may name only
# storage types (torch.FloatStorage & co: markers saying which dtype its raw bytes hold).
STORAGE_BLOB = AllowList(globals={
    **{("torch", name): kind for name, kind in pickle_storages.STORAGE_TYPES.items()},
    ("torch.storage", "UntypedStorage"): pickle_storages.STORAGE_TYPES["UntypedStorage"],
})

NETWORK = AllowList(
    globals={
        **STORAGE_BLOB.globals,
        # torch: dtypes are plain values; Size and device are checked; the rebuilders make
        # checked views of storages the file holds (no hooks, no subclasses).
        **{("torch", name): getattr(torch, name) for name in _TORCH_DTYPES},
        ("torch", "Size"): pickle_storages.make_size,
        ("torch", "device"): pickle_storages.make_device,
        ("torch", "Tensor"): pickle_storages.TENSOR_TYPE,
        ("torch.nn.parameter", "Parameter"): pickle_storages.PARAMETER_TYPE,
        ("torch._utils", "_rebuild_tensor"): pickle_storages.rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): pickle_storages.rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): pickle_storages.rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): pickle_storages.rebuild_parameter_with_state,
        ("torch._tensor", "_rebuild_from_type_v2"): pickle_storages.rebuild_from_type_v2,
        ("torch.storage", "_load_from_bytes"): partial(pickle_storages.load_storage_blob, STORAGE_BLOB),
        # numpy (NVIDIA's TF pickles, w_avg & co): plain numeric arrays, scalars and dtypes;
        # numpy moved its core to numpy._core in 2.0, so files name either path.
        ("numpy", "ndarray"): pickle_numpy.NDARRAY,
        ("numpy", "dtype"): pickle_numpy.new_numpy_dtype,
        ("numpy.core.multiarray", "_reconstruct"): pickle_numpy.reconstruct_ndarray,
        ("numpy._core.multiarray", "_reconstruct"): pickle_numpy.reconstruct_ndarray,
        ("numpy.core.multiarray", "scalar"): pickle_numpy.numpy_scalar,
        ("numpy._core.multiarray", "scalar"): pickle_numpy.numpy_scalar,
        ("numpy.core.numeric", "_frombuffer"): pickle_numpy.numpy_frombuffer,
        ("numpy._core.numeric", "_frombuffer"): pickle_numpy.numpy_frombuffer,
        # NVIDIA's records: persistent modules as data (source kept as text), kwargs dicts,
        # TF networks (a marker; NEWOBJ below makes one, its BUILD fills it).
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): pickle_nvidia.reconstruct_persistent_obj,
        ("dnnlib.util", "EasyDict"): pickle_nvidia.EasyDict,
        ("dnnlib.tflib.network", "Network"): pickle_nvidia.TF_NETWORK,
        # The standard library: containers and values that checkpoints hold.
        ("collections", "OrderedDict"): OrderedDict,
        ("argparse", "Namespace"): pickle_stdlib.Namespace,  # rosinality's saved training args
        ("builtins", "set"): pickle_stdlib.make_set,
        ("builtins", "frozenset"): pickle_stdlib.make_frozenset,
        ("builtins", "slice"): pickle_stdlib.make_slice,
        ("builtins", "complex"): pickle_stdlib.make_complex,
        ("builtins", "bytes"): pickle_stdlib.make_bytes,
        ("builtins", "bytearray"): pickle_stdlib.make_bytearray,
        ("_codecs", "encode"): pickle_stdlib.codecs_encode,  # how Python 3 writes bytes in protocol 2
    },
    creatable=(
        (pickle_nvidia.EasyDict, pickle_nvidia.EasyDict),
        (OrderedDict, OrderedDict),
        (pickle_stdlib.Namespace, pickle_stdlib.Namespace),
        (pickle_nvidia.TF_NETWORK, pickle_nvidia.new_tf_network),
    ),
    finishers=(
        # A dtype's BUILD sets only its byte order; one without a BUILD is native-order.
        Finisher(pickle_numpy.new_numpy_dtype, pickle_numpy.build_numpy_dtype, required=False),
        Finisher(pickle_numpy.reconstruct_ndarray, pickle_numpy.build_ndarray),
        Finisher(pickle_nvidia.new_tf_network, pickle_nvidia.build_tf_network),
    ),
    state_setters=(
        (OrderedDict, pickle_stdlib.set_ordered_dict_attributes),
        (pickle_stdlib.Namespace, pickle_stdlib.set_namespace_attributes),
    ),
)
