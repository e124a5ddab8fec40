"""What every converter writing a facet graph file (weights/FORMAT.md, model "graph") shares:
window arithmetic, "same" padding, the tensor checks and the file's metadata. onnx2facet.py and
tfjs2facet.py both build their graphs with it. NumPy and the standard library only.
"""

import math

import numpy as np

from facetfile import write_facet

MAX_TENSOR_NAME_BYTES = 255


class ConversionError(ValueError):
    """Anything wrong with a model a converter reads: reported to the user, never a traceback."""


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


def checked_tensor(name, array):
    """`array` as the C-order float32 a facet file stores, refusing NaN and infinity (the reader would)."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.all(np.isfinite(array)):
        raise ConversionError(f"tensor {name} holds NaN or infinity")
    return array


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
