#!/usr/bin/env python3
"""Write and read facet weight files, versions 1 and 2 (the layout is specified in weights/FORMAT.md).

`write_facet` refuses (FacetFileError) what the C++ loader would refuse, so a converter never writes
a file facet then rejects: NaN or infinite weights, a dimension over 2^30, a file over 2 GiB.
`read_facet` checks everything the C++ loader checks, in the same spirit: every field is
validated before the bytes it points at are used, and a bad file raises ValueError naming the
file and the reason. The tests use it to prove that converter output is loadable.

NumPy and the standard library only: converters run without PyTorch.
"""

import json
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cli import ConverterError

MAGIC = b"FACETWGT"
# Version 2 added the int8 and bfloat16 dtypes. A file holding neither is written as version 1, so
# that an older facet still reads every fp32 model.
VERSION = 2
HEADER_SIZE = 64
METADATA_OFFSET = HEADER_SIZE  # the metadata directly follows the header
MAX_METADATA_SIZE = 1 << 20
MAX_TENSOR_COUNT = 65536
MAX_NAME_BYTES = 255
MAX_NDIM = 8
MAX_DIM = 1 << 30  # io/weights.hpp: each dimension in [1, 2^30]
MAX_FILE_SIZE = 1 << 31  # io/weights.hpp: kMaxFileSize
TABLE_ALIGNMENT = 8
# Tensor data is 64-byte aligned so that a reader mapping the file can hand its SIMD kernels
# aligned pointers without copying.
TENSOR_ALIGNMENT = 64

DTYPE_FLOAT32 = 1
DTYPE_INT8 = 3  # quantised weights (version 2)
DTYPE_INT32 = 4  # indices of sparse matrices (FORMAT.md, "Sparse matrices")
DTYPE_BFLOAT16 = 5  # bf16 weights (version 2)
# dtype code -> NumPy type of the stored elements, little-endian (bfloat16: its 16 bits).
DTYPES = {DTYPE_FLOAT32: np.dtype("<f4"), DTYPE_INT8: np.dtype("i1"), DTYPE_INT32: np.dtype("<i4"),
          DTYPE_BFLOAT16: np.dtype("<u2")}
DTYPE_NAMES = {DTYPE_FLOAT32: "float32", DTYPE_INT8: "int8", DTYPE_INT32: "int32", DTYPE_BFLOAT16: "bfloat16"}
VERSION_2_DTYPES = {DTYPE_INT8, DTYPE_BFLOAT16}
# Codes a later version will use; a reader names them when it refuses them.
RESERVED_DTYPES = {2: "float16"}

# magic, version, header_size, file_size, meta_offset, meta_size, table_offset,
# tensor_count, crc32, reserved: 64 bytes, little-endian, no padding.
_HEADER = struct.Struct("<8sIIQQQQIIQ")
assert _HEADER.size == HEADER_SIZE

# Fixed-size parts of a tensor table record around its name and dims.
_NAME_LEN = struct.Struct("<H")
_DTYPE_NDIM = struct.Struct("<BB")
_DIM = struct.Struct("<I")
_OFFSET_NBYTES = struct.Struct("<QQ")


@dataclass(frozen=True)
class _Header:
    version: int
    file_size: int
    meta_offset: int
    meta_size: int
    table_offset: int
    tensor_count: int


@dataclass(frozen=True)
class _TensorRecord:
    name: str
    dtype: int
    dims: tuple
    offset: int
    nbytes: int


class FacetFileError(ConverterError):
    """Something the C++ loader would refuse, so the file is not written."""


class BFloat16:
    """A bfloat16 tensor. NumPy has no bfloat16, so `bits` (uint16) holds each element's 16 bits:
    the upper half of the float32 with the same sign, exponent and leading 7 mantissa bits."""

    def __init__(self, bits):
        if not isinstance(bits, np.ndarray) or bits.dtype != np.uint16:
            raise FacetFileError(f"BFloat16 wants a uint16 array of bits, got {getattr(bits, 'dtype', type(bits).__name__)}")
        self.bits = bits

    @classmethod
    def from_float32(cls, array):
        """Rounded to nearest, ties to even (as the hardware's conversions round)."""
        array = np.asarray(array, dtype=np.float32)
        if not np.isfinite(array).all():
            raise FacetFileError("cannot round NaN or infinity to bfloat16")
        wide = array.view(np.uint32).astype(np.uint64)
        rounded = (wide + 0x7FFF + ((wide >> 16) & 1)) >> 16
        return cls(rounded.astype(np.uint16))

    def to_float32(self):
        return (self.bits.astype(np.uint32) << 16).view(np.float32)

    @property
    def shape(self):
        return self.bits.shape

    @property
    def ndim(self):
        return self.bits.ndim

    @property
    def nbytes(self):
        return self.bits.nbytes


def _align(value, alignment):
    return -(-value // alignment) * alignment


# ---------------------------------------------------------------------------------------------
# Writing


def write_facet(path, metadata, tensors):
    """Write `metadata` (a JSON-able dict) and `tensors` (name -> float32, int32 or int8 array, or
    BFloat16, written in the dict's order) to `path` as a facet file: version 2 if it holds int8 or
    bfloat16, else version 1. The same input always gives the same bytes."""
    meta_bytes = _encode_metadata(metadata)
    named_arrays = [(_encode_name(name), _checked_tensor(name, array)) for name, array in tensors.items()]
    if len(named_arrays) > MAX_TENSOR_COUNT:
        raise FacetFileError(f"{len(named_arrays)} tensors, the format allows at most {MAX_TENSOR_COUNT}")

    table_offset = _align(METADATA_OFFSET + len(meta_bytes), TABLE_ALIGNMENT)
    table_size = sum(_record_size(name, array) for name, array in named_arrays)
    data_offsets, file_size = _lay_out_data(table_offset + table_size, [a for _, a in named_arrays])
    if file_size > MAX_FILE_SIZE:
        raise FacetFileError(f"the facet file would be {file_size} bytes, more than facet's limit of {MAX_FILE_SIZE}")

    # Gaps between regions stay zero, as the format requires.
    blob = bytearray(file_size)
    blob[METADATA_OFFSET:METADATA_OFFSET + len(meta_bytes)] = meta_bytes
    table = b"".join(
        _encode_record(name, array, offset) for (name, array), offset in zip(named_arrays, data_offsets))
    blob[table_offset:table_offset + table_size] = table
    for (_, array), offset in zip(named_arrays, data_offsets):
        elements = array.bits if isinstance(array, BFloat16) else array
        blob[offset:offset + array.nbytes] = elements.astype(DTYPES[_dtype_code(array)], copy=False).tobytes()  # C order

    crc = zlib.crc32(memoryview(blob)[HEADER_SIZE:])
    version = 2 if any(_dtype_code(array) in VERSION_2_DTYPES for _, array in named_arrays) else 1
    blob[:HEADER_SIZE] = _HEADER.pack(MAGIC, version, HEADER_SIZE, file_size, METADATA_OFFSET,
                                      len(meta_bytes), table_offset, len(named_arrays), crc, 0)
    Path(path).write_bytes(blob)


def _encode_metadata(metadata):
    # Sorted keys and fixed separators make the output byte-for-byte reproducible.
    try:
        text = json.dumps(metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:  # the only ValueError json.dumps raises for a dict of plain values
        raise FacetFileError("the metadata holds NaN or infinity (in an attribute or option), "
                             "which JSON cannot carry") from None
    encoded = text.encode("utf-8")
    if not 1 <= len(encoded) <= MAX_METADATA_SIZE:
        raise FacetFileError(f"metadata is {len(encoded)} bytes, the format allows 1 .. {MAX_METADATA_SIZE}")
    return encoded


def _encode_name(name):
    encoded = name.encode("utf-8")
    if not 1 <= len(encoded) <= MAX_NAME_BYTES:
        raise FacetFileError(f"tensor name {name!r} is {len(encoded)} bytes in UTF-8, "
                         f"the format allows 1 .. {MAX_NAME_BYTES}")
    return encoded


def _checked_tensor(name, array):
    """`array`, once it is what the C++ loader accepts (io/weights.hpp)."""
    if not isinstance(array, BFloat16) and (not isinstance(array, np.ndarray) or
                                             array.dtype not in (np.float32, np.int32, np.int8)):
        raise FacetFileError(f"tensor {name} is {getattr(array, 'dtype', type(array).__name__)}; "
                             "only float32, int32, int8 and BFloat16 are written (convert it first)")
    if array.ndim > MAX_NDIM or not all(1 <= dim <= MAX_DIM for dim in array.shape):
        raise FacetFileError(f"tensor {name} has shape {array.shape}; "
                             f"the format needs 0 .. {MAX_NDIM} dims, each in [1, {MAX_DIM}]")
    finite = (np.isfinite(array.to_float32()).all() if isinstance(array, BFloat16) else
              array.dtype != np.float32 or np.isfinite(array).all())
    if not finite:
        raise FacetFileError(f"tensor {name} holds NaN or infinity, which facet refuses to load")
    return array


def _dtype_code(array):
    if isinstance(array, BFloat16):
        return DTYPE_BFLOAT16
    return {np.dtype(np.int32): DTYPE_INT32, np.dtype(np.int8): DTYPE_INT8}.get(array.dtype, DTYPE_FLOAT32)


def _record_size(name, array):
    return (_NAME_LEN.size + len(name) + _DTYPE_NDIM.size + _DIM.size * array.ndim
            + _OFFSET_NBYTES.size)


def _encode_record(name, array, offset):
    return b"".join([
        _NAME_LEN.pack(len(name)), name,
        _DTYPE_NDIM.pack(_dtype_code(array), array.ndim),
        *(_DIM.pack(dim) for dim in array.shape),
        _OFFSET_NBYTES.pack(offset, array.nbytes),
    ])


def _lay_out_data(data_start, arrays):
    """Each array's aligned offset, and the file size (the end of the last array)."""
    offsets = []
    cursor = data_start
    for array in arrays:
        cursor = _align(cursor, TENSOR_ALIGNMENT)
        offsets.append(cursor)
        cursor += array.nbytes
    return offsets, cursor


# ---------------------------------------------------------------------------------------------
# Reading


def read_facet(path):
    """Validate the facet file at `path` and return (metadata dict, {name: float32, int32 or int8
    array, or BFloat16}).

    The arrays are read-only views of the file's bytes. Raises ValueError("<path>: <reason>")
    for anything a C++ loader would refuse."""
    data = Path(path).read_bytes()
    header = _read_header(path, data)
    metadata = _read_metadata(path, data, header)
    records, table_end = _read_table(path, data, header)
    _check_regions_disjoint(path, header, table_end, records)
    tensors = {}
    for record in records:
        elements = np.frombuffer(data, dtype=DTYPES[record.dtype], count=math.prod(record.dims),
                                 offset=record.offset).reshape(record.dims)
        tensors[record.name] = BFloat16(elements) if record.dtype == DTYPE_BFLOAT16 else elements
    return metadata, tensors


def _error(path, reason):
    return ValueError(f"{path}: {reason}")


def _read_header(path, data):
    if len(data) < HEADER_SIZE:
        raise _error(path, f"truncated: {len(data)} bytes, shorter than the {HEADER_SIZE}-byte header")
    (magic, version, header_size, file_size, meta_offset, meta_size, table_offset, tensor_count,
     stored_crc, reserved) = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise _error(path, f"not a facet weight file (magic {magic!r}, expected {MAGIC!r})")
    if version > VERSION:
        raise _error(path, f"format version {version}: written by a newer facet "
                           f"(this reader knows 1 .. {VERSION})")
    if version < 1:
        raise _error(path, f"format version {version} is not supported (this reader knows 1 .. {VERSION})")
    if header_size != HEADER_SIZE:
        raise _error(path, f"header_size is {header_size}, expected {HEADER_SIZE}")
    if file_size != len(data):
        state = "truncated" if len(data) < file_size else "trailing bytes"
        raise _error(path, f"{state}: the header says {file_size} bytes, the file has {len(data)}")
    if reserved != 0:
        raise _error(path, f"reserved header field is {reserved}, expected 0")
    computed_crc = zlib.crc32(memoryview(data)[HEADER_SIZE:])
    if computed_crc != stored_crc:
        raise _error(path, f"CRC mismatch (stored {stored_crc:#010x}, computed {computed_crc:#010x}): "
                           "the file is damaged")
    if not 1 <= meta_size <= MAX_METADATA_SIZE:
        raise _error(path, f"meta_size is {meta_size}, allowed 1 .. {MAX_METADATA_SIZE}")
    if table_offset % TABLE_ALIGNMENT != 0:
        raise _error(path, f"table_offset {table_offset} is not a multiple of {TABLE_ALIGNMENT}")
    if tensor_count > MAX_TENSOR_COUNT:
        raise _error(path, f"tensor_count is {tensor_count}, allowed 0 .. {MAX_TENSOR_COUNT}")
    return _Header(version, file_size, meta_offset, meta_size, table_offset, tensor_count)


def _read_metadata(path, data, header):
    end = header.meta_offset + header.meta_size
    if header.meta_offset < HEADER_SIZE or end > header.file_size:
        raise _error(path, f"metadata [{header.meta_offset}, {end}) is outside the file body "
                           f"[{HEADER_SIZE}, {header.file_size})")
    try:
        metadata = json.loads(data[header.meta_offset:end].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _error(path, f"metadata is not UTF-8 JSON: {error}") from None
    if not isinstance(metadata, dict):
        raise _error(path, f"metadata is a JSON {type(metadata).__name__}, expected an object")
    return metadata


class _TableCursor:
    """Reads the packed tensor table field by field, never past the end of the file."""

    def __init__(self, path, data, start):
        self.path = path
        self.data = data
        self.position = start

    def take(self, size, record_index):
        end = self.position + size
        if end > len(self.data):
            raise _error(self.path, f"tensor table record {record_index} runs past the end of the file")
        chunk = self.data[self.position:end]
        self.position = end
        return chunk

    def unpack(self, layout, record_index):
        return layout.unpack(self.take(layout.size, record_index))


def _read_table(path, data, header):
    """The tensor records, and where the table ends."""
    if not HEADER_SIZE <= header.table_offset <= header.file_size:
        raise _error(path, f"table_offset {header.table_offset} is outside the file body")
    cursor = _TableCursor(path, data, header.table_offset)
    records = []
    names = set()
    for index in range(header.tensor_count):
        record = _read_record(cursor, index, header.version)
        if record.name in names:
            raise _error(path, f"tensor {record.name} appears twice in the table")
        names.add(record.name)
        records.append(record)
    return records, cursor.position


def _read_record(cursor, index, version):
    path = cursor.path
    (name_len,) = cursor.unpack(_NAME_LEN, index)
    if not 1 <= name_len <= MAX_NAME_BYTES:
        raise _error(path, f"tensor table record {index}: name length {name_len}, "
                           f"allowed 1 .. {MAX_NAME_BYTES}")
    try:
        name = cursor.take(name_len, index).decode("utf-8")
    except UnicodeDecodeError:
        raise _error(path, f"tensor table record {index}: name is not UTF-8") from None
    dtype, ndim = cursor.unpack(_DTYPE_NDIM, index)
    if dtype in RESERVED_DTYPES:
        raise _error(path, f"tensor {name} has dtype {RESERVED_DTYPES[dtype]}, "
                           f"which format version {VERSION} reserves but does not support")
    if dtype not in DTYPES:
        raise _error(path, f"tensor {name} has unknown dtype code {dtype}")
    if version < 2 and dtype in VERSION_2_DTYPES:
        raise _error(path, f"tensor {name} has dtype {DTYPE_NAMES[dtype]}, which format version {version} does not have")
    if ndim > MAX_NDIM:
        raise _error(path, f"tensor {name} has {ndim} dims, allowed 0 .. {MAX_NDIM}")
    dims = tuple(cursor.unpack(_DIM, index)[0] for _ in range(ndim))
    if 0 in dims:
        raise _error(path, f"tensor {name} has a zero dim {dims}")
    offset, nbytes = cursor.unpack(_OFFSET_NBYTES, index)
    if offset % TENSOR_ALIGNMENT != 0:
        raise _error(path, f"tensor {name} starts at {offset}, not a multiple of {TENSOR_ALIGNMENT}")
    expected_nbytes = math.prod(dims) * DTYPES[dtype].itemsize
    if nbytes != expected_nbytes:
        raise _error(path, f"tensor {name} has nbytes {nbytes}, its dims {dims} need {expected_nbytes}")
    return _TensorRecord(name, dtype, dims, offset, nbytes)


def _check_regions_disjoint(path, header, table_end, records):
    """Every region lies inside the file and none overlaps another."""
    regions = [(0, HEADER_SIZE, "the header"),
               (header.meta_offset, header.meta_offset + header.meta_size, "the metadata"),
               (header.table_offset, table_end, "the tensor table")]
    regions += [(r.offset, r.offset + r.nbytes, f"tensor {r.name}") for r in records]
    for start, end, label in regions:
        if end > header.file_size:
            raise _error(path, f"{label} [{start}, {end}) ends past the end of the file "
                               f"({header.file_size})")
    # An empty table occupies no bytes and so cannot overlap anything.
    occupied = sorted(region for region in regions if region[0] < region[1])
    for (_, end, label), (next_start, _, next_label) in zip(occupied, occupied[1:]):
        if next_start < end:
            raise _error(path, f"{next_label} overlaps {label}")
