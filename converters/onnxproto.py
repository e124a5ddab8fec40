#!/usr/bin/env python3
"""A small reader of ONNX model files (the protobuf messages of onnx/onnx.proto), NumPy only.

Only what a converter of inference graphs needs is decoded: the model's opset imports, the main
graph's nodes (with their attributes), initializers (as NumPy arrays), inputs and outputs (with
their static shapes). Everything is checked as it is read: a field that runs past the end of its
message (a truncated file) or a wire type that does not fit the field raises OnnxError naming the
file and the message being read, never an IndexError deep inside.

The protobuf wire format: a message is a sequence of (key, value) records, key = varint of
(field_number << 3 | wire_type); wire type 0 = varint, 1 = 8 bytes, 2 = varint length + bytes
(strings, sub-messages, packed repeated scalars), 5 = 4 bytes. Field numbers are those of
onnx.proto (ONNX 1.x, unchanged since IR version 3).
"""

import math
import struct
from dataclasses import dataclass, field

import numpy as np

from cli import ConverterError, read_regular_file

MAX_TENSOR_RANK = 8  # facet's own limit (weights/FORMAT.md); an exporter's constants have rank <= 5


class OnnxError(ConverterError):
    """An ONNX file facet cannot read; the message names the file and the reason."""
    names_file = True


# TensorProto.DataType codes -> NumPy types (little-endian), for the types an inference graph's
# initializers and constants use.
TENSOR_TYPES = {
    1: np.dtype("<f4"),   # FLOAT
    2: np.dtype("u1"),    # UINT8
    3: np.dtype("i1"),    # INT8
    5: np.dtype("<i2"),   # INT16
    6: np.dtype("<i4"),   # INT32
    7: np.dtype("<i8"),   # INT64
    9: np.dtype("?"),     # BOOL
    10: np.dtype("<f2"),  # FLOAT16
    11: np.dtype("<f8"),  # DOUBLE
}
TENSOR_TYPE_NAMES = {1: "float", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
                     8: "string", 9: "bool", 10: "float16", 11: "double", 12: "uint32", 13: "uint64",
                     14: "complex64", 15: "complex128", 16: "bfloat16"}

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5

# Names of the length-delimited fields a truncation is most likely to cut, for its message.
_FIELD_NAMES = {("ModelProto", 7): "graph", ("ModelProto", 8): "opset_import", ("GraphProto", 1): "node",
                ("GraphProto", 5): "initializer", ("GraphProto", 11): "input", ("GraphProto", 12): "output",
                ("GraphProto", 13): "value_info", ("NodeProto", 5): "attribute", ("TensorProto", 9): "raw_data"}


@dataclass
class Node:
    op_type: str
    name: str
    domain: str
    inputs: list   # value names; "" marks an omitted optional input
    outputs: list
    attributes: dict  # name -> int, float, bytes, np.ndarray (tensor), list of int / float / bytes

    def describe(self):
        return f"{self.op_type} node '{self.name or self.outputs[0]}'"


@dataclass
class ValueInfo:
    name: str
    elem_type: int
    shape: list  # one int per dim, or a str for a symbolic dim; None when the shape is unknown


@dataclass
class Model:
    path: str
    ir_version: int
    opsets: dict  # domain ("" for the default ONNX domain) -> version
    producer: str
    nodes: list
    initializers: dict  # name -> np.ndarray
    inputs: list   # ValueInfo, initializers excluded
    outputs: list  # ValueInfo
    value_info: dict = field(default_factory=dict)  # name -> ValueInfo (shapes the exporter wrote)


def load_model(path):
    """Parse the ONNX file at `path` into a Model, or raise OnnxError."""
    try:
        data = read_regular_file(path, what="ONNX file")
    except OSError as error:
        raise OnnxError(f"{path}: cannot read ({error.strerror})") from None
    return parse_model(data, str(path))


def parse_model(data, path):
    if not data:
        raise OnnxError(f"{path}: empty file, not an ONNX model")
    reader = _Reader(memoryview(data), path)
    ir_version, producer, graph, opsets = None, "", None, {}
    for number, wire, value in reader.fields("ModelProto"):
        if number == 1:
            ir_version = reader.expect_int(number, wire, value, "ModelProto.ir_version")
        elif number == 2:
            producer = reader.expect_string(number, wire, value, "ModelProto.producer_name")
        elif number == 7:
            graph = reader.expect_bytes(number, wire, value, "ModelProto.graph")
        elif number == 8:
            domain, version = _parse_opset(reader, reader.expect_bytes(number, wire, value, "ModelProto.opset_import"))
            opsets[domain] = version
    # A file cut at a record boundary parses as a shorter, valid message: say what is missing.
    if ir_version is None:
        raise OnnxError(f"{path}: not an ONNX model (no ir_version): wrong file type, or truncated")
    if graph is None:
        raise OnnxError(f"{path}: the ONNX model has no graph (truncated file?)")
    if not opsets:
        raise OnnxError(f"{path}: the ONNX model has no opset_import (truncated file?)")
    nodes, initializers, inputs, outputs, value_info = _parse_graph(reader, graph)
    return Model(path, ir_version, opsets, producer, nodes, initializers,
                 [v for v in inputs if v.name not in initializers], outputs, value_info)


class _Reader:
    """Walks protobuf records of one file; every read is bounds-checked."""

    def __init__(self, data, path):
        self.data = data
        self.path = path

    def error(self, what, reason):
        return OnnxError(f"{self.path}: {reason} while reading {what}")

    def varint(self, buffer, position, what):
        result = shift = 0
        while True:
            if position >= len(buffer):
                raise self.error(what, "truncated file: a number runs past the end of its message")
            byte = buffer[position]
            position += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                if result >> 64:  # a protobuf number has 64 bits: 10 bytes, the tenth holding one bit
                    break
                return result, position
            shift += 7
            if shift >= 70:
                break
        raise self.error(what, "not an ONNX model (malformed protobuf number)")

    def fields(self, what, buffer=None):
        """Yield (field_number, wire_type, value) of a message: value is an int for varints, a
        memoryview for the other wire types."""
        buffer = self.data if buffer is None else buffer
        position = 0
        while position < len(buffer):
            key, position = self.varint(buffer, position, what)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise self.error(what, "not an ONNX model (malformed protobuf: field number 0)")
            if wire == _VARINT:
                value, position = self.varint(buffer, position, what)
            elif wire in (_FIXED64, _FIXED32, _LENGTH):
                if wire == _LENGTH:
                    size, position = self.varint(buffer, position, what)
                else:
                    size = 8 if wire == _FIXED64 else 4
                if size > len(buffer) - position:
                    field = _FIELD_NAMES.get((what, number), f"field {number}")
                    raise self.error(what, f"truncated file: its {field} needs {size} bytes, only "
                                           f"{len(buffer) - position} remain")
                value = buffer[position:position + size]
                position += size
            else:
                raise self.error(what, f"not an ONNX model (malformed protobuf: wire type {wire})")
            yield number, wire, value

    def _expect(self, wire, wanted, number, what):
        if wire != wanted:
            raise self.error(what, f"not an ONNX model (field {number} has wire type {wire}, expected {wanted})")

    def expect_int(self, number, wire, value, what):
        self._expect(wire, _VARINT, number, what)
        return value - (1 << 64) if value >= 1 << 63 else value  # int64 two's complement

    def expect_bytes(self, number, wire, value, what):
        self._expect(wire, _LENGTH, number, what)
        return value

    def expect_string(self, number, wire, value, what):
        try:
            return bytes(self.expect_bytes(number, wire, value, what)).decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(what, "a string is not UTF-8") from None

    def expect_float(self, number, wire, value, what):
        self._expect(wire, _FIXED32, number, what)
        return struct.unpack("<f", value)[0]

    def repeated_ints(self, number, wire, value, what):
        """One record of a repeated int64 field: packed (a run of varints) or a single varint."""
        if wire == _VARINT:
            return [self.expect_int(number, wire, value, what)]
        packed = self.expect_bytes(number, wire, value, what)
        out, position = [], 0
        while position < len(packed):
            v, position = self.varint(packed, position, what)
            out.append(v - (1 << 64) if v >= 1 << 63 else v)
        return out

    def repeated_floats(self, number, wire, value, what):
        if wire == _FIXED32:
            return [struct.unpack("<f", value)[0]]
        packed = self.expect_bytes(number, wire, value, what)
        if len(packed) % 4:
            raise self.error(what, "packed floats are not a multiple of 4 bytes")
        return list(np.frombuffer(packed, dtype="<f4"))


def _parse_opset(reader, buffer):
    domain, version = "", None
    for number, wire, value in reader.fields("OperatorSetIdProto", buffer):
        if number == 1:
            domain = reader.expect_string(number, wire, value, "OperatorSetIdProto.domain")
        elif number == 2:
            version = reader.expect_int(number, wire, value, "OperatorSetIdProto.version")
    if version is None:
        raise reader.error("OperatorSetIdProto", "opset_import without a version")
    return ("" if domain == "ai.onnx" else domain), version


def _parse_graph(reader, buffer):
    nodes, initializers, inputs, outputs, value_info = [], {}, [], [], {}
    for number, wire, value in reader.fields("GraphProto", buffer):
        what = "GraphProto"
        if number == 1:
            nodes.append(_parse_node(reader, reader.expect_bytes(number, wire, value, what)))
        elif number == 5:
            name, array = _parse_tensor(reader, reader.expect_bytes(number, wire, value, what))
            initializers[name] = array
        elif number == 15:
            raise reader.error(what, "the graph has sparse initializers, which facet does not read")
        elif number == 11:
            inputs.append(_parse_value_info(reader, reader.expect_bytes(number, wire, value, what)))
        elif number == 12:
            outputs.append(_parse_value_info(reader, reader.expect_bytes(number, wire, value, what)))
        elif number == 13:
            info = _parse_value_info(reader, reader.expect_bytes(number, wire, value, what))
            value_info[info.name] = info
    return nodes, initializers, inputs, outputs, value_info


def _parse_node(reader, buffer):
    op_type, name, domain, inputs, outputs, attributes = "", "", "", [], [], {}
    what = "NodeProto"
    for number, wire, value in reader.fields(what, buffer):
        if number == 1:
            inputs.append(reader.expect_string(number, wire, value, what))
        elif number == 2:
            outputs.append(reader.expect_string(number, wire, value, what))
        elif number == 3:
            name = reader.expect_string(number, wire, value, what)
        elif number == 4:
            op_type = reader.expect_string(number, wire, value, what)
        elif number == 7:
            domain = reader.expect_string(number, wire, value, what)
        elif number == 5:
            key, attribute = _parse_attribute(reader, reader.expect_bytes(number, wire, value, what))
            attributes[key] = attribute
    if not op_type or not outputs:
        raise reader.error(what, f"node '{name}' has no op_type or no outputs (truncated file?)")
    return Node(op_type, name, "" if domain == "ai.onnx" else domain, inputs, outputs, attributes)


# AttributeProto.AttributeType codes of the kinds read here.
_ATTRIBUTE_GRAPH_TYPES = {5: "GRAPH", 10: "GRAPHS", 11: "SPARSE_TENSOR", 12: "SPARSE_TENSORS",
                          13: "TYPE_PROTO", 14: "TYPE_PROTOS"}


def _parse_attribute(reader, buffer):
    what = "AttributeProto"
    name, kind, scalar = "", None, None
    ints, floats, strings = [], [], []
    for number, wire, value in reader.fields(what, buffer):
        if number == 1:
            name = reader.expect_string(number, wire, value, what)
        elif number == 20:
            kind = reader.expect_int(number, wire, value, what)
        elif number == 2:
            scalar = reader.expect_float(number, wire, value, what)
        elif number == 3:
            scalar = reader.expect_int(number, wire, value, what)
        elif number == 4:
            scalar = bytes(reader.expect_bytes(number, wire, value, what))
        elif number == 5:
            scalar = _parse_tensor(reader, reader.expect_bytes(number, wire, value, what))[1]
        elif number == 7:
            floats += reader.repeated_floats(number, wire, value, what)
        elif number == 8:
            ints += reader.repeated_ints(number, wire, value, what)
        elif number == 9:
            strings.append(bytes(reader.expect_bytes(number, wire, value, what)))
        elif number in (6, 10, 11, 22, 23):
            kind = kind or {6: 5, 11: 10, 22: 11, 23: 12}.get(number, 9)
    if kind in _ATTRIBUTE_GRAPH_TYPES:
        raise reader.error(what, f"attribute '{name}' is a {_ATTRIBUTE_GRAPH_TYPES[kind]}, which facet does not read "
                                 "(control flow and sparse tensors are not supported)")
    # Type 6 = FLOATS, 7 = INTS, 8 = STRINGS; without a type (old files) the populated field decides.
    if kind == 6 or (kind is None and floats):
        return name, floats
    if kind == 7 or (kind is None and ints):
        return name, ints
    if kind == 8 or (kind is None and strings):
        return name, strings
    return name, scalar


def _parse_tensor(reader, buffer):
    what = "TensorProto"
    name, dims, data_type, raw = "", [], None, None
    float_data, int32_data, int64_data, double_data = [], [], [], []
    for number, wire, value in reader.fields(what, buffer):
        if number == 1:
            dims += reader.repeated_ints(number, wire, value, what)
        elif number == 2:
            data_type = reader.expect_int(number, wire, value, what)
        elif number == 8:
            name = reader.expect_string(number, wire, value, what)
        elif number == 9:
            raw = bytes(reader.expect_bytes(number, wire, value, what))
        elif number == 4:
            float_data += reader.repeated_floats(number, wire, value, what)
        elif number == 5:
            int32_data += reader.repeated_ints(number, wire, value, what)
        elif number == 7:
            int64_data += reader.repeated_ints(number, wire, value, what)
        elif number == 10:
            if wire == _FIXED64:
                double_data.append(struct.unpack("<d", value)[0])
            else:
                packed = reader.expect_bytes(number, wire, value, what)
                double_data += list(np.frombuffer(packed[:len(packed) // 8 * 8], dtype="<f8"))
        elif number in (13, 14):
            if number == 13 or reader.expect_int(number, wire, value, what) == 1:
                raise reader.error(what, f"tensor '{name}' keeps its data in an external file, which facet does not read")
    label = f"tensor '{name}'"
    if data_type not in TENSOR_TYPES:
        raise reader.error(what, f"{label} has type {TENSOR_TYPE_NAMES.get(data_type, data_type)}, which facet does not read")
    if any(d < 0 for d in dims):
        raise reader.error(what, f"{label} has a negative dimension {dims}")
    if len(dims) > MAX_TENSOR_RANK:
        raise reader.error(what, f"{label} has {len(dims)} dimensions, facet reads at most {MAX_TENSOR_RANK}")
    dtype = TENSOR_TYPES[data_type]
    count = math.prod(dims)  # exact: the data's length is checked against it before any array is made
    if raw is not None:
        if len(raw) != count * dtype.itemsize:
            raise reader.error(what, f"{label} holds {len(raw)} bytes, its shape {dims} needs {count * dtype.itemsize} "
                                     "(truncated file?)")
        array = np.frombuffer(raw, dtype=dtype).copy()
    else:
        # Typed fields: float in float_data; int8..int32, bool and float16 (as bits) in int32_data.
        values = {1: float_data, 11: double_data, 7: int64_data}.get(data_type, int32_data)
        if len(values) != count:
            raise reader.error(what, f"{label} holds {len(values)} values, its shape {dims} needs {count} (truncated file?)")
        # float16 travels as its bits; every integer type must hold its values (NumPy would wrap or raise).
        stored = np.dtype("<u2") if data_type == 10 else dtype
        if stored.kind in "iub" and values:
            low, high = (0, 1) if stored.kind == "b" else (np.iinfo(stored).min, np.iinfo(stored).max)
            if not (low <= min(values) and max(values) <= high):
                raise reader.error(what, f"{label} holds a value outside [{low}, {high}] of its type")
        array = np.array(values, dtype=stored).view(dtype)
    return name, array.reshape(dims)


def _parse_value_info(reader, buffer):
    what = "ValueInfoProto"
    name, elem_type, shape = "", None, None
    for number, wire, value in reader.fields(what, buffer):
        if number == 1:
            name = reader.expect_string(number, wire, value, what)
        elif number == 2:
            for type_number, type_wire, type_value in reader.fields("TypeProto", reader.expect_bytes(number, wire, value, what)):
                if type_number == 1:  # tensor_type
                    elem_type, shape = _parse_tensor_type(reader, reader.expect_bytes(type_number, type_wire, type_value, "TypeProto"))
    return ValueInfo(name, elem_type, shape)


def _parse_tensor_type(reader, buffer):
    elem_type, shape = None, None
    for number, wire, value in reader.fields("TypeProto.Tensor", buffer):
        if number == 1:
            elem_type = reader.expect_int(number, wire, value, "TypeProto.Tensor")
        elif number == 2:
            shape = []
            for dim_number, dim_wire, dim_value in reader.fields("TensorShapeProto", reader.expect_bytes(number, wire, value, "TypeProto.Tensor")):
                if dim_number == 1:
                    shape.append(_parse_dimension(reader, reader.expect_bytes(dim_number, dim_wire, dim_value, "TensorShapeProto")))
    return elem_type, shape


def _parse_dimension(reader, buffer):
    dim = "?"
    for number, wire, value in reader.fields("TensorShapeProto.Dimension", buffer):
        if number == 1:
            dim = reader.expect_int(number, wire, value, "TensorShapeProto.Dimension")
        elif number == 2:
            dim = reader.expect_string(number, wire, value, "TensorShapeProto.Dimension") or "?"
    return dim
