"""Writes small torch.save zip checkpoints for the converter tests, without PyTorch: the pickle of a
state dict is spelled out opcode by opcode (protocol 2), so a test can give a tensor any size,
stride or storage it likes, however hostile."""

import pickle
import struct
import zipfile
import zlib
from pathlib import Path
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


def _zip_with_raw_records(path, records):
    """A zip archive whose records are given already encoded: (name, method, payload, crc, size), so a
    test can declare any uncompressed size. Sizes must stay below 4 GiB (no zip64)."""
    local, central = bytearray(), bytearray()
    for name, method, payload, crc, size in records:
        encoded = name.encode()
        fields = struct.pack("<HHHHHIIIHH", 20, 0, method, 0, 0, crc, len(payload), size, len(encoded), 0)
        central += struct.pack("<IH", 0x02014B50, 20) + fields + struct.pack("<HHHII", 0, 0, 0, 0, len(local)) + encoded
        local += struct.pack("<I", 0x04034B50) + fields + encoded + payload
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(records), len(records), len(central), len(local), 0)
    Path(path).write_bytes(bytes(local + central + end))


def write_inflating_checkpoint(path, tensors, storage_key, inflated_size):
    """A zip checkpoint whose record `archive/data/<storage_key>` is a deflate stream of `inflated_size`
    zero bytes (a multiple of 1 MiB), about 1000 times smaller: 1 MiB blocks, each ending in a full
    flush so that every block compresses to the same bytes. Its CRC is left 0: no reader gets that far."""
    mebibyte = 1 << 20
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(mebibyte)) + compressor.flush(zlib.Z_FULL_FLUSH)
    stream = block * (inflated_size // mebibyte) + b"\x03\x00"  # then an empty final block
    pickled = state_dict_pickle(tensors)
    _zip_with_raw_records(path, [
        ("archive/data.pkl", zipfile.ZIP_STORED, pickled, zlib.crc32(pickled), len(pickled)),
        (f"archive/data/{storage_key}", zipfile.ZIP_DEFLATED, stream, 0, inflated_size)])
