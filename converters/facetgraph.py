#!/usr/bin/env python3
"""Building facet graphs (weights/FORMAT.md, model "graph"): what the converters that write them
share. onnx2facet builds one node by node from an ONNX file, tfjs2facet layer by layer from a
TensorFlow.js model (face-api's face_landmark_68), graph recipes of pth2facet (PFLD) layer by
layer from a state dict. NumPy and the standard library only.

A graph is a list of ops in execution order, the float32 tensors they name (`<op>.<role>`), and
the map shape [h, w, c] of every value an op writes; `graph_metadata` assembles FORMAT.md's
`graph` object from them.
"""

import math

import numpy as np

from cli import ConverterError
from facetfile import write_facet

MAX_TENSOR_NAME_BYTES = 255  # weights/FORMAT.md
# The graph loader's limits (include/facet/models/graph.hpp): every dim of a value and every kernel,
# stride, pad and dilation at most 2^24; a value's map, with its one-pixel border and channels
# padded to 16, at most 2^28 floats (1 GiB).
MAX_GRAPH_INT = 1 << 24
MAX_VALUE_FLOATS = 1 << 28
CHANNEL_ALIGN = 16
GEOMETRY_FIELDS = ("kernel", "stride", "pads", "dilation")


class GraphError(ConverterError):
    """A graph facet cannot hold: a value or an op beyond the graph loader's limits, an op that does not fit."""


def check_value_shape(name, shape):
    """Refuse a value map [h, w, c] that the graph loader would."""
    if len(shape) != 3 or not all(1 <= d <= MAX_GRAPH_INT for d in shape):
        raise GraphError(f"value {name} has shape {list(shape)}; facet's graphs hold maps [h, w, c] of 1 .. "
                         f"{MAX_GRAPH_INT} each")
    h, w, c = shape
    floats = (h + 2) * (w + 2) * -(-c // CHANNEL_ALIGN) * CHANNEL_ALIGN
    if floats > MAX_VALUE_FLOATS:
        raise GraphError(f"value {name} of shape {list(shape)} needs {floats * 4} bytes, more than facet's limit "
                         f"of 1 GiB a map")


def window_count(size, kernel, stride, pad_begin, pad_end, dilation=1, ceil_mode=False):
    """Output size of a convolution or pooling window sliding over `size` (ONNX / PyTorch rule)."""
    span = size + pad_begin + pad_end - (dilation * (kernel - 1) + 1)
    if span < 0:
        return 0
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    # Ceil mode keeps a last partial window only when it starts inside the input or its left pad.
    if ceil_mode and (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


def same_pads(in_hw, kernel, strides, dilations=(1, 1), larger_at_end=True):
    """[top, left, bottom, right] for "same" padding: ceil(size / stride) outputs, the total pad split
    in two with the odd pixel at the end (TensorFlow's "same", ONNX SAME_UPPER) or at the start
    (SAME_LOWER). At stride 2 on an even size that is 0 before and 1 after for a 3x3 kernel."""
    begin, end = [], []
    for size, k, s, d in zip(in_hw, kernel, strides, dilations):
        total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small, large = total // 2, total - total // 2
        begin.append(small if larger_at_end else large)
        end.append(large if larger_at_end else small)
    return [begin[0], begin[1], end[0], end[1]]


class GraphBuilder:
    def __init__(self):
        self.ops = []        # op records as FORMAT.md writes them, in execution order
        self.tensors = {}    # tensor name -> float32 array
        self.values = {}     # value name -> map shape [h, w, c]
        self.constants = {}  # constant value name -> its tensor's name
        self._op_names = set()

    def unique_op_name(self, base):
        """`base`, or `base_2`, `base_3` ... when an op already has that name."""
        name, k = base, 1
        while name in self._op_names:
            k += 1
            name = f"{base}_{k}"
        self._op_names.add(name)
        return name

    def tensor(self, op_name, role, array):
        """Store `array` as float32 under `<op_name>.<role>` (shortened when the format's name limit
        would cut it); returns the tensor's name."""
        name = f"{op_name}.{role}"
        if len(name.encode("utf-8")) > MAX_TENSOR_NAME_BYTES:
            name = f"op{len(self.ops)}.{role}"
        self.tensors[name] = np.ascontiguousarray(array, dtype=np.float32)
        return name

    def define_value(self, name, shape):
        """Value `name` is a map of shape [h, w, c] (refused beyond the graph loader's limits)."""
        check_value_shape(name, shape)
        self.values[name] = [int(d) for d in shape]

    def add_op(self, op, name, output, shape, **fields):
        """Append op `op` writing value `output` of map shape `shape`; returns its record."""
        for key in GEOMETRY_FIELDS:
            if key in fields and not all(0 <= v <= MAX_GRAPH_INT for v in fields[key]):
                raise GraphError(f"op {name}: {key} {list(fields[key])} beyond facet's limit of {MAX_GRAPH_INT}")
        self.define_value(output, shape)
        record = {"op": op, "name": name, "output": output, **fields}
        self.ops.append(record)
        return record

    def graph_metadata(self, input_name, input_onnx_shape, outputs):
        """FORMAT.md's `graph` object for `outputs` (FORMAT.md's output records)."""
        return {
            "input": {"name": input_name, "onnx_shape": list(input_onnx_shape)},
            "outputs": outputs,
            "values": dict(self.values),
            "constants": dict(self.constants),
            "ops": list(self.ops),
        }


def write_graph_file(path, converter, source, input_spec, graph, tensors, extra=None):
    """Write a facet graph file: `source` is the list of {"file", "sha256", ...} of what was read,
    `input_spec` {"color", "mean", "scale"}, `graph` the "graph" object of FORMAT.md and `tensors`
    the float32 arrays its ops name; `extra` adds top-level metadata keys (e.g. "landmarks")."""
    metadata = {
        "format": "facet",
        "model": "graph",
        "converter": converter,
        "source": source,
        "input": input_spec,
        "graph": graph,
        **(extra or {}),
    }
    write_facet(path, metadata, tensors)
