"""Writes small ONNX models for the converter tests, with NumPy and the standard library only
(the protobuf encoding of the few onnx.proto messages a test graph needs)."""

import struct

import numpy as np

_NUMPY_TYPES = {np.dtype("float32"): 1, np.dtype("int64"): 7, np.dtype("int32"): 6}


def _varint(value):
    value &= (1 << 64) - 1  # negative int64 as two's complement, as protobuf encodes it
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number, wire, payload):
    return _varint(number << 3 | wire) + payload


def _int(number, value):
    return _field(number, 0, _varint(value))


def _bytes(number, payload):
    payload = payload.encode() if isinstance(payload, str) else payload
    return _field(number, 2, _varint(len(payload)) + payload)


def tensor(name, array):
    array = np.asarray(array)  # 0-d arrays stay 0-d (scalars have no dims)
    return (b"".join(_int(1, d) for d in array.shape) + _int(2, _NUMPY_TYPES[array.dtype]) + _bytes(8, name)
            + _bytes(9, array.tobytes()))


def attribute(name, value):
    if isinstance(value, float):
        return _bytes(1, name) + _int(20, 1) + _field(2, 5, struct.pack("<f", value))
    if isinstance(value, int):
        return _bytes(1, name) + _int(20, 2) + _int(3, value)
    if isinstance(value, (str, bytes)):
        return _bytes(1, name) + _int(20, 3) + _bytes(4, value)
    if isinstance(value, np.ndarray):
        return _bytes(1, name) + _int(20, 4) + _bytes(5, tensor("", value))
    if all(isinstance(v, int) for v in value):
        return _bytes(1, name) + _int(20, 7) + b"".join(_int(8, v) for v in value)
    return _bytes(1, name) + _int(20, 6) + b"".join(_field(7, 5, struct.pack("<f", v)) for v in value)


def node(op_type, inputs, outputs, name="", **attributes):
    return (b"".join(_bytes(1, i) for i in inputs) + b"".join(_bytes(2, o) for o in outputs) + _bytes(3, name)
            + _bytes(4, op_type) + b"".join(_bytes(5, attribute(k, v)) for k, v in attributes.items()))


def value_info(name, shape):
    dims = b"".join(_bytes(1, _int(1, d) if isinstance(d, int) else _bytes(2, d)) for d in shape)
    return _bytes(1, name) + _bytes(2, _bytes(1, _int(1, 1) + _bytes(2, dims)))


def model(nodes, initializers, inputs, outputs, opset=13):
    """An ONNX file's bytes. `initializers`: name -> array; `inputs`, `outputs`: (name, shape)."""
    graph = (b"".join(_bytes(1, n) for n in nodes) + _bytes(2, "test")
             + b"".join(_bytes(5, tensor(k, v)) for k, v in initializers.items())
             + b"".join(_bytes(11, value_info(*i)) for i in inputs) + b"".join(_bytes(12, value_info(*o)) for o in outputs))
    return _int(1, 8) + _bytes(2, "facet-tests") + _bytes(7, graph) + _bytes(8, _bytes(1, "") + _int(2, opset))
