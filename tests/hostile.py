"""Writes hostile and broken network files for the safe-loading tests (nothing here runs them)."""

# Each hostile file, if anything in it were executed, would create the file `marker`.
# The pickles are assembled with a pickler that writes any global by name (Ref), so the
# files name e.g. 'os.system' without this module importing or calling anything.

import io
import pickle
import random
import zipfile
from collections import OrderedDict


class Ref:
    """A global named by module and attribute, written into a pickle without importing it."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle wants reduce callables to be callable
        raise RuntimeError("a Ref is only ever written, never called")


class Call:
    """Pickles as REDUCE(func, args): 'call func(*args) while loading'."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)

    def __call__(self, *args):  # a Call can be the function of another Call (a chain)
        raise RuntimeError("a Call is only ever written, never called")


class StoragePid:
    """Pickles as the persistent id torch writes for a storage."""

    def __init__(self, *pid):
        self.pid = pid


class NewObj(dict):
    """Pickles as NEWOBJ(cls) + SETITEMS(items) [+ BUILD(state)], as dnnlib's classes do."""

    def __init__(self, cls, items=(), state=None):
        super().__init__(items)
        self.cls, self.state = cls, state


class Build:
    """Pickles as `obj` followed by BUILD(state): sets the state of an existing object."""

    def __init__(self, obj, state):
        self.obj, self.state = obj, state


class _Writer(pickle._Pickler):
    dispatch = dict(pickle._Pickler.dispatch)

    def save_ref(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[Ref] = save_ref

    def save_newobj(self, obj):
        self.save(obj.cls)
        self.write(pickle.EMPTY_TUPLE + pickle.NEWOBJ)
        self.memoize(obj)
        self._batch_setitems(iter(dict.items(obj)))
        if obj.state is not None:
            self.save(obj.state)
            self.write(pickle.BUILD)

    dispatch[NewObj] = save_newobj

    def save_build(self, obj):
        self.save(obj.obj)
        self.save(obj.state)
        self.write(pickle.BUILD)

    dispatch[Build] = save_build

    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, StoragePid) else None


def dumps(obj, protocol=4):
    buffer = io.BytesIO()
    _Writer(buffer, protocol=protocol).dump(obj)
    return buffer.getvalue()


def touch_command(marker):
    return f"touch {marker}"


def python_that_touches(marker):
    return f"open({str(marker)!r}, 'w').write('ran')"


# ---------------------------------------------------------------------------------------
# Building blocks in NVIDIA's formats


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def storage_blob(values=(1.0, 2.0, 3.0, 4.0), main=None, numel=None, count=None):
    """A legacy torch.save blob of one FloatStorage, as torch.storage._load_from_bytes reads.

    `main` replaces the storage record (to smuggle a gadget in); `numel`/`count` lie about
    the size in the record and in the data header.
    """
    import struct

    values = list(values)
    numel = len(values) if numel is None else numel
    count = len(values) if count is None else count
    record = StoragePid("storage", Ref("torch", "FloatStorage"), "key0", "cpu", numel, None)
    parts = [
        pickle.dumps(LEGACY_MAGIC, protocol=2),
        pickle.dumps(1001, protocol=2),
        pickle.dumps({"protocol_version": 1001, "little_endian": True,
                      "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2),
        dumps(record if main is None else main, protocol=2),
        pickle.dumps(["key0"], protocol=2),
        struct.pack("<q", count),
        struct.pack(f"<{len(values)}f", *values),
    ]
    return b"".join(parts)


def tensor(blob=None, size=(4,), stride=(1,), hooks=None):
    """REDUCE(_rebuild_tensor_v2, (_load_from_bytes(blob), 0, size, stride, False, hooks))."""
    storage = Call(Ref("torch.storage", "_load_from_bytes"), storage_blob() if blob is None else blob)
    return Call(Ref("torch._utils", "_rebuild_tensor_v2"), storage, 0, tuple(size), tuple(stride),
                False, OrderedDict() if hooks is None else hooks)


def persistent(class_name, module_src, state):
    meta = {"type": "class", "version": 6, "module_src": module_src,
            "class_name": class_name, "state": state}
    return Call(Ref("torch_utils.persistence", "_reconstruct_persistent_obj"), meta)


def module_state(parameters=None, buffers=None, modules=None, **attrs):
    state = {"training": False, "_parameters": parameters or {}, "_buffers": buffers or {},
             "_non_persistent_buffers_set": set(), "_modules": modules or {}}
    state.update(attrs)
    state.setdefault("_init_args", ())
    state.setdefault("_init_kwargs", {})
    return state


def small_network(module_src="# source omitted\n"):
    """A tiny persistent 'Generator' with one parameter, one buffer and one submodule."""
    layer = persistent("FullyConnectedLayer", module_src, module_state(
        parameters={"weight": Call(Ref("torch._utils", "_rebuild_parameter"), tensor(),
                                   False, OrderedDict())}))
    return persistent("Generator", module_src, module_state(
        buffers={"w_avg": tensor()}, modules={"fc": layer},
        _init_kwargs={"z_dim": 4, "mapping_kwargs": NewObj(Ref("dnnlib.util", "EasyDict"),
                                                          {"num_layers": 2})}))


def tf_network(build_module_src="# source omitted\n"):
    """A dnnlib.tflib.network.Network record (NEWOBJ + BUILD) with one variable."""
    state = {"version": 4, "name": "G", "static_kwargs": {"resolution": 4}, "components": {},
             "build_module_src": build_module_src, "build_func_name": "G_main",
             "variables": [("lod", Call(Ref("numpy.core.multiarray", "scalar"),
                                        Call(Ref("numpy", "dtype"), "f4", False, True),
                                        b"\x00\x00\x80?"))]}
    return NewObj(Ref("dnnlib.tflib.network", "Network"), state=state)


def torch_zip(data_pkl, records=None):
    """A torch.save zip checkpoint with the given data.pkl bytes and raw data records."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/byteorder", "little")
        for key, raw in (records or {}).items():
            archive.writestr(f"archive/data/{key}", raw)
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------
# The hostile files: name -> (bytes, the global that must be named in the refusal)


def hostile_files(marker):
    cmd = touch_command(marker)
    code = python_that_touches(marker)
    # getattr(__import__('os'), 'system')(cmd): the first global it names is getattr.
    getattr_chain = Call(
        Call(Ref("builtins", "getattr"), Call(Ref("builtins", "__import__"), "os"), "system"), cmd)
    # getattr(_load_from_bytes, '__globals__').get('torch').os.system(cmd): reaching code
    # from an allowed function through attributes.
    getattr_ = Ref("builtins", "getattr")
    torch_module = Call(Call(getattr_, Call(getattr_, Ref("torch.storage", "_load_from_bytes"),
                                            "__globals__"), "get"), "torch")
    getattr_from_allowed = Call(Call(getattr_, Call(getattr_, torch_module, "os"), "system"), cmd)
    files = {
        "os_system": (dumps(Call(Ref("os", "system"), cmd)), "os.system"),
        "os_system_proto0": (
            f"cos\nsystem\n(V{cmd}\ntR.".encode(), "os.system"),
        "posix_system": (dumps(Call(Ref("posix", "system"), cmd)), "posix.system"),
        "nt_system": (dumps(Call(Ref("nt", "system"), cmd)), "nt.system"),
        "builtins_exec": (dumps(Call(Ref("builtins", "exec"), code)), "builtins.exec"),
        "builtins_eval": (dumps(Call(Ref("builtins", "eval"), code)), "builtins.eval"),
        "py2_builtin_eval": (dumps(Call(Ref("__builtin__", "eval"), code), protocol=2),
                             "builtins.eval"),
        "subprocess_popen": (dumps(Call(Ref("subprocess", "Popen"), ["touch", str(marker)])),
                             "subprocess.Popen"),
        "subprocess_check_call": (
            dumps(Call(Ref("subprocess", "check_call"), ["touch", str(marker)])),
            "subprocess.check_call"),
        "getattr_chain": (dumps(getattr_chain), "builtins.getattr"),
        "getattr_from_allowed": (dumps(getattr_from_allowed), "builtins.getattr"),
        "torch_load": (dumps(Call(Ref("torch", "load"), str(marker))), "torch.load"),
        "pickle_loads": (dumps(Call(Ref("pickle", "loads"),
                                    dumps(Call(Ref("os", "system"), cmd)))), "pickle.loads"),
        "numpy_load": (dumps(Call(Ref("numpy", "load"), str(marker), None, True)), "numpy.load"),
        "importlib": (dumps(Call(Ref("importlib", "import_module"), "os")),
                      "importlib.import_module"),
        "copyreg_reconstructor": (
            dumps(Call(Ref("copyreg", "_reconstructor"), Ref("os", "system"), str, cmd)),
            "copyreg._reconstructor"),
        # A gadget next to a real-looking network in a snapshot dict.
        "nested_in_snapshot": (
            dumps({"G_ema": small_network(), "training_set_kwargs": {"resolution": 4},
                   "extra": [1, {"deep": Call(Ref("os", "system"), cmd)}]}), "os.system"),
        # The gadget inside the legacy storage blob of an otherwise normal tensor.
        "gadget_in_storage_blob": (
            dumps({"G_ema": tensor(blob=storage_blob(main=Call(Ref("os", "system"), cmd)))}),
            "os.system"),
        # The storage-blob unpickler allows storage types only, not even the outer globals.
        "outer_global_in_storage_blob": (
            dumps(tensor(blob=storage_blob(main=persistent("G", code, {})))),
            "torch_utils.persistence._reconstruct_persistent_obj"),
        # A global name built to mess up a terminal: the message must stay one clean line.
        "escape_codes_in_name": (_stack_global_call("os", "all\n\x1b[2Jok"), "os.all"),
        "zip_gadget": (torch_zip(dumps(Call(Ref("os", "system"), cmd), protocol=2)), "os.system"),
        # Tensors whose backward hooks name allowed callables (they would run on backward).
        "tensor_hooks": (
            dumps(tensor(hooks=OrderedDict([(0, Ref("collections", "OrderedDict"))]))),
            "backward hooks"),
        "parameter_hooks": (
            dumps(Call(Ref("torch._utils", "_rebuild_parameter"), tensor(), False,
                       OrderedDict([(0, Ref("collections", "OrderedDict"))]))),
            "backward hooks"),
        # State-setting (BUILD) on objects that are not ours to build.
        "build_on_tensor": (
            dumps(Build(tensor(), (False, None, OrderedDict([(0, Ref("collections", "OrderedDict"))])))),
            "Tensor"),
        "build_on_list": (dumps(Build([1, 2], {"__class__": 1})), "list"),
        "structured_dtype_state": (
            dumps(Build(Call(Ref("numpy", "dtype"), "f4", False, True),
                        (3, "|", None, ("a",), {"a": (Call(Ref("numpy", "dtype"), "f8", False, True), 0)},
                         8, 1, 0x3F))), "structured"),
        "newobj_of_function": (dumps(NewObj(Ref("numpy", "dtype"))), "refused to create"),
        "ext_opcode": (b"\x80\x02\x82\x01.", "opcode"),
        # numpy object arrays would unpickle arbitrary objects.
        "numpy_object_dtype": (
            dumps(Call(Ref("numpy", "dtype"), "O8", False, True)), "numpy dtype"),
    }
    return files


def _stack_global_call(module, name):
    """Protocol 4: STACK_GLOBAL(module, name) called with no arguments; any name at all."""
    def unicode(text):
        data = text.encode()
        return b"\x8c" + bytes([len(data)]) + data

    return b"\x80\x04" + unicode(module) + unicode(name) + b"\x93)R."


def write_hostile_files(directory, marker):
    """Writes every hostile file into `directory`; returns {name: (path, expected text)}."""
    out = {}
    for name, (data, expected) in hostile_files(marker).items():
        path = directory / f"{name}.pkl"
        path.write_bytes(data)
        out[name] = (path, expected)
    return out


# ---------------------------------------------------------------------------------------
# Broken files


def broken_files(fixture_bytes):
    """name -> bytes of files that are not loadable networks (and hold no gadget)."""
    rng = random.Random(1234)
    files = {
        "empty": b"",
        "random_bytes": bytes(rng.randrange(256) for _ in range(4096)),
        "random_bytes_after_proto": b"\x80\x04" + bytes(rng.randrange(256) for _ in range(4096)),
        "text": b"This is a README, not a network.\nIt has two lines.\n",
        "json": b'{"G_ema": {"z_dim": 512}, "note": "not a pickle"}\n',
        "pickle_of_int": pickle.dumps(42, protocol=4),
        "pickle_of_none": pickle.dumps(None, protocol=2),
        "zip_without_data_pkl": _zip_with({"readme.txt": b"hello"}),
        "truncated_zip": torch_zip(dumps({"a": 1}, protocol=2))[:60],
        "absurd_storage_numel": dumps(tensor(blob=storage_blob(numel=10**12))),
        "storage_count_mismatch": dumps(tensor(blob=storage_blob(count=3))),
        "tensor_past_storage": dumps(tensor(size=(8,), stride=(1,))),
        "tensor_expanded_view": dumps(tensor(size=(10**6, 4), stride=(0, 1))),
        "absurd_bytearray8": b"\x80\x05\x96" + (1 << 40).to_bytes(8, "little") + b"abc.",
        "zip_bomb": _zip_with({"archive/data.pkl": b"\x80\x02" + b"N" * (20 << 20) + b"."},
                              compression=zipfile.ZIP_DEFLATED),
        "tf_network_without_state": dumps((NewObj(Ref("dnnlib.tflib.network", "Network")),)),
        "persistent_unknown_type": dumps(Call(
            Ref("torch_utils.persistence", "_reconstruct_persistent_obj"),
            {"type": "module", "version": 6, "module_src": "", "class_name": "X", "state": {}})),
    }
    size = len(fixture_bytes)
    cuts = {"1": 1, "2": 2, "100": 100, "third": size // 3, "half": size // 2,
            "last_byte": size - 1}
    for label, cut in cuts.items():
        files[f"truncated_{label}"] = fixture_bytes[:cut]
    return files


def _zip_with(entries, compression=zipfile.ZIP_STORED):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()
