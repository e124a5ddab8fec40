#!/usr/bin/env python3
"""Convert an ONNX model into a facet graph file (weights/FORMAT.md, model "graph"), NumPy only.

    onnx2facet.py --out OUT.facet (--color rgb|bgr --mean M,M,M --scale S,S,S | --raw-pixels)
                  [--input-shape 1,3,H,W] MODEL.onnx

An ONNX file does not record how its input was prepared, so the colour order, mean and scale must be
given (or --raw-pixels for a model that takes 0..255 RGB pixels as they are): a wrong guess would
convert without complaint and put every output off.

The graph is checked node by node against what facet's graph executor (include/facet/models/
graph.hpp) runs: every operator and every attribute value it does not support is refused, naming
the node. Shapes are inferred here, from the input's static shape, and written for every value,
so the engine only checks them. On the way:
- shape arithmetic on constants (Shape, Gather, Slice, Concat, Unsqueeze, Cast, ... as exporters
  write around Reshape and Resize) is evaluated, and Identity / Dropout are removed;
- BatchNormalization after a Conv is folded into it; Relu, LeakyRelu, PRelu and Clip(0, inf) after
  a Conv or Gemm become its epilogue;
- Reshape / Flatten / Squeeze that keep the engine's layout (NHWC maps, see FORMAT.md) cost nothing,
  the others become a copy (flatten), and Transpose(0, 2, 3, 1) + Reshape to [1, -1, K] (how
  detection heads lay out per-anchor outputs) becomes one copy into rows of K.

Exit status: 0 on success, 2 for anything wrong with the command line or the model, reported on
one line as "onnx2facet: error: ..." with no traceback.
"""

import argparse
import hashlib
import math
import sys
from pathlib import Path

import numpy as np

from cli import read_regular_file, run_converter
from facetgraph import GraphBuilder, GraphError, check_value_shape, same_pads, window_count, write_graph_file
from onnxproto import TENSOR_TYPE_NAMES, parse_model

PROGRAM = "onnx2facet"
OPSET_RANGE = (7, 18)  # default-domain opsets whose operator semantics are handled below

# What the graph executor computes (the facet ops, FORMAT.md), and the ONNX operators that become them.
SUPPORTED_OPERATORS = (
    "Conv", "BatchNormalization (after a Conv)", "Relu", "LeakyRelu", "PRelu", "Clip", "Sigmoid", "Add", "Mul",
    "Concat", "AveragePool", "MaxPool", "GlobalAveragePool", "GlobalMaxPool", "Gemm", "MatMul (by a constant)",
    "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose (0, 2, 3, 1, before a Reshape)", "Resize / Upsample (nearest)",
    "Softmax", "Identity", "Dropout", "and shape arithmetic on constants")


class ConversionError(GraphError):
    pass


# The kind of value every attribute the converter reads must have (onnx.proto's AttributeType, as
# onnxproto returns it). Checked for every node before any handler reads one, so a file that gives
# `kernel_shape=2` or `mode=1` is refused by name instead of failing inside a handler.
ATTRIBUTE_KINDS = {
    **dict.fromkeys(("kernel_shape", "strides", "pads", "dilations", "perm", "axes", "starts", "ends", "value_ints"),
                    "ints"),
    **dict.fromkeys(("group", "axis", "allowzero", "transA", "transB", "ceil_mode", "count_include_pad",
                     "storage_order", "spatial", "training_mode", "exclude_outside", "to", "start", "end",
                     "value_int"), "int"),
    **dict.fromkeys(("alpha", "beta", "epsilon", "momentum", "min", "max", "cubic_coeff_a", "extrapolation_value",
                     "value_float"), "float"),
    **dict.fromkeys(("scales", "value_floats"), "floats"),
    **dict.fromkeys(("mode", "auto_pad", "coordinate_transformation_mode", "nearest_mode"), "string"),
    "value": "tensor",
}


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_float(value):
    return isinstance(value, (float, np.floating))


def _is_ascii(value):
    return isinstance(value, bytes) and value.isascii()


_KIND_CHECKS = {
    "int": _is_int, "float": _is_float, "string": _is_ascii, "tensor": lambda v: isinstance(v, np.ndarray),
    "ints": lambda v: isinstance(v, list) and all(map(_is_int, v)),
    "floats": lambda v: isinstance(v, list) and all(map(_is_float, v)),
}
_KIND_NAMES = {"int": "an integer", "float": "a float", "string": "an ASCII string", "tensor": "a tensor",
               "ints": "a list of integers", "floats": "a list of floats"}


def check_attribute_kinds(node):
    for key, value in node.attributes.items():
        kind = ATTRIBUTE_KINDS.get(key)
        if kind is not None and not _KIND_CHECKS[kind](value):
            shown = repr(value) if len(repr(value)) <= 40 else f"a {type(value).__name__}"
            raise ConversionError(f"{node.describe()}: attribute '{key}' is {shown}, expected {_KIND_NAMES[kind]}")


# ---------------------------------------------------------------------------------------------
# Layouts. Every activation is stored by the engine as one NHWC feature map (h, w, c); the ONNX
# shape and the layout say how its elements map to (y, x, channel):
#   nchw  [1, C, H, W]  -> (H, W, C)      a feature map
#   nhwc  [1, H, W, C]  -> (H, W, C)      the same map after Transpose(0, 2, 3, 1)
#   rows  [1, R, K]     -> (R, 1, K)      R rows of K values (per-anchor outputs)
#   flat  [1, F]        -> (1, 1, F)      a vector (Gemm input and output)
# A [1, C, 1, 1] map and a [1, C] vector are the same bytes, so reshaping one into the other is free.


def map_shape(shape, layout):
    if layout == "nchw":
        return [shape[2], shape[3], shape[1]]
    if layout == "nhwc":
        return [shape[1], shape[2], shape[3]]
    if layout == "rows":
        return [shape[1], 1, shape[2]]
    return [1, 1, shape[1]]


def layout_of(shape):
    """The layout a freshly computed ONNX shape is stored in (None when the engine has none)."""
    if not shape or shape[0] != 1:
        return None
    return {4: "nchw", 3: "rows", 2: "flat"}.get(len(shape))


class Value:
    """How an ONNX value is seen: its ONNX shape and the layout that maps it onto a stored map."""

    def __init__(self, shape, layout):
        self.shape = list(shape)
        self.layout = layout

    @property
    def map(self):
        return map_shape(self.shape, self.layout)

    @property
    def channel_axis(self):
        return {"nchw": 1, "nhwc": 3, "rows": 2, "flat": 1}[self.layout]


# ---------------------------------------------------------------------------------------------
# Conversion state


class Converter(GraphBuilder):
    """Walks the ONNX graph once, in topological order, and builds the facet graph.

    Every ONNX activation is a view of one stored map (a facet value, in `values`): `views` maps its
    name to (stored value name, Value). Several ONNX names can view one stored map under different
    shapes (a Reshape that keeps the layout, a Transpose to NHWC); facet ops read and write stored
    values. Constant operands are stored values too (`constants`).
    """

    def __init__(self, model, input_shape=None):
        super().__init__()
        self.model = model
        self.opset = model.opsets.get("", None)
        self.constants = dict(model.initializers)  # name -> np.ndarray (initializers and folded values)
        self.views = {}  # ONNX activation name -> (stored value name, Value)
        self.producer = {}  # stored value name -> the facet op that writes it
        self.uses = self._count_uses()
        self.folded_elements = 0  # of the constants fold() computed, bounded by MAX_FOLDED_TOTAL
        self._check_opsets()
        self._read_input(input_shape)

    # -- setup ---------------------------------------------------------------------------------

    def _check_opsets(self):
        if self.opset is None:
            raise ConversionError("the model imports no default-domain (ai.onnx) opset")
        low, high = OPSET_RANGE
        if not low <= self.opset <= high:
            raise ConversionError(f"opset {self.opset} is not supported (facet reads opsets {low} .. {high})")

    def _count_uses(self):
        """Readers of each value, a graph output counting as one."""
        uses = {}
        for node in self.model.nodes:
            for name in node.inputs:
                if name:
                    uses[name] = uses.get(name, 0) + 1
        for output in self.model.outputs:
            uses[output.name] = uses.get(output.name, 0) + 1
        return uses

    def _read_input(self, input_shape):
        inputs = self.model.inputs
        if len(inputs) != 1:
            raise ConversionError(f"the graph has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                                  "facet runs graphs with one image input")
        info = inputs[0]
        if info.elem_type != 1:
            raise ConversionError(f"input '{info.name}' is {TENSOR_TYPE_NAMES.get(info.elem_type, info.elem_type)}, "
                                  "expected float")
        shape = input_shape or info.shape
        if shape is None or any(not isinstance(d, int) or d < 1 for d in shape):
            raise ConversionError(f"input '{info.name}' has shape {info.shape}, not fixed: give --input-shape 1,C,H,W")
        if info.shape is not None and len(info.shape) == len(shape):
            for given, declared in zip(shape, info.shape):
                if isinstance(declared, int) and declared != given:
                    raise ConversionError(f"--input-shape {shape} contradicts the model's input shape {info.shape}")
        if len(shape) != 4 or shape[0] != 1:
            raise ConversionError(f"input '{info.name}' has shape {shape}; facet runs [1, C, H, W] image inputs")
        self.input_name = info.name
        self.views[info.name] = (info.name, Value(shape, "nchw"))
        self.define_value(info.name, self.views[info.name][1].map)

    # -- helpers used by the operator handlers ------------------------------------------------

    def constant(self, node, index, what, required=True):
        """The constant input `index` of `node` (None when absent and optional)."""
        name = node.inputs[index] if index < len(node.inputs) else ""
        if not name:
            if required:
                raise ConversionError(f"{node.describe()} has no {what}")
            return None
        if name not in self.constants:
            raise ConversionError(f"{node.describe()}: its {what} ('{name}') must be a constant, "
                                  "facet does not compute it at run time")
        return self.constants[name]

    def activation(self, node, index=0):
        """(stored value name, Value) of the activation input `index` of `node`."""
        name = node.inputs[index] if index < len(node.inputs) else ""
        if name not in self.views:
            raise ConversionError(f"{node.describe()} reads '{name}', which is a constant here: "
                                  "facet runs operators on the input's activations only")
        return self.views[name]

    def attributes(self, node, allowed):
        """node.attributes over the defaults in `allowed`, refusing any attribute not in it."""
        for key in node.attributes:
            if key not in allowed:
                raise ConversionError(f"{node.describe()}: attribute '{key}' is not supported")
        return {**allowed, **node.attributes}

    def single_use(self, stored):
        """True when the stored value has exactly one reader (neither other nodes nor an output)."""
        return self.uses.get(stored, 0) == 1

    def make_view(self, node, stored, value):
        """node's output is `stored` seen as `value`: no op, no copy."""
        out = node.outputs[0]
        self.views[out] = (stored, value)
        # Whoever reads `out` reads `stored`; its read by `node` itself is gone.
        self.uses[stored] = self.uses.get(stored, 0) - 1 + self.uses.get(out, 0)

    def op_name(self, node):
        return self.unique_op_name(node.name or node.outputs[0])

    def emit(self, node, op, shape, layout, **fields):
        """Append facet op `op` computing node's output, of ONNX shape `shape` in `layout`."""
        out = node.outputs[0]
        if layout is None or any(d < 1 for d in shape):
            raise ConversionError(f"{node.describe()} would produce shape {shape}, which facet cannot hold")
        value = Value(shape, layout)
        self.views[out] = (out, value)
        record = self.add_op(op, fields.pop("name", None) or self.op_name(node), out, value.map, **fields)
        self.producer[out] = record
        return record

    def constant_operand(self, node, array, value):
        """A constant operand of a binary op broadcast against `value`, as a stored value: one pixel
        when it is the same at every pixel (per-channel or scalar), else a whole map."""
        if array.dtype.kind not in "fiu":
            raise ConversionError(f"{node.describe()}: a {array.dtype} constant operand is not supported")
        full = np.broadcast_to(array.astype(np.float32), value.shape)
        full = full[0].transpose(1, 2, 0) if value.layout == "nchw" else full.reshape(value.map)
        pixels = full.reshape(-1, value.map[2])
        stored = pixels[:1].reshape(1, 1, -1) if np.all(pixels == pixels[0]) else full
        name = f"{self.op_name(node)}.operand"
        self.constants[name] = self.tensor(name, "value", stored)
        self.define_value(name, stored.shape)
        return name

    # -- the conversion -------------------------------------------------------------------------

    def run(self):
        for node in topological_order(self.model, self.input_name):
            if node.domain:
                raise ConversionError(f"{node.describe()} is in domain '{node.domain}'; facet supports the default "
                                      "ONNX domain only")
            check_attribute_kinds(node)
            if node.op_type in FOLDABLE and all(not name or name in self.constants for name in node.inputs):
                fold(self, node)
            elif node.op_type in HANDLERS:
                HANDLERS[node.op_type](self, node)
            else:
                raise ConversionError(f"unsupported operator {node.op_type} ({node.describe()}); facet supports "
                                      f"{', '.join(SUPPORTED_OPERATORS)}")
        return self._graph_metadata()

    def _graph_metadata(self):
        outputs = []
        for info in self.model.outputs:
            if info.name not in self.views:
                raise ConversionError(f"graph output '{info.name}' is a constant; facet graphs output activations")
            stored, value = self.views[info.name]
            if stored == self.input_name:
                raise ConversionError(f"graph output '{info.name}' is the input itself")
            outputs.append({"name": info.name, "value": stored, "onnx_shape": value.shape,
                            "order": storage_order(value.shape, value.layout)})
        live = self._live({o["value"] for o in outputs})
        self.ops = [op for op in self.ops if op["output"] in live]
        self.values = {name: shape for name, shape in self.values.items() if name in live}
        self.constants = {name: tensor for name, tensor in self.constants.items() if name in live}
        referenced = {name for op in self.ops for name in op_tensors(op)} | set(self.constants.values())
        self.tensors = {name: array for name, array in self.tensors.items() if name in referenced}
        return self.graph_metadata(self.input_name, self.views[self.input_name][1].shape, outputs)

    def _live(self, outputs):
        """Stored values the outputs depend on: ops computing nothing an output needs are dropped."""
        live = set(outputs) | {self.input_name}
        for op in reversed(self.ops):
            if op["output"] in live:
                live.update(op_inputs(op))
        return live


def op_inputs(op):
    return op["inputs"] if "inputs" in op else [op["input"]]


def op_tensors(op):
    names = [op[role] for role in ("weight", "bias") if role in op]
    if op.get("activation", {}).get("kind") == "prelu":
        names.append(op["activation"]["slopes"])
    return names


def storage_order(shape, layout):
    """How a value's ONNX (C-order) elements run through its map: "chw" when channel-major."""
    return "chw" if layout == "nchw" and shape[2] * shape[3] > 1 else "hwc"


def topological_order(model, input_name):
    """The nodes in an order where every node follows the producers of its inputs."""
    available = set(model.initializers) | {input_name, ""}
    producers = {}
    for index, node in enumerate(model.nodes):
        for out in node.outputs:
            if out in producers or out in available:
                raise ConversionError(f"value '{out}' is produced twice (by {node.describe()})")
            producers[out] = index
    order, state = [], [0] * len(model.nodes)  # 0 = not seen, 1 = on the stack, 2 = placed
    for start in range(len(model.nodes)):
        stack = [(start, 0)]
        while stack:
            index, next_input = stack.pop()
            node = model.nodes[index]
            if next_input == 0:
                if state[index] == 2:
                    continue
                state[index] = 1
            if next_input < len(node.inputs):
                stack.append((index, next_input + 1))
                name = node.inputs[next_input]
                if name in available:
                    continue
                if name not in producers:
                    raise ConversionError(f"{node.describe()} reads '{name}', which no node produces "
                                          "(truncated or incomplete model?)")
                dependency = producers[name]
                if state[dependency] == 1:
                    raise ConversionError(f"the graph has a cycle through {node.describe()}")
                if state[dependency] == 0:
                    stack.append((dependency, 0))
                continue
            state[index] = 2
            order.append(node)
    for output in model.outputs:
        if output.name not in producers and output.name not in available:
            raise ConversionError(f"graph output '{output.name}' is produced by no node (truncated or incomplete model?)")
    return order


# ---------------------------------------------------------------------------------------------
# Constant folding: shape arithmetic exporters write around Reshape and Resize.


def integers(node, array, what):
    """The values of a constant that holds a shape, axes or indices, as Python ints: refused unless
    it is an integer tensor (as ONNX requires; a float one could hold infinity)."""
    array = np.asarray(array)
    if array.dtype.kind not in "iu":
        raise ConversionError(f"{node.describe()}: its {what} is a {array.dtype} tensor, expected integers")
    return [int(v) for v in array.reshape(-1)]


def scalar(node, array, what):
    """The value of a one-element numeric constant, as a Python float."""
    array = np.asarray(array)
    if array.size != 1 or array.dtype.kind not in "fiu":
        raise ConversionError(f"{node.describe()}: its {what} is a {array.dtype} tensor of shape {list(array.shape)}, "
                              "expected one number")
    return float(array.reshape(-1)[0])


def _axes(node, converter, index):
    """Axes from the attribute (older opsets) or the input `index` (newer)."""
    if "axes" in node.attributes:
        return list(node.attributes["axes"])
    axes = converter.constant(node, index, "axes", required=False)
    return None if axes is None else integers(node, axes, "axes")


def _fold_slice(converter, node, data):
    if converter.opset < 10:
        starts, ends = node.attributes["starts"], node.attributes["ends"]
        axes = node.attributes.get("axes", list(range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts = integers(node, converter.constant(node, 1, "starts"), "starts")
        ends = integers(node, converter.constant(node, 2, "ends"), "ends")
        axes_input = converter.constant(node, 3, "axes", required=False)
        steps_input = converter.constant(node, 4, "steps", required=False)
        axes = list(range(len(starts))) if axes_input is None else integers(node, axes_input, "axes")
        steps = [1] * len(starts) if steps_input is None else integers(node, steps_input, "steps")
    index = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        # INT64 max / min stand for "to the end"; Python slicing clamps them.
        index[axis] = slice(start, end, step)
    return data[tuple(index)]


def _fold_constant(converter, node, _):
    attributes = node.attributes
    if "value" in attributes:
        return np.asarray(attributes["value"])
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                       ("value_ints", np.int64)):
        if key in attributes:
            return np.array(attributes[key], dtype=dtype)
    raise ConversionError(f"{node.describe()}: only tensor and number constants are supported")


_CAST_TYPES = {1: np.float32, 6: np.int32, 7: np.int64, 9: np.bool_, 11: np.float64}


def _fold_cast(converter, node, data):
    to = node.attributes.get("to")
    if to not in _CAST_TYPES:
        raise ConversionError(f"{node.describe()}: cast to {TENSOR_TYPE_NAMES.get(to, to)} is not supported")
    return data.astype(_CAST_TYPES[to])


def _fold_squeeze(converter, node, data):
    axes = _axes(node, converter, 1)
    return np.squeeze(data, axis=None if axes is None else tuple(axes))


def _fold_unsqueeze(converter, node, data):
    axes = _axes(node, converter, 1)
    out = data
    for axis in sorted(a % (data.ndim + len(axes)) for a in axes):
        out = np.expand_dims(out, axis)
    return out


def _fold_reshape(converter, node, data):
    return data.reshape(reshape_target(node, data.shape, converter.constant(node, 1, "shape")))


# Constants computed here are shape arithmetic or small operands: one over 2^24 elements (64 MB of
# float32) is refused before it is allocated, whatever a 200-byte file asks for, and so are more
# than 2^26 in all (many such constants).
MAX_FOLDED_ELEMENTS = 1 << 24
MAX_FOLDED_TOTAL = 1 << 26


def _check_folded_size(node, shape):
    count = math.prod(shape)
    if count > MAX_FOLDED_ELEMENTS:
        raise ConversionError(f"{node.describe()} would compute a constant of shape {list(shape)} ({count} elements); "
                              f"facet evaluates constants of at most {MAX_FOLDED_ELEMENTS} elements")


def _fold_constant_of_shape(converter, node, shape):
    dims = integers(node, shape, "shape")
    if any(d < 0 for d in dims):
        raise ConversionError(f"{node.describe()}: negative shape {dims}")
    _check_folded_size(node, dims)
    value = np.asarray(node.attributes.get("value", np.zeros(1, np.float32)))
    if value.size != 1:
        raise ConversionError(f"{node.describe()}: its value has {value.size} elements, expected one")
    return np.full(dims, value.reshape(-1)[0], dtype=value.dtype)


def _fold_gather(converter, node, data):
    indices = converter.constants[node.inputs[1]]
    axis = node.attributes.get("axis", 0)
    if not -data.ndim <= axis < data.ndim:
        raise ConversionError(f"{node.describe()}: axis {axis} of a rank-{data.ndim} constant")
    axis %= data.ndim
    _check_folded_size(node, data.shape[:axis] + indices.shape + data.shape[axis + 1:])
    return np.take(data, indices, axis=axis)


def _binary(function):
    def folded(converter, node, a):
        b = converter.constants[node.inputs[1]]
        _check_folded_size(node, np.broadcast_shapes(a.shape, b.shape))
        return function(a, b)
    return folded


FOLDABLE = {
    "Constant": _fold_constant,
    "Identity": lambda converter, node, data: data,
    "Cast": _fold_cast,
    "Gather": _fold_gather,
    "Unsqueeze": _fold_unsqueeze,
    "Squeeze": _fold_squeeze,
    "Concat": lambda converter, node, data: np.concatenate([converter.constants[n] for n in node.inputs],
                                                           axis=node.attributes["axis"]),
    "Slice": _fold_slice,
    "Reshape": _fold_reshape,
    "ConstantOfShape": _fold_constant_of_shape,
    "Add": _binary(np.add),
    "Sub": _binary(np.subtract),
    "Mul": _binary(np.multiply),
    "Div": _binary(lambda a, b: a // b if a.dtype.kind in "iu" else a / b),
    "Floor": lambda converter, node, data: np.floor(data),
    "Ceil": lambda converter, node, data: np.ceil(data),
    "Shape": lambda converter, node, data: _shape_slice(node, data.shape),
}


def fold(converter, node):
    data = converter.constants[node.inputs[0]] if node.inputs and node.inputs[0] else None
    try:
        result = FOLDABLE[node.op_type](converter, node, data)
    except (KeyError, IndexError, ValueError, TypeError) as error:
        if isinstance(error, ConversionError):
            raise
        raise ConversionError(f"{node.describe()}: cannot evaluate it on its constant inputs ({error})") from None
    result = np.asarray(result)
    converter.folded_elements += result.size
    if converter.folded_elements > MAX_FOLDED_TOTAL:
        raise ConversionError(f"{node.describe()}: the constants computed so far hold {converter.folded_elements} "
                              f"elements; facet evaluates at most {MAX_FOLDED_TOTAL} in all")
    converter.constants[node.outputs[0]] = result


def _shape_slice(node, shape):
    start, end = node.attributes.get("start", 0), node.attributes.get("end", len(shape))
    return np.array(list(shape)[start:end], dtype=np.int64)


def handle_shape(converter, node):
    """The shape of an activation is known here: a constant."""
    converter.constants[node.outputs[0]] = _shape_slice(node, converter.activation(node)[1].shape)


# ---------------------------------------------------------------------------------------------
# Operators the engine computes


def _spatial_pads(node, attributes, in_hw, kernel, strides, dilations):
    """[top, left, bottom, right] from pads or auto_pad."""
    auto_pad = attributes.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad == "NOTSET":
        pads = list(attributes.get("pads") or [0, 0, 0, 0])
        if len(pads) != 4:
            raise ConversionError(f"{node.describe()}: pads {pads} are not 2-D")
        if min(pads) < 0:
            raise ConversionError(f"{node.describe()}: negative pads {pads}")
        return pads
    if auto_pad == "VALID":
        return [0, 0, 0, 0]
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise ConversionError(f"{node.describe()}: auto_pad {auto_pad} is not supported")
    return same_pads(in_hw, kernel, strides, dilations, larger_at_end=auto_pad == "SAME_UPPER")


def _pair(node, attributes, key, default):
    value = attributes.get(key)
    value = [default, default] if value is None else list(value)
    if len(value) != 2 or any(not isinstance(v, int) or v < 1 for v in value):
        raise ConversionError(f"{node.describe()}: {key} {value} are not two positive numbers "
                              "(facet runs 2-D convolutions and pools)")
    return value


def _map_input(converter, node):
    name, value = converter.activation(node)
    if value.layout != "nchw":
        raise ConversionError(f"{node.describe()} needs a [1, C, H, W] map, its input has shape {value.shape}")
    return name, value


def handle_conv(converter, node):
    name, value = _map_input(converter, node)
    attributes = converter.attributes(node, {"kernel_shape": None, "strides": None, "pads": None, "dilations": None,
                                             "group": 1, "auto_pad": b"NOTSET"})
    weight = converter.constant(node, 1, "weight").astype(np.float32)
    bias = converter.constant(node, 2, "bias", required=False)
    if weight.ndim != 4:
        raise ConversionError(f"{node.describe()}: weight shape {list(weight.shape)} is not a 2-D convolution's")
    cout, cin_per_group, kh, kw = weight.shape
    groups, cin = attributes["group"], value.shape[1]
    if groups < 1 or cin % groups or cout % groups or cin // groups != cin_per_group:
        raise ConversionError(f"{node.describe()}: weight {list(weight.shape)} with group={groups} does not fit "
                              f"{cin} input channels")
    if attributes["kernel_shape"] is not None and list(attributes["kernel_shape"]) != [kh, kw]:
        raise ConversionError(f"{node.describe()}: kernel_shape {attributes['kernel_shape']} differs from the weight's")
    strides = _pair(node, attributes, "strides", 1)
    dilations = _pair(node, attributes, "dilations", 1)
    pads = _spatial_pads(node, attributes, value.shape[2:], [kh, kw], strides, dilations)
    out_h = window_count(value.shape[2], kh, strides[0], pads[0], pads[2], dilations[0])
    out_w = window_count(value.shape[3], kw, strides[1], pads[1], pads[3], dilations[1])
    if bias is not None and bias.shape != (cout,):
        raise ConversionError(f"{node.describe()}: bias shape {list(bias.shape)}, expected [{cout}]")
    op_name = converter.op_name(node)
    fields = {"input": name, "weight": converter.tensor(op_name, "weight", weight), "groups": groups,
              "kernel": [kh, kw], "stride": strides, "pads": pads, "dilation": dilations,
              "activation": {"kind": "none"}}
    if bias is not None:
        fields["bias"] = converter.tensor(op_name, "bias", bias)
    converter.emit(node, "conv", [1, cout, out_h, out_w], "nchw", name=op_name, **fields)


def handle_batch_normalization(converter, node):
    name, value = converter.activation(node)
    conv = converter.producer.get(name)
    if conv is None or conv["op"] != "conv" or conv["activation"]["kind"] != "none" or not converter.single_use(name):
        raise ConversionError(f"{node.describe()}: facet folds BatchNormalization into the Conv before it; "
                              "this one does not follow a Conv whose only reader it is")
    attributes = converter.attributes(node, {"epsilon": 1e-5, "momentum": 0.9, "spatial": 1, "training_mode": 0})
    if attributes["training_mode"] or attributes["spatial"] != 1 or any(node.outputs[1:]):
        raise ConversionError(f"{node.describe()}: only inference-mode BatchNormalization is supported")
    gamma, beta, mean, var = (converter.constant(node, i, what).astype(np.float64)
                              for i, what in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")))
    scale = gamma / np.sqrt(var + attributes["epsilon"])
    weight = converter.tensors[conv["weight"]].astype(np.float64)
    bias = converter.tensors[conv["bias"]].astype(np.float64) if "bias" in conv else np.zeros(weight.shape[0])
    converter.tensors[conv["weight"]] = (weight * scale[:, None, None, None]).astype(np.float32)
    conv["bias"] = converter.tensor(conv["name"], "bias", (bias - mean) * scale + beta)
    converter.make_view(node, name, value)


def _activation_spec(converter, node, value):
    """The activation `node` computes, as FORMAT.md writes it (PReLU slopes as an array here)."""
    op = node.op_type
    if op in ("Relu", "Sigmoid"):
        converter.attributes(node, {})
        return {"kind": op.lower()}
    if op == "LeakyRelu":
        return {"kind": "leaky_relu", "slope": float(converter.attributes(node, {"alpha": 0.01})["alpha"])}
    if op == "PRelu":
        converter.attributes(node, {})
        slope = converter.constant(node, 1, "slope").astype(np.float32)
        channels = value.map[2]
        if slope.size == 1:
            return {"kind": "prelu", "slopes": np.full(channels, slope.reshape(-1)[0], np.float32)}
        rank = len(value.shape)
        padded = [1] * (rank - slope.ndim) + list(slope.shape)
        if slope.ndim > rank or slope.size != channels or padded[value.channel_axis] != channels:
            raise ConversionError(f"{node.describe()}: slope shape {list(slope.shape)} is not one per channel")
        return {"kind": "prelu", "slopes": slope.reshape(-1)}
    # Clip: bounds as attributes (opset < 11) or optional constant inputs.
    if converter.opset < 11:
        attributes = converter.attributes(node, {"min": -math.inf, "max": math.inf})
        low, high = attributes["min"], attributes["max"]
    else:
        converter.attributes(node, {})
        low_input = converter.constant(node, 1, "min", required=False)
        high_input = converter.constant(node, 2, "max", required=False)
        low = -math.inf if low_input is None else scalar(node, low_input, "min")
        high = math.inf if high_input is None else scalar(node, high_input, "max")
    if low == 0 and high == math.inf:
        return {"kind": "relu"}
    if not low <= high:
        raise ConversionError(f"{node.describe()}: min {low} is above max {high}")
    return {"kind": "clip", "min": max(low, -3.0e38), "max": min(high, 3.0e38)}


def handle_activation(converter, node):
    name, value = converter.activation(node)
    spec = _activation_spec(converter, node, value)
    producer = converter.producer.get(name)
    # A conv's or dense layer's epilogue applies ReLU, leaky ReLU with 0 <= slope <= 1 (a max) and PReLU.
    fusable = spec["kind"] in ("relu", "prelu") or (spec["kind"] == "leaky_relu" and 0 <= spec["slope"] <= 1)
    if fusable and producer is not None and producer["op"] in ("conv", "dense") \
            and producer["activation"]["kind"] == "none" and converter.single_use(name):
        if spec["kind"] == "prelu":
            spec["slopes"] = converter.tensor(producer["name"], "slopes", spec["slopes"])
        producer["activation"] = spec
        converter.make_view(node, name, value)
        return
    op_name = converter.op_name(node)
    if spec["kind"] == "prelu":
        spec["slopes"] = converter.tensor(op_name, "slopes", spec["slopes"])
    converter.emit(node, "activation", value.shape, value.layout, name=op_name, input=name, activation=spec)


def handle_binary(converter, node):
    converter.attributes(node, {})
    if len(node.inputs) != 2:
        raise ConversionError(f"{node.describe()} has {len(node.inputs)} inputs, expected 2")
    shapes = [converter.views[n][1].shape if n in converter.views else list(converter.constants[n].shape)
              for n in node.inputs]
    activations = [i for i, n in enumerate(node.inputs) if n in converter.views]
    # The operand of the output's shape is the one the other broadcasts against (Add and Mul commute).
    try:
        out_shape = list(np.broadcast_shapes(*map(tuple, shapes)))
    except ValueError:
        raise ConversionError(f"{node.describe()}: shapes {shapes[0]} and {shapes[1]} do not broadcast") from None
    full = [i for i in activations if shapes[i] == out_shape]
    if not full:
        raise ConversionError(f"{node.describe()}: broadcasting {shapes} to {out_shape} is not supported")
    first = full[0]
    name, value = converter.activation(node, first)
    other = node.inputs[1 - first]
    if other in converter.views:
        other_name, other_value = converter.views[other]
        if other_value.map not in (value.map, [1, 1, value.map[2]]):
            raise ConversionError(f"{node.describe()}: shapes {value.shape} and {other_value.shape} are not supported "
                                  "together (facet broadcasts only a [1, C, 1, 1] operand over the pixels)")
    else:
        other_name = converter.constant_operand(node, converter.constants[other], value)
    converter.emit(node, node.op_type.lower(), value.shape, value.layout, inputs=[name, other_name])


def handle_concat(converter, node):
    axis = converter.attributes(node, {"axis": None})["axis"]
    if any(n not in converter.views for n in node.inputs):
        raise ConversionError(f"{node.describe()}: concatenating constants with activations is not supported")
    names, values = zip(*(converter.activation(node, i) for i in range(len(node.inputs))))
    first = values[0]
    if axis is None:
        raise ConversionError(f"{node.describe()} has no axis")
    axis = axis + len(first.shape) if axis < 0 else axis
    if any(v.layout != first.layout for v in values):
        raise ConversionError(f"{node.describe()}: its inputs have different layouts")
    if axis == first.channel_axis:
        kind = "channels"
    elif first.layout == "rows" and axis == 1:
        kind = "rows"
    else:
        raise ConversionError(f"{node.describe()}: concatenation along axis {axis} of {first.shape} is not supported "
                              "(facet concatenates channels, or the rows of [1, R, K] tensors)")
    shape = list(first.shape)
    for v in values[1:]:
        if len(v.shape) != len(shape) or any(a != b for i, (a, b) in enumerate(zip(v.shape, first.shape)) if i != axis):
            raise ConversionError(f"{node.describe()}: shapes {first.shape} and {v.shape} do not concatenate on axis {axis}")
        shape[axis] += v.shape[axis]
    converter.emit(node, "concat", shape, first.layout, inputs=list(names), axis=kind)


def handle_pool(converter, node):
    name, value = _map_input(converter, node)
    op = node.op_type
    if op.startswith("Global"):
        converter.attributes(node, {})
        kernel, strides, pads, count_include_pad, ceil_mode = value.shape[2:], [1, 1], [0, 0, 0, 0], False, False
    else:
        allowed = {"kernel_shape": None, "strides": None, "pads": None, "auto_pad": b"NOTSET", "ceil_mode": 0}
        allowed.update({"count_include_pad": 0} if op == "AveragePool" else {"dilations": None, "storage_order": 0})
        attributes = converter.attributes(node, allowed)
        if any(node.outputs[1:]):
            raise ConversionError(f"{node.describe()}: the indices output is not supported")
        if op == "MaxPool" and (_pair(node, attributes, "dilations", 1) != [1, 1] or attributes["storage_order"]):
            raise ConversionError(f"{node.describe()}: dilated max-pooling is not supported")
        kernel = _pair(node, attributes, "kernel_shape", None)
        strides = _pair(node, attributes, "strides", 1)
        pads = _spatial_pads(node, attributes, value.shape[2:], kernel, strides, [1, 1])
        count_include_pad = bool(attributes.get("count_include_pad", 0))
        ceil_mode = bool(attributes["ceil_mode"])
        if max(pads[0], pads[2]) >= kernel[0] or max(pads[1], pads[3]) >= kernel[1]:
            raise ConversionError(f"{node.describe()}: pads {pads} as large as the kernel {kernel}")
    out_h = window_count(value.shape[2], kernel[0], strides[0], pads[0], pads[2], ceil_mode=ceil_mode)
    out_w = window_count(value.shape[3], kernel[1], strides[1], pads[1], pads[3], ceil_mode=ceil_mode)
    kind = "avg_pool" if "Average" in op else "max_pool"
    fields = {"input": name, "kernel": list(kernel), "stride": strides, "pads": pads}
    if kind == "avg_pool":
        fields["count_include_pad"] = count_include_pad
    converter.emit(node, kind, [1, value.shape[1], out_h, out_w], "nchw", **fields)


def handle_gemm(converter, node):
    name, value = converter.activation(node)
    if node.op_type == "MatMul":
        converter.attributes(node, {})
        weight, bias, alpha = converter.constant(node, 1, "second operand (B)").astype(np.float64), None, 1.0
        transposed = False
    else:
        attributes = converter.attributes(node, {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0})
        if attributes["transA"]:
            raise ConversionError(f"{node.describe()}: transA=1 is not supported")
        weight, alpha = converter.constant(node, 1, "B").astype(np.float64), attributes["alpha"]
        bias = converter.constant(node, 2, "C", required=False)
        transposed = bool(attributes["transB"])
    if weight.ndim != 2:
        raise ConversionError(f"{node.describe()}: B of shape {list(weight.shape)} is not a matrix")
    weight = (weight if transposed else weight.T) * alpha  # [outputs, inputs], as nn.Linear
    if len(value.shape) != 2:
        raise ConversionError(f"{node.describe()}: input of shape {value.shape} is not a [1, K] vector (flatten it first)")
    if weight.shape[1] != value.shape[1]:
        raise ConversionError(f"{node.describe()}: B takes {weight.shape[1]} inputs, the input has {value.shape[1]}")
    op_name = converter.op_name(node)
    fields = {"input": name, "weight": converter.tensor(op_name, "weight", weight), "activation": {"kind": "none"}}
    if bias is not None:
        try:
            bias = np.broadcast_to(bias.astype(np.float64), (1, weight.shape[0])).reshape(-1) * attributes["beta"]
        except ValueError:
            raise ConversionError(f"{node.describe()}: C of shape {list(bias.shape)} does not fit {weight.shape[0]} outputs") from None
        fields["bias"] = converter.tensor(op_name, "bias", bias)
    converter.emit(node, "dense", [1, weight.shape[0]], "flat", name=op_name, **fields)


def reshape_target(node, in_shape, shape):
    """ONNX Reshape's output shape: 0 copies the input's dim (unless allowzero), -1 is inferred."""
    target = integers(node, shape, "shape")
    if not node.attributes.get("allowzero", 0):
        target = [in_shape[i] if d == 0 and i < len(in_shape) else d for i, d in enumerate(target)]
    total = math.prod(in_shape)
    if target.count(-1) == 1:
        known = math.prod(d for d in target if d != -1)
        if known <= 0 or total % known:
            raise ConversionError(f"{node.describe()}: cannot reshape {list(in_shape)} to {target}")
        target[target.index(-1)] = total // known
    if math.prod(target) != total or any(d < 0 for d in target):
        raise ConversionError(f"{node.describe()}: cannot reshape {list(in_shape)} to {target}")
    return target


def handle_reshape(converter, node):
    name, value = converter.activation(node)
    op, shape = node.op_type, value.shape
    if op == "Reshape":
        converter.attributes(node, {"allowzero": 0})
        target = reshape_target(node, shape, converter.constant(node, 1, "shape"))
    elif op == "Flatten":
        axis = converter.attributes(node, {"axis": 1})["axis"]
        axis = axis + len(shape) if axis < 0 else axis
        target = [math.prod(shape[:axis]), math.prod(shape[axis:])]
    elif op == "Squeeze":
        converter.attributes(node, {"axes": None})
        axes = _axes(node, converter, 1)
        axes = {a % len(shape) for a in axes} if axes is not None else {i for i, d in enumerate(shape) if d == 1}
        if any(shape[a] != 1 for a in axes):
            raise ConversionError(f"{node.describe()}: cannot squeeze axes {sorted(axes)} of {shape}")
        target = [d for i, d in enumerate(shape) if i not in axes]
    else:  # Unsqueeze
        converter.attributes(node, {"axes": None})
        axes = _axes(node, converter, 1) or []
        target = list(shape)
        for axis in sorted(a % (len(shape) + len(axes)) for a in axes):
            target.insert(axis, 1)
    layout = layout_of(target)
    if layout is not None and map_shape(target, layout) == value.map:
        converter.make_view(node, name, Value(target, layout))  # the same map seen under another shape
    elif layout == "flat":
        converter.emit(node, "flatten", target, "flat", input=name, order=storage_order(shape, value.layout))
    elif layout == "rows" and value.layout == "nhwc" and value.shape[3] % target[2] == 0:
        converter.emit(node, "rows", target, "rows", input=name)
    else:
        raise ConversionError(f"{node.describe()}: reshaping {shape} to {target} is not supported")


def handle_transpose(converter, node):
    name, value = converter.activation(node)
    perm = converter.attributes(node, {"perm": None})["perm"]
    if value.layout != "nchw" or list(perm or []) != [0, 2, 3, 1]:
        raise ConversionError(f"{node.describe()}: only Transpose(0, 2, 3, 1) of a [1, C, H, W] map is supported")
    # The map is stored NHWC already: the transpose changes only how later reshapes read it.
    converter.make_view(node, name, Value([1] + value.map, "nhwc"))


def handle_resize(converter, node):
    name, value = _map_input(converter, node)
    if node.op_type == "Upsample":
        attributes = converter.attributes(node, {"mode": b"nearest", "scales": None})
        scales = attributes["scales"] if attributes["scales"] is not None else converter.constant(node, 1, "scales")
        sizes, transform, rounding = None, "asymmetric", "floor"
    else:
        attributes = converter.attributes(node, {
            "mode": b"nearest", "coordinate_transformation_mode": b"half_pixel", "nearest_mode": b"round_prefer_floor",
            "cubic_coeff_a": -0.75, "exclude_outside": 0, "extrapolation_value": 0.0})
        if converter.opset < 11:
            scales, sizes, transform, rounding = converter.constant(node, 1, "scales"), None, "asymmetric", "floor"
        else:
            scales = converter.constant(node, 2, "scales", required=False)
            sizes = converter.constant(node, 3, "sizes", required=False)
            transform = attributes["coordinate_transformation_mode"].decode()
            rounding = attributes["nearest_mode"].decode()
    mode = attributes["mode"].decode()
    if mode != "nearest":
        raise ConversionError(f"{node.describe()}: Resize mode '{mode}' is not supported (facet resizes nearest)")
    in_shape = value.shape
    if sizes is not None and sizes.size:
        out_shape = integers(node, sizes, "sizes")
        scales = [o / i for o, i in zip(out_shape, in_shape)]
    elif scales is not None and np.asarray(scales).size:
        scales = [float(s) for s in np.asarray(scales).reshape(-1)]
        if not all(0 < s < math.inf for s in scales):
            raise ConversionError(f"{node.describe()}: scales {scales} are not all positive and finite")
        out_shape = [int(math.floor(d * s)) for d, s in zip(in_shape, scales)]
    else:
        raise ConversionError(f"{node.describe()} has neither scales nor sizes")
    if len(out_shape) != 4 or out_shape[:2] != in_shape[:2]:
        raise ConversionError(f"{node.describe()}: resizing {in_shape} to {out_shape} (batch or channels) is not supported")
    check_value_shape(node.outputs[0], map_shape(out_shape, "nchw"))  # before the per-pixel checks below
    for axis in (2, 3):
        onnx_sources = _nearest_sources(in_shape[axis], out_shape[axis], scales[axis], transform, rounding)
        facet_sources = [d * in_shape[axis] // out_shape[axis] for d in range(out_shape[axis])]
        if onnx_sources != facet_sources:
            raise ConversionError(f"{node.describe()}: nearest resizing from {in_shape[axis]} to {out_shape[axis]} with "
                                  f"coordinate_transformation_mode '{transform}' and nearest_mode '{rounding}' picks "
                                  "other pixels than facet does (floor(d * in / out)) and is not supported")
    converter.emit(node, "resize_nearest", out_shape, "nchw", input=name)


def _nearest_sources(size_in, size_out, scale, transform, rounding):
    """The source index of every output index under ONNX Resize's nearest-mode definitions."""
    sources = []
    for d in range(size_out):
        if transform == "asymmetric":
            x = d / scale
        elif transform == "half_pixel" or (transform == "pytorch_half_pixel" and size_out > 1):
            x = (d + 0.5) / scale - 0.5
        elif transform == "align_corners" and size_out > 1:
            x = d * (size_in - 1) / (size_out - 1)
        elif transform in ("pytorch_half_pixel", "align_corners"):
            x = 0.0
        else:
            return None
        rounded = {"floor": math.floor, "ceil": math.ceil, "round_prefer_floor": lambda v: math.ceil(v - 0.5),
                   "round_prefer_ceil": lambda v: math.floor(v + 0.5)}.get(rounding)
        if rounded is None:
            return None
        sources.append(min(max(rounded(x), 0), size_in - 1))
    return sources


def handle_softmax(converter, node):
    name, value = converter.activation(node)
    axis = converter.attributes(node, {"axis": -1 if converter.opset >= 13 else 1})["axis"]
    axis = axis + len(value.shape) if axis < 0 else axis
    # Before opset 13, Softmax normalises over all axes from `axis` on as one: the same as over
    # the channels when every later axis has size 1.
    if axis != value.channel_axis or (converter.opset < 13 and math.prod(value.shape[axis + 1:]) != 1):
        raise ConversionError(f"{node.describe()}: softmax over axis {axis} of {value.shape} is not supported "
                              "(facet normalises over channels)")
    converter.emit(node, "softmax", value.shape, value.layout, input=name)


def handle_identity(converter, node):
    if any(node.outputs[1:]):
        raise ConversionError(f"{node.describe()}: the mask output is not supported")
    name, value = converter.activation(node)
    converter.make_view(node, name, value)


HANDLERS = {
    "Conv": handle_conv,
    "BatchNormalization": handle_batch_normalization,
    "Relu": handle_activation, "LeakyRelu": handle_activation, "PRelu": handle_activation,
    "Clip": handle_activation, "Sigmoid": handle_activation,
    "Add": handle_binary, "Mul": handle_binary,
    "Concat": handle_concat,
    "AveragePool": handle_pool, "MaxPool": handle_pool, "GlobalAveragePool": handle_pool, "GlobalMaxPool": handle_pool,
    "Gemm": handle_gemm, "MatMul": handle_gemm,
    "Reshape": handle_reshape, "Flatten": handle_reshape, "Squeeze": handle_reshape, "Unsqueeze": handle_reshape,
    "Transpose": handle_transpose,
    "Resize": handle_resize, "Upsample": handle_resize,
    "Softmax": handle_softmax,
    "Identity": handle_identity, "Dropout": handle_identity,
    "Shape": handle_shape,
}


# ---------------------------------------------------------------------------------------------
# Command line


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _three_numbers(text):
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3 or not all(abs(v) <= FLOAT32_MAX for v in values):
        raise argparse.ArgumentTypeError(f"wants three numbers A,B,C (finite floats), got '{text}'")
    return values


def _input_shape(text):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"wants four positive whole numbers 1,C,H,W, got '{text}'")
    return values


# The preprocessing of a model that takes 0..255 RGB pixels as they are (--raw-pixels).
RAW_PIXELS = {"color": "rgb", "mean": [0.0, 0.0, 0.0], "scale": [1.0, 1.0, 1.0]}
# scripts/fetch-weights.sh converts PFLD-GhostOne so: RGB, (x / 255 - 0.5) / 0.5.
PFLD_EXAMPLE = ("--color rgb --mean 127.5,127.5,127.5 "
                "--scale 0.00784313725490196,0.00784313725490196,0.00784313725490196")
PREPROCESSING_OPTIONS = ("color", "mean", "scale")


def _argument_parser():
    parser = argparse.ArgumentParser(
        prog=PROGRAM, description="Convert an ONNX model to a facet graph file (weights/FORMAT.md, model \"graph\").",
        epilog="The network input is (pixel - mean[c]) * scale[c] in the given colour order, pixels 0..255. ONNX files "
               "do not record it: give what the model was trained with. For PFLD-GhostOne, (x / 255 - 0.5) / 0.5 in "
               f"RGB: {PFLD_EXAMPLE}")
    parser.add_argument("--out", required=True, type=Path, help="the facet file to write")
    parser.add_argument("--color", choices=("rgb", "bgr"), help="channel order of the input")
    parser.add_argument("--mean", type=_three_numbers, help="per-channel mean, in that order")
    parser.add_argument("--scale", type=_three_numbers, help="per-channel scale, in that order")
    parser.add_argument("--raw-pixels", action="store_true",
                        help="the model takes 0..255 RGB pixels as they are (instead of --color, --mean, --scale)")
    parser.add_argument("--input-shape", type=_input_shape, help="1,C,H,W when the model's input shape is not fixed")
    parser.add_argument("model", type=Path, metavar="MODEL.onnx")
    return parser


def input_spec_of(args):
    """{"color", "mean", "scale"} from the options: all three, or --raw-pixels alone."""
    given = [name for name in PREPROCESSING_OPTIONS if getattr(args, name) is not None]
    if args.raw_pixels:
        if given:
            raise ConversionError(f"--raw-pixels means RGB, mean 0 and scale 1: it cannot go with --{', --'.join(given)}")
        return dict(RAW_PIXELS)
    if len(given) != len(PREPROCESSING_OPTIONS):
        missing = [f"--{name}" for name in PREPROCESSING_OPTIONS if name not in given]
        raise ConversionError(f"no {', '.join(missing)}: an ONNX file does not say how its input is prepared, so give "
                              "--color, --mean and --scale as the model was trained (the input is (pixel - mean) * "
                              "scale), or --raw-pixels for 0..255 RGB pixels as they are; PFLD-GhostOne, for example: "
                              f"{PFLD_EXAMPLE}")
    return {name: getattr(args, name) for name in PREPROCESSING_OPTIONS}


def convert(model_path, out_path, input_spec, input_shape=None):
    """Convert the ONNX file at `model_path` into `out_path`, its input prepared as `input_spec` says
    ({"color", "mean", "scale"}, FORMAT.md); returns (op count, tensor count)."""
    data = read_regular_file(model_path, what="ONNX file")
    model = parse_model(data, str(model_path))
    converter = Converter(model, input_shape)
    graph = converter.run()
    if graph["input"]["onnx_shape"][1] != 3:
        raise ConversionError(f"input '{graph['input']['name']}' has {graph['input']['onnx_shape'][1]} channels; "
                              "facet feeds graphs RGB or BGR images")
    source = [{"file": Path(model_path).name, "sha256": hashlib.sha256(data).hexdigest(),
               "producer": model.producer, "opset": converter.opset}]
    write_graph_file(out_path, PROGRAM, source, input_spec, graph, converter.tensors)
    return len(graph["ops"]), len(converter.tensors)


def main(argv=None):
    args = _argument_parser().parse_args(argv)

    def convert_call():
        op_count, tensor_count = convert(args.model, args.out, input_spec_of(args), args.input_shape)
        return f"{op_count} ops, {tensor_count} tensors"
    return run_converter(PROGRAM, [args.model], args.out, convert_call)


if __name__ == "__main__":
    sys.exit(main())
