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
import sys

import numpy as np

from facetfile import write_facet

MAX_TENSOR_NAME_BYTES = 255  # weights/FORMAT.md


class GraphError(ValueError):
    """A graph facet cannot hold: a tensor with NaN or infinity, an op that does not fit."""


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
        array = np.ascontiguousarray(array, dtype=np.float32)
        if not np.all(np.isfinite(array)):
            raise GraphError(f"tensor {name} holds NaN or infinity")
        self.tensors[name] = array
        return name

    def add_op(self, op, name, output, shape, **fields):
        """Append op `op` writing value `output` of map shape `shape`; returns its record."""
        self.values[output] = list(shape)
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


USER_ERROR_STATUS = 2  # the converters' exit status for a bad input or usage


def run_converter(program, source, out, convert_call, other_errors=()):
    """A graph converter's command line around `convert_call()` -> (op count, tensor count): a model
    the user gave that cannot be converted (GraphError, naming `source`; or one of `other_errors`,
    whose messages name it already) or a file that cannot be read or written is one line on stderr
    and USER_ERROR_STATUS, never a traceback."""
    try:
        op_count, tensor_count = convert_call()
    except GraphError as error:
        message = f"{source}: {error}"
    except other_errors as error:
        message = str(error)
    except OSError as error:
        message = f"{error.filename}: {error.strerror}"
    else:
        print(f"{program}: wrote {out} ({op_count} ops, {tensor_count} tensors)")
        return 0
    print(f"{program}: error: {message}", file=sys.stderr)
    return USER_ERROR_STATUS
