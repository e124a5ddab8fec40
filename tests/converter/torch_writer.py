"""Writes small torch.save zip checkpoints for the converter tests, without PyTorch: the pickle of a
state dict is spelled out opcode by opcode (protocol 2), so a test can give a tensor any size,
stride or storage it likes, however hostile."""

import pickle
import struct
import zipfile
from typing import NamedTuple


class TensorSpec(NamedTuple):
    """A tensor as torch.save describes it: a strided view into storage `key` of `numel` elements."""
    key: str
    numel: int
    size: tuple
    stride: tuple
    offset: int = 0
    storage_type: str = "FloatStorage"


def _string(text):
    encoded = text.encode("utf-8")
    return b"X" + struct.pack("<I", len(encoded)) + encoded  # BINUNICODE


def _int(value):
    encoded = pickle.encode_long(value)
    return b"\x8a" + bytes([len(encoded)]) + encoded  # LONG1: any size, as a hostile file may want


def _tuple(items):
    return b"(" + b"".join(items) + b"t"  # MARK ... TUPLE


def state_dict_pickle(tensors):
    """Pickle bytes of OrderedDict(name -> torch._utils._rebuild_tensor_v2(storage, offset, size, stride))."""
    parts = [b"\x80\x02", b"ccollections\nOrderedDict\n)R"]  # PROTO 2; OrderedDict()
    for name, spec in tensors.items():
        storage = _tuple([_string("storage"), f"ctorch\n{spec.storage_type}\n".encode(), _string(spec.key),
                          _string("cpu"), _int(spec.numel)]) + b"Q"  # BINPERSID
        arguments = _tuple([storage, _int(spec.offset), _tuple(map(_int, spec.size)), _tuple(map(_int, spec.stride))])
        parts += [_string(name), b"ctorch._utils\n_rebuild_tensor_v2\n", arguments, b"R", b"s"]  # REDUCE, SETITEM
    return b"".join(parts) + b"."


def write_zip_checkpoint(path, tensors, storages, compression=zipfile.ZIP_STORED):
    """A zip-layout checkpoint of `tensors` (name -> TensorSpec) with `storages` (key -> raw bytes)."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("archive/data.pkl", state_dict_pickle(tensors))
        archive.writestr("archive/byteorder", "little")
        for key, data in storages.items():
            archive.writestr(f"archive/data/{key}", data)
