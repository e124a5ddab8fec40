#!/usr/bin/env python3
"""Read the state dict of a PyTorch checkpoint with NumPy, without PyTorch.

torch.save has written two layouts:

- legacy (PyTorch < 1.6, or `_use_new_zipfile_serialization=False`): one stream of pickles:
  a magic number, a protocol version, a sys_info dict, the saved object (its tensors refer to
  storages through persistent ids), the list of storage keys, and then for each key in that
  order an 8-byte element count followed by the raw elements.
- zip (the default since 1.6): `<archive>/data.pkl` holds the saved object, storage `<key>` is
  the raw record `<archive>/data/<key>`, and `<archive>/byteorder` says "little" or "big"
  (files from before that record existed were all written little-endian).

Unpickling runs whatever callables the pickle names, so a checkpoint from the internet could
run any code. Both layouts are therefore read with an unpickler that resolves only the few
names a state dict is built from and refuses everything else before it can be called.

Sizes are checked before memory is spent on them: a storage's bytes against the file or the zip
record's declared size (zipfile then inflates no further), only the storages the state dict's tensors
use are read, and the state dict's tensors may hold no more than a facet file can (2 GiB), whatever
sizes and strides (a zero stride repeats one element without end) a tiny file declares.
"""

import collections
import io
import math
import pickle
import struct
import zipfile
from typing import NamedTuple

import numpy as np

from cli import ConverterError, read_regular_file
from facetfile import MAX_DIM, MAX_FILE_SIZE

# The most storage bytes and tensor bytes read from one checkpoint: what a facet file can hold.
MAX_CHECKPOINT_DATA_BYTES = MAX_FILE_SIZE
MAX_PICKLE_BYTES = 64 << 20  # a state dict's pickle: a few KB a tensor


class CheckpointError(ConverterError):
    """A checkpoint that cannot, or must not, be read. The message names the file."""
    names_file = True


LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

# Element type of each torch storage class, as a NumPy type code without byte order.
_STORAGE_ELEMENT_TYPES = {
    "DoubleStorage": "f8",
    "FloatStorage": "f4",
    "HalfStorage": "f2",
    "BFloat16Storage": "u2",  # NumPy has no bfloat16: these are widened to float32 on reading
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "b1",
}


# The pickle can only produce these through the allowed names below. They are named tuples so
# that a pickle cannot alter them after construction (pickle's BUILD opcode finds no __dict__).


class _StorageType(NamedTuple):
    """Stands in for a torch storage class, which the pickle only names in persistent ids."""
    name: str
    element_type: str


class _Storage(NamedTuple):
    key: str
    storage_type: _StorageType
    numel: int


class _TensorRef(NamedTuple):
    """A tensor as the pickle describes it: a strided view into a storage. It becomes an array
    only after unpickling because, in the legacy layout, the storage bytes come later."""
    storage: _Storage
    offset: int
    size: tuple
    stride: tuple


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    """Stands in for torch._utils._rebuild_tensor_v2. Gradient flags, hooks and metadata only
    matter for training, so they are dropped."""
    if not isinstance(storage, _Storage):
        raise ValueError(f"a tensor is built on a {type(storage).__name__}, not on a storage")
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad, backward_hooks):
    """Stands in for torch._utils._rebuild_parameter: an nn.Parameter is just its tensor here."""
    return data


# The only names a checkpoint's pickle may resolve.
_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name, element_type)
       for name, element_type in _STORAGE_ELEMENT_TYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, checkpoint, storages):
        super().__init__(file)
        self._checkpoint = checkpoint
        self._storages = storages  # key -> _Storage, collected for reading the bytes afterwards

    def find_class(self, module, name):
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise CheckpointError(
                f"refusing to load checkpoint {self._checkpoint}: pickle wants to call {module}.{name} "
                "(only tensor / OrderedDict / storage types are allowed)")
        return allowed

    def persistent_load(self, persistent_id):
        # legacy: ('storage', type, key, location, numel, view_metadata); zip: the first five.
        if not (isinstance(persistent_id, tuple) and len(persistent_id) in (5, 6)
                and persistent_id[0] == "storage"):
            raise ValueError(f"unknown persistent id {persistent_id!r}")
        _, storage_type, key, _location, numel = persistent_id[:5]
        if len(persistent_id) == 6 and persistent_id[5] is not None:
            raise ValueError("it uses storage views, an old serialisation feature this reader lacks")
        if not isinstance(storage_type, _StorageType) or not _are_non_negative_ints([numel]):
            raise ValueError(f"malformed storage reference {persistent_id!r}")
        storage = self._storages.setdefault(str(key), _Storage(str(key), storage_type, numel))
        if storage != (str(key), storage_type, numel):
            raise ValueError(f"storage {key} is described in two different ways")
        return storage


def _unpickle(file, checkpoint, storages):
    try:
        return _RestrictedUnpickler(file, checkpoint, storages).load()
    except CheckpointError:
        raise
    except Exception as error:  # any failure inside a pickle means the file is not what it claims
        raise CheckpointError(f"checkpoint {checkpoint} is damaged or not a PyTorch checkpoint: "
                              f"{type(error).__name__}: {error}") from None


# ---------------------------------------------------------------------------------------------
# The two layouts. Each returns the unpickled object and the elements of every storage it
# refers to (storage key -> 1-D array in native byte order).


def _load_legacy(path, data):
    with io.BytesIO(data) as file:
        magic_number = _unpickle(file, path, {})
        protocol_version = _unpickle(file, path, {})
        sys_info = _unpickle(file, path, {})
        if (magic_number != LEGACY_MAGIC_NUMBER or protocol_version != LEGACY_PROTOCOL_VERSION
                or not isinstance(sys_info, dict)):
            raise CheckpointError(f"checkpoint {path} is not a PyTorch checkpoint (neither the zip "
                                  "layout nor the legacy pickle layout)")
        byte_order = "<" if sys_info.get("little_endian", True) else ">"
        storages = {}
        root = _unpickle(file, path, storages)
        stored_keys = _unpickle(file, path, {})
        if not (isinstance(stored_keys, list) and all(isinstance(key, str) for key in stored_keys)):
            raise CheckpointError(f"checkpoint {path} is damaged: its list of storages is malformed")
        _check_storage_total(path, [storages[key] for key in stored_keys if key in storages])
        elements = {key: _read_legacy_storage(file, path, storages.get(key), byte_order)
                    for key in stored_keys}
    missing = storages.keys() - elements.keys()
    if missing:
        raise CheckpointError(f"checkpoint {path} is damaged: no data for storage {min(missing)}")
    return root, elements


def _read_legacy_storage(file, path, storage, byte_order):
    if storage is None:
        raise CheckpointError(f"checkpoint {path} is damaged: it stores data no tensor refers to")
    (count,) = struct.unpack(byte_order + "q", _read_exactly(file, 8, path))
    if count != storage.numel:
        raise CheckpointError(f"checkpoint {path} is damaged: storage {storage.key} holds {count} "
                              f"elements, its tensors expect {storage.numel}")
    raw = _read_exactly(file, _storage_nbytes(storage), path)
    return _decode_elements(raw, storage.storage_type, byte_order)


def _read_exactly(file, size, path):
    data = file.read(size)  # a BytesIO: reads what is there, allocates no more
    if len(data) != size:
        raise CheckpointError(f"checkpoint {path} is truncated")
    return data


def _load_zip(path, data):
    """The unpickled object, and a function reading the elements of the storages it names."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        prefix = _zip_archive_prefix(archive, path)
        storages = {}
        root = _unpickle(io.BytesIO(_read_zip_record(archive, path, prefix + "data.pkl", MAX_PICKLE_BYTES)),
                         path, storages)
        byte_order = _zip_byte_order(archive, path, prefix)
    except CheckpointError:
        raise
    except Exception as error:  # zipfile reports damage in many ways: BadZipFile, zlib.error, ...
        raise _damaged_zip(path, error) from None

    def read_storages(used):
        _check_storage_total(path, used)
        try:
            return {storage.key: _read_zip_storage(archive, prefix, path, storage, byte_order) for storage in used}
        except CheckpointError:
            raise
        except Exception as error:
            raise _damaged_zip(path, error) from None
    return root, read_storages


def _damaged_zip(path, error):
    return CheckpointError(f"checkpoint {path} is a damaged zip file: {type(error).__name__}: {error}")


def _read_zip_record(archive, path, record, size):
    """The bytes of `record`, which must declare `size` bytes at most: zipfile inflates no further
    than a record declares, so a small record cannot inflate to gigabytes."""
    try:
        declared = archive.getinfo(record).file_size
    except KeyError:
        raise CheckpointError(f"checkpoint {path} is damaged: record {record} is missing") from None
    if declared > size:
        raise CheckpointError(f"checkpoint {path} is damaged: record {record} declares {declared} bytes, "
                              f"at most {size} expected")
    return archive.read(record)


def _check_storage_total(path, storages):
    total = sum(_storage_nbytes(storage) for storage in storages)
    if total > MAX_CHECKPOINT_DATA_BYTES:
        raise CheckpointError(f"checkpoint {path}: its tensors' storages hold {total} bytes, more than the "
                              f"{MAX_CHECKPOINT_DATA_BYTES} a facet file can")


def _zip_archive_prefix(archive, path):
    """torch.save puts every record in one top-level folder, named after the file it wrote."""
    data_pickles = [name for name in archive.namelist()
                    if name.endswith("/data.pkl") and name.count("/") == 1]
    if len(data_pickles) != 1:
        raise CheckpointError(f"checkpoint {path} is a zip file but not a PyTorch checkpoint "
                              "(no <archive>/data.pkl)")
    return data_pickles[0][:-len("data.pkl")]


def _zip_byte_order(archive, path, prefix):
    if prefix + "byteorder" not in archive.namelist():
        return "<"
    return ">" if _read_zip_record(archive, path, prefix + "byteorder", len("little\n")).strip() == b"big" else "<"


def _read_zip_storage(archive, prefix, path, storage, byte_order):
    record = f"{prefix}data/{storage.key}"
    raw = _read_zip_record(archive, path, record, _storage_nbytes(storage))
    if len(raw) != _storage_nbytes(storage):
        raise CheckpointError(f"checkpoint {path} is damaged: record {record} has {len(raw)} bytes, "
                              f"its tensors expect {_storage_nbytes(storage)}")
    return _decode_elements(raw, storage.storage_type, byte_order)


def _storage_nbytes(storage):
    return storage.numel * np.dtype(storage.storage_type.element_type).itemsize


def _decode_elements(raw, storage_type, byte_order):
    elements = np.frombuffer(raw, dtype=np.dtype(byte_order + storage_type.element_type))
    if storage_type.name == "BFloat16Storage":
        # A bfloat16 is the upper half of the float32 with the same value.
        return (elements.astype(np.uint32) << 16).view(np.float32)
    return elements.astype(elements.dtype.newbyteorder("="), copy=False)


# ---------------------------------------------------------------------------------------------
# From the unpickled object to a state dict of arrays.


def load_state_dict(path, data=None):
    """The state dict in the checkpoint at `path` (whose bytes are `data`, when already read) as
    {key: np.ndarray}, in the checkpoint's order.

    A checkpoint holding {"state_dict": ..., ...} yields that entry. One holding several networks'
    state dicts beside bookkeeping, as a training script saves networks trained together
    ({"epoch": 3, "plfd_backbone": {...}, "auxiliarynet": {...}}), yields all their tensors, each
    key prefixed with its network's entry ("auxiliarynet.conv1.0.weight"); entries that are not
    state dicts (the epoch, an optimizer's state) are left out. A leading "module." (left by
    nn.DataParallel) is stripped from every key. Arrays keep the tensor's element type, except
    bfloat16, which becomes float32. Raises CheckpointError for unreadable or unsafe files."""
    path = str(path)
    if data is None:
        data = read_regular_file(path, what="checkpoint")
    # Every torch.save zip starts with a local file header; a legacy file starts with a pickle.
    if data.startswith(b"PK\x03\x04"):
        root, read_storages = _load_zip(path, data)
    else:
        root, legacy_elements = _load_legacy(path, data)
        read_storages = lambda used: legacy_elements  # noqa: E731 (all read already, within the file's bytes)
    state_dict = root["state_dict"] if isinstance(root, dict) and "state_dict" in root else root
    if _holds_state_dicts(state_dict):
        state_dict = {f"{entry}.{key}": tensor for entry, network in state_dict.items()
                      if isinstance(entry, str) and _is_state_dict(network) for key, tensor in network.items()}
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state_dict).__name__}, not a state dict")
    tensors = {}
    for key, value in state_dict.items():
        name = _strip_module_prefix(key, path)
        if name in tensors:
            raise CheckpointError(f"checkpoint {path} has key {name} both with and without 'module.'")
        if not isinstance(value, _TensorRef):
            raise CheckpointError(f"checkpoint {path}: state dict entry {key} is a "
                                  f"{type(value).__name__}, not a tensor")
        _check_view(value, name, path)
        tensors[name] = value
    tensor_bytes = sum(_view_nbytes(tensor) for tensor in tensors.values())
    if tensor_bytes > MAX_CHECKPOINT_DATA_BYTES:
        raise CheckpointError(f"checkpoint {path}: its tensors hold {tensor_bytes} bytes, more than the "
                              f"{MAX_CHECKPOINT_DATA_BYTES} a facet file can")
    elements = read_storages(list({tensor.storage.key: tensor.storage for tensor in tensors.values()}.values()))
    return {name: _to_array(tensor, elements[tensor.storage.key]) for name, tensor in tensors.items()}


def _is_state_dict(value):
    return isinstance(value, dict) and bool(value) and all(isinstance(v, _TensorRef) for v in value.values())


def _holds_state_dicts(root):
    """True for a dict of no tensors whose entries include state dicts under string names."""
    return (isinstance(root, dict) and not any(isinstance(v, _TensorRef) for v in root.values())
            and any(isinstance(k, str) and _is_state_dict(v) for k, v in root.items()))


def _strip_module_prefix(key, path):
    if not isinstance(key, str):
        raise CheckpointError(f"checkpoint {path}: state dict key {key!r} is not a string")
    return key[len("module."):] if key.startswith("module.") else key


MAX_TENSOR_RANK = 32  # NumPy's own limit is 64; no network's parameters come near either


def _check_view(tensor, name, path):
    """The strided view `tensor` describes stays inside its storage (a crafted file must not make NumPy
    read outside)."""
    size, stride, offset = tensor.size, tensor.stride, tensor.offset
    if not (len(size) == len(stride) <= MAX_TENSOR_RANK and _are_non_negative_ints(size)
            and _are_non_negative_ints(stride) and _are_non_negative_ints([offset])):
        raise CheckpointError(f"checkpoint {path}: tensor {name} has a malformed size {size}, "
                              f"stride {stride} or offset {offset}")
    if max(size, default=0) > MAX_DIM:
        raise CheckpointError(f"checkpoint {path}: tensor {name} has size {size}, a dim over facet's limit of {MAX_DIM}")
    if 0 in size:
        return
    last_index = offset + sum((n - 1) * step for n, step in zip(size, stride))
    if last_index >= tensor.storage.numel:
        raise CheckpointError(f"checkpoint {path}: tensor {name} reaches element {last_index} of a "
                              f"storage of {tensor.storage.numel}")


def _view_nbytes(tensor):
    """The bytes of the array `tensor` becomes: as many elements as its size says, whatever its strides."""
    itemsize = np.dtype(tensor.storage.storage_type.element_type).itemsize
    return math.prod(tensor.size) * max(itemsize, 4)  # bfloat16 and half become float32 in the recipes


def _to_array(tensor, elements):
    """A C-ordered copy of the strided view `tensor` describes into `elements` (checked by _check_view)."""
    size, stride, offset = tensor.size, tensor.stride, tensor.offset
    if 0 in size:
        return np.zeros(size, dtype=elements.dtype)
    # A dim of size 1 is never stepped over: its stride, however large, does not matter.
    view = np.lib.stride_tricks.as_strided(
        elements[offset:], shape=size, strides=[step * elements.itemsize if n > 1 else 0 for n, step in zip(size, stride)],
        writeable=False)
    return view.copy(order="C")


def _are_non_negative_ints(values):
    return all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)
