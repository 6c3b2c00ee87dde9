"""Writes files that try to crash StyleScope or exhaust its memory or time (the tests build them; nothing here runs them)."""

# Classes: containers nested 10^6 deep where hashing recurses in C; zip entries that expand
# far past the file; shared subgraphs that explode under a walk or a copy without memo;
# networks that declare far more than their weights; numpy headers and request JSON that lie;
# names built to mess up a terminal. Each file is small; what it asks for is not.

import io
import json
import struct
import zipfile
import zlib
from collections import OrderedDict

import numpy as np

from hostile import Call, NewObj, Ref, StoragePid, dumps, module_state, persistent, tensor, torch_zip

DEEP = 1_000_000  # one opcode byte per level: a 1 MB file


def _deep_tuple():
    return b")" + b"\x85" * DEEP  # EMPTY_TUPLE, then TUPLE1 around it a million times


def deep_nesting_files():
    """name -> pickle bytes whose containers nest DEEP levels, along every container path."""
    P2, P4 = b"\x80\x02", b"\x80\x04"
    return {
        "deep_dict_key": P2 + b"}" + _deep_tuple() + b"Ns.",
        "deep_ordereddict_key": P2 + b"ccollections\nOrderedDict\n)R" + _deep_tuple() + b"Ns.",
        "deep_setitems_key": P2 + b"}(" + _deep_tuple() + b"Nu.",
        "deep_dict_opcode_key": P2 + b"(" + _deep_tuple() + b"Nd.",
        "deep_set_member": P4 + b"\x8f(" + _deep_tuple() + b"\x90.",
        "deep_frozenset_member": P4 + b"(" + _deep_tuple() + b"\x91.",
        "deep_tuple2_key": P2 + b"})" + b"N\x86" * DEEP + b"Ns.",
        "deep_tuple3_key": P2 + b"})" + b"NN\x87" * (DEEP // 2) + b"Ns.",
        "deep_mark_tuple_key": P2 + b"}" + b"(" * DEEP + b"t" * DEEP + b"Ns.",
        "deep_lists": P2 + b"(" * DEEP + b"l" * DEEP + b".",
        "deep_append": P2 + b"]" + _deep_tuple() + b"a.",
        "deep_reduce_args": P2 + b"cbuiltins\nset\n" + _deep_tuple() + b"\x85\x85R.",
        "deep_frozenset_reduce": P2 + b"cbuiltins\nfrozenset\n" + _deep_tuple() + b"\x85\x85R.",
        "deep_build_state": P2 + b"cdnnlib.util\nEasyDict\n)\x81" + _deep_tuple() + b"b.",
        "deep_persistent_id": torch_zip(P2 + _deep_tuple() + b"Q."),
    }


# ---------------------------------------------------------------------------------------
# Memory and time


def _zip_storage(key, numel):
    pid = StoragePid("storage", Ref("torch", "FloatStorage"), key, "cpu", numel)
    return Call(Ref("torch._utils", "_rebuild_tensor_v2"), pid, 0, (numel,), (1,), False, OrderedDict())


def zip_expansion_bomb(records=400, numel=1 << 20):
    """A torch zip whose `records` deflated records of zeros each stay under the per-entry cap
    but together expand to records x numel x 4 bytes (1.6 GB by default)."""
    data_pkl = dumps({f"t{i}": _zip_storage(str(i), numel) for i in range(records)}, protocol=2)
    buffer = io.BytesIO()
    zeros = bytes(numel * 4)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", data_pkl, compress_type=zipfile.ZIP_STORED)
        archive.writestr("archive/byteorder", "little")
        for i in range(records):
            archive.writestr(f"archive/data/{i}", zeros)
    return buffer.getvalue()


def many_records_zip(records=8_000):
    """A torch zip with many one-value records: a list lookup per storage would be quadratic."""
    data_pkl = dumps([_zip_storage(str(i), 1) for i in range(records)], protocol=2)
    return torch_zip(data_pkl, {str(i): b"\0\0\0\0" for i in range(records)})


def _sg2_kwargs(**changes):
    kwargs = {"z_dim": 4, "c_dim": 0, "w_dim": 4, "img_resolution": 8, "img_channels": 3,
              "mapping_kwargs": {"num_layers": 2}, "synthesis_kwargs": {"channel_base": 64, "channel_max": 4}}
    kwargs.update(changes)
    return kwargs


def generator(init_kwargs, modules=None, class_name="Generator"):
    """A persistent Generator record with one small tensor and the given init kwargs (its synthesis
    and mapping networks empty: the loader gets as far as building what the kwargs declare)."""
    modules = modules or {"synthesis": persistent("SynthesisNetwork", "", module_state()),
                          "mapping": persistent("MappingNetwork", "", module_state())}
    return persistent(class_name, "# source omitted\n", module_state(
        buffers={"w_avg": tensor()}, modules=modules, _init_kwargs=init_kwargs))


def diamond_network(levels=30):
    """Submodules shared in a diamond: 2^levels paths through `levels` distinct modules."""
    node = persistent("Layer", "", module_state(parameters={"weight": tensor()}))
    for _ in range(levels):
        node = persistent("Layer", "", module_state(modules={"a": node, "b": node}))
    return dumps({"G_ema": generator(_sg2_kwargs(), modules={"synthesis": node, "mapping": node})})


def billion_laughs_kwargs(levels=40):
    """Init kwargs whose lists share their items: 2^levels values once copied without memo."""
    laugh = ["lol", "lol"]
    for _ in range(levels):
        laugh = [laugh, laugh]
    return dumps({"G_ema": generator(_sg2_kwargs(mapping_kwargs={"num_layers": 2, "lr_multiplier": laugh}))})


def declared_too_large(kind):
    """A tiny file declaring a 32768 px network or a million mapping layers."""
    if kind == "resolution":
        kwargs = _sg2_kwargs(img_resolution=32768)
    else:
        kwargs = _sg2_kwargs(mapping_kwargs={"num_layers": 1_000_000})
    return dumps({"G_ema": generator(kwargs)})


def declared_too_large_safetensors(kind):
    """The same lie in our own .safetensors format (config JSON + one small tensor)."""
    import torch
    from safetensors.torch import save

    kwargs = _sg2_kwargs(img_resolution=32768) if kind == "resolution" else \
        _sg2_kwargs(mapping_kwargs={"num_layers": 1_000_000})
    config = {"family": "stylegan2", "init_kwargs": kwargs, "info": {}}
    return save({"mapping.w_avg": torch.zeros(4)}, metadata={"stylescope": json.dumps(config)})


def named_generator(class_name):
    """A network whose class name is `class_name` (escape codes, or 50 MB of text)."""
    return dumps({"G_ema": generator(_sg2_kwargs(), class_name=class_name)})


def network_files():
    """name -> (file suffix, bytes) of every network-file class above."""
    files = {name: (".pkl", data) for name, data in deep_nesting_files().items()}
    files.update({
        "zip_expansion_bomb": (".pt", zip_expansion_bomb()),
        "many_records_zip": (".pt", many_records_zip()),
        "zip_of_100k_entries": (".pt", many_records_zip(100_000)),
        "diamond_modules": (".pkl", diamond_network()),
        "billion_laughs_kwargs": (".pkl", billion_laughs_kwargs()),
        "declares_32768px": (".pkl", declared_too_large("resolution")),
        "declares_1e6_mapping_layers": (".pkl", declared_too_large("mapping")),
        "safetensors_declares_32768px": (".safetensors", declared_too_large_safetensors("resolution")),
        "safetensors_declares_1e6_layers": (".safetensors", declared_too_large_safetensors("mapping")),
        "class_name_escape_codes": (".pkl", named_generator("Gen\x1b[2J\x1b[31mred\x07")),
        "class_name_50mb": (".pkl", named_generator("N" * (50 << 20))),
    })
    return files


# ---------------------------------------------------------------------------------------
# numpy latents and directions


def npy_bytes(header, data=b""):
    """A .npy file with a header written as given (it may lie about shape or dtype)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + data


def inflating_npz(name="w", values=100_000_000):
    """An .npz whose member, stored deflated in a few hundred KB, inflates to values x 4 bytes."""
    header = npy_bytes({"descr": "<f4", "fortran_order": False, "shape": (values,)})
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(4 << 20)
    body = compressor.compress(header)
    remaining = values * 4
    while remaining:
        part = chunk[:min(len(chunk), remaining)]
        body += compressor.compress(part)
        remaining -= len(part)
    body += compressor.flush()
    return _raw_zip_member(f"{name}.npy", body, len(header) + values * 4, zlib.crc32(header))


def _raw_zip_member(name, deflated, size, crc):
    """A one-member zip written by hand (zipfile would need the inflated bytes to write it)."""
    name = name.encode()
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(deflated), size, len(name), 0)
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(deflated), size,
                          len(name), 0, 0, 0, 0, 0, 0)
    offset = len(local) + len(name) + len(deflated)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central) + len(name), offset, 0)
    return local + name + deflated + central + name + end


def _npz(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(f"{name}.npy", data)
    return buffer.getvalue()


def numpy_files():
    """name -> (suffix, bytes) of .npy/.npz files that lie in their headers."""
    huge = npy_bytes({"descr": "<f4", "fortran_order": False, "shape": (10**12,)})
    structured = npy_bytes({"descr": [("a", "<f4"), ("b", "<f4")], "fortran_order": False, "shape": (2,)},
                           bytes(16))
    objects = npy_bytes({"descr": "|O", "fortran_order": False, "shape": (1,)}, b"\x80\x02N.")
    return {
        "npy_claims_1e12_values": (".npy", huge),
        "npz_claims_1e12_values": (".npz", _npz({"w": huge, "direction": huge})),
        "npy_structured_dtype": (".npy", structured),
        "npz_structured_dtype": (".npz", _npz({"w": structured, "direction": structured})),
        "npy_object_dtype": (".npy", objects),
        "npz_inflates_400mb": (".npz", inflating_npz()),
        "npy_header_garbage": (".npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': (((((((\n"),
    }


# ---------------------------------------------------------------------------------------
# Request JSON (--request, --session, a PNG's stylescope.request chunk) and PNG headers


def request_texts():
    """name -> JSON text of requests that are nested, huge or of the wrong types."""
    deep = "[" * 100_000 + "]" * 100_000
    return {
        "json_nested_100000": '{"seeds": ' + deep + "}",
        "json_nested_objects": '{"a":' * 100_000 + "1" + "}" * 100_000,
        "json_400_digit_int": '{"truncation_psi": ' + "9" * 400 + "}",
        "json_400_digit_seed": '{"seeds": [[' + "9" * 400 + ", 1.0]]}",
        "json_dict_for_number": '{"truncation_psi": {"a": 1}, "seeds": [[{"a": 1}, 1.0]]}',
        "json_dict_in_w": '{"w": [{"a": 1}]}',
        "json_dict_in_seeds": '{"seeds": {"a": 1}}',
        "json_control_chars": '{"layer\\u001b[2J\\u0007": 1}',
        "json_long_key": '{"' + "k" * (4 << 20) + '": 1}',
    }


def png_with_text(text_chunks, width=8, height=8, claimed=None):
    """A PNG with tEXt chunks; `claimed` (w, h) makes the header lie about its size."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in text_chunks.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="PNG", pnginfo=info)
    data = buffer.getvalue()
    if claimed is not None:  # rewrite IHDR's width/height and its CRC
        ihdr = bytearray(data[8:33])
        ihdr[8:16] = struct.pack(">II", *claimed)
        ihdr[21:25] = struct.pack(">I", zlib.crc32(bytes(ihdr[4:21])))
        data = data[:8] + bytes(ihdr) + data[33:]
    return data


def png_files():
    """name -> PNG bytes: a 3.6 gigapixel header, and request chunks of each JSON class."""
    request = json.dumps({"seeds": [[1, 1.0]]})
    files = {"png_claims_3.6_gigapixels": png_with_text({"stylescope.request": request}, claimed=(60000, 60000))}
    for name, text in request_texts().items():
        if len(text) < 1 << 20:  # PIL refuses text chunks over 1 MB itself
            files[f"png_{name}"] = png_with_text({"stylescope.request": text})
    return files
