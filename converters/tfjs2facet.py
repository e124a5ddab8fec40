#!/usr/bin/env python3
"""Convert face-api's nets (TensorFlow.js weights) into a facet graph file (weights/FORMAT.md, model
"graph"), NumPy only: the 68-point landmark network (described here), the expression, age / gender
and face recognition networks (each described where its graph is built; NETWORKS lists them).

    tfjs2facet.py --out OUT.facet [--net NET] [--crop-margin M] NET_model-weights_manifest.json

The network is face-api's FaceLandmark68Net (MIT, @vladmandic/face-api, src/faceFeatureExtractor and
src/faceLandmarkNet): four densely connected blocks of 3x3 convolutions on a 112x112 RGB crop, an
average pool and a fully connected layer to 68 (x, y) pairs in [0, 1] of the crop. A TF.js model of
this kind is only weights: the manifest names each tensor, its shape and how it is stored, the
.bin shards hold them back to back, and the architecture lives in face-api's code. So this
converter knows the architecture, and checks that the manifest describes exactly its tensors.

Block k (k = 0 .. 3, C = 32 << k channels) computes, every convolution with TensorFlow's "same"
padding and a bias:
    out1 = relu(conv0(x))                      stride 2; block 0 a full 3x3 conv, the others separable
    out2 = sep1(out1)                          separable: depthwise 3x3 (no bias), then pointwise 1x1
    out3 = sep2(relu(out1 + out2))
    out4 = sep3(relu(out1 + out2 + out3))
    out  = relu(out1 + out2 + out3 + out4)
then a 7x7 average pool with stride 2 (valid: 7x7 -> 1x1) and fc 256 -> 136. The input is
(pixel - mean) / 255 with mean (122.782, 117.001, 104.298) in RGB order.

Every manifest entry is checked: known keys only, the expected names, shapes and dtypes, uint8
quantisation (dequantised as q * scale + min, as TF.js does, in double then rounded to float32) or
plain float32, and the shards' sizes against the byte counts the entries add up to. Anything else
is refused, naming the entry. A shard must be a regular file in the manifest's folder once its links
are resolved, listed once; no more of it is read than the manifest's entries take.

Exit status: 0 on success, 2 for anything wrong with the command line or the model, reported on one
line as "tfjs2facet: error: ..." with no traceback.
"""

import argparse
import hashlib
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from cli import open_regular_file, read_regular_file, run_converter
from facetfile import MAX_DIM, MAX_FILE_SIZE
from facetgraph import GraphBuilder, GraphError, same_pads, window_count, write_graph_file

PROGRAM = "tfjs2facet"

INPUT_SIZE = 112
MEAN_RGB = [122.782, 117.001, 104.298]  # every face-api net here: (pixel - mean) / 255, RGB
BLOCK_CHANNELS = [32, 64, 128, 256]
SEPARABLE_CONVS = ("conv1", "conv2", "conv3")  # and conv0 of every block but the first
POOL_KERNEL, POOL_STRIDE = 7, 2
POINTS = 68
# face-api's label orders (src/faceExpressionNet/FaceExpressions.ts, src/ageGenderNet/types.ts and
# AgeGenderNet.predictAgeAndGender, whose first gender probability is the male one).
EXPRESSION_LABELS = ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"]
GENDER_LABELS = ["male", "female"]
# TinyXception (src/xception/TinyXception.ts) as AgeGenderNet builds it: two main blocks.
XCEPTION_STEM_CHANNELS = 32
XCEPTION_REDUCTION_CHANNELS = [64, 128]  # the entry flow's two reduction blocks
XCEPTION_MAIN_BLOCKS, XCEPTION_MAIN_CHANNELS = 2, 128
XCEPTION_EXIT_CHANNELS = [256, 512]  # the exit flow's reduction block, then its separable conv

MANIFEST_GROUP_KEYS = {"paths", "weights"}
MANIFEST_ENTRY_KEYS = {"name", "shape", "dtype", "quantization"}
QUANTIZATION_KEYS = {"dtype", "scale", "min"}
MAX_MANIFEST_BYTES = 16 << 20  # face_landmark_68's is 8 KB
# A model's weights cannot be more than a facet file holds: the shards a manifest lists together.
MAX_WEIGHT_BYTES = MAX_FILE_SIZE


class ConversionError(GraphError):
    """Anything wrong with the model read: reported to the user, never a traceback."""


def _separable_shapes(prefix, cin, cout):
    return {f"{prefix}/depthwise_filter": [3, 3, cin, 1], f"{prefix}/pointwise_filter": [1, 1, cin, cout],
            f"{prefix}/bias": [cout]}


def _fc_shapes(prefix, cin, cout):
    return {f"{prefix}/weights": [cin, cout], f"{prefix}/bias": [cout]}


def feature_extractor_shapes():
    """face-api's FaceFeatureExtractor (the four dense blocks), in TF.js layout: conv filters
    [kh, kw, cin, cout], depthwise [kh, kw, c, 1], pointwise [1, 1, cin, cout]."""
    shapes = {}
    channels_in = 3
    for block, channels in enumerate(BLOCK_CHANNELS):
        prefix = f"dense{block}"
        if block == 0:
            shapes[f"{prefix}/conv0/filters"] = [3, 3, channels_in, channels]
            shapes[f"{prefix}/conv0/bias"] = [channels]
            convs = SEPARABLE_CONVS
        else:
            convs = ("conv0",) + SEPARABLE_CONVS
        for conv in convs:
            shapes.update(_separable_shapes(f"{prefix}/{conv}", channels_in if conv == "conv0" else channels, channels))
        channels_in = channels
    return shapes


def tiny_xception_shapes():
    """face-api's TinyXception with AgeGenderNet's two main blocks, in TF.js layout."""
    shapes = {"entry_flow/conv_in/filters": [3, 3, 3, XCEPTION_STEM_CHANNELS],
              "entry_flow/conv_in/bias": [XCEPTION_STEM_CHANNELS]}

    def reduction(prefix, cin, cout):
        shapes.update(_separable_shapes(f"{prefix}/separable_conv0", cin, cout))
        shapes.update(_separable_shapes(f"{prefix}/separable_conv1", cout, cout))
        shapes.update({f"{prefix}/expansion_conv/filters": [1, 1, cin, cout], f"{prefix}/expansion_conv/bias": [cout]})

    channels = XCEPTION_STEM_CHANNELS
    for block, cout in enumerate(XCEPTION_REDUCTION_CHANNELS):
        reduction(f"entry_flow/reduction_block_{block}", channels, cout)
        channels = cout
    for block in range(XCEPTION_MAIN_BLOCKS):
        for conv in range(3):
            shapes.update(_separable_shapes(f"middle_flow/main_block_{block}/separable_conv{conv}", channels, channels))
    reduction("exit_flow/reduction_block", channels, XCEPTION_EXIT_CHANNELS[0])
    shapes.update(_separable_shapes("exit_flow/separable_conv", *XCEPTION_EXIT_CHANNELS))
    return shapes


# ---------------------------------------------------------------------------------------------
# Reading the TF.js weights


def _check_keys(where, record, allowed, required):
    if not isinstance(record, dict):
        raise ConversionError(f"{where} is a JSON {type(record).__name__}, expected an object")
    unknown = sorted(set(record) - allowed)
    if unknown:
        raise ConversionError(f"{where} has unsupported key(s) {', '.join(unknown)}")
    missing = sorted(required - set(record))
    if missing:
        raise ConversionError(f"{where} has no {', '.join(missing)}")


def _entry_layout(entry, index):
    """(name, shape, byte count, decode) of one manifest entry; decode(bytes) -> float32 array."""
    name = entry.get("name") if isinstance(entry, dict) else None
    if not isinstance(name, str) or not name:
        raise ConversionError(f"weights entry {index} has no name")
    where = f"tensor {name}"
    _check_keys(where, entry, MANIFEST_ENTRY_KEYS, {"name", "shape", "dtype"})
    shape = entry["shape"]
    if not isinstance(shape, list) or any(not isinstance(d, int) or isinstance(d, bool) or not 1 <= d <= MAX_DIM
                                          for d in shape):
        raise ConversionError(f"{where} has shape {shape!r}, expected a list of whole numbers in [1, {MAX_DIM}]")
    if entry["dtype"] != "float32":
        raise ConversionError(f"{where} has dtype {entry['dtype']!r}; face-api's tensors are float32")
    count = math.prod(shape)
    if count * 4 > MAX_WEIGHT_BYTES:
        raise ConversionError(f"{where} has shape {shape}: {count * 4} bytes of float32, more than a facet file holds")
    quantization = entry.get("quantization")
    if quantization is None:
        return name, shape, count * 4, lambda raw: np.frombuffer(raw, dtype="<f4").astype(np.float32)
    _check_keys(f"{where}: quantization", quantization, QUANTIZATION_KEYS, {"dtype"})
    if quantization["dtype"] != "uint8":
        raise ConversionError(f"{where} is quantised to {quantization['dtype']!r}; only uint8 (with scale and min) "
                              "is supported")
    scale, minimum = quantization.get("scale"), quantization.get("min")
    for key, number in (("scale", scale), ("min", minimum)):
        if not isinstance(number, (int, float)) or isinstance(number, bool) or not math.isfinite(number):
            raise ConversionError(f"{where}: quantization {key} is {number!r}, expected a finite number")
    if scale < 0:
        raise ConversionError(f"{where}: quantization scale {scale} is negative")
    # TF.js (io/io_utils.ts, decodeWeights): values[i] = q * scale + min in double, stored as float32.
    return name, shape, count, lambda raw: (np.frombuffer(raw, dtype=np.uint8) * float(scale) + float(minimum)).astype(np.float32)


def _open_shard(folder, shard, group, opened):
    """The shard file `shard` of weights group `group`, open: a plain file name whose target, links
    resolved, is a regular file inside `folder` (the manifest's, resolved) and no shard opened before
    (`opened`: the resolved paths so far)."""
    if not isinstance(shard, str) or not shard or any(c in shard for c in "/\\\0") or shard in (".", ".."):
        raise ConversionError(f"weights group {group}: path {shard!r} is not a file name beside the manifest")
    target = os.path.realpath(os.path.join(folder, shard))
    if os.path.commonpath([folder, target]) != folder:
        raise ConversionError(f"weights group {group}: shard {shard} is a link to {target}, outside the model's "
                              f"folder {folder}")
    if target in opened:
        raise ConversionError(f"weights group {group}: shard {shard} is listed twice (or is a link to another shard)")
    opened.add(target)
    try:
        return open_regular_file(target, "shard", follow_links=False)
    except OSError as error:
        raise ConversionError(f"weights group {group}: shard {shard}: {error.strerror}") from None


def read_tfjs_weights(manifest_path):
    """{name: float32 array in TF.js layout} from a TF.js weights manifest and its .bin shards, and the
    files read as the facet file's `source` ({"file", "sha256"}). Every entry and byte count is checked
    before the shards are read."""
    manifest_path = Path(manifest_path)
    raw_manifest = read_regular_file(manifest_path, MAX_MANIFEST_BYTES, "manifest")
    try:
        manifest = json.loads(raw_manifest.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConversionError(f"the manifest is not UTF-8 JSON: {error}") from None
    except RecursionError:
        raise ConversionError("the manifest's JSON nests too deeply to be a TF.js manifest") from None
    if not isinstance(manifest, list) or not manifest:
        raise ConversionError("the manifest is not a non-empty JSON array of weight groups")
    folder = os.path.realpath(manifest_path.parent)
    tensors, sources, opened, weight_bytes = {}, [_source(manifest_path.name, raw_manifest)], set(), 0
    for group_index, group in enumerate(manifest):
        _check_keys(f"weights group {group_index}", group, MANIFEST_GROUP_KEYS, MANIFEST_GROUP_KEYS)
        if not isinstance(group["paths"], list) or not group["paths"]:
            raise ConversionError(f"weights group {group_index}: paths is not a non-empty list")
        if not isinstance(group["weights"], list):
            raise ConversionError(f"weights group {group_index}: weights is not a list")
        layouts = [_entry_layout(entry, index) for index, entry in enumerate(group["weights"])]
        needed = sum(size for _, _, size, _ in layouts)
        weight_bytes += needed
        if weight_bytes > MAX_WEIGHT_BYTES:
            raise ConversionError(f"the manifest's tensors take {weight_bytes} bytes, more than a facet file holds")
        # A group's tensors run back to back through its shards, as if they were one file.
        data = _read_shards(folder, group["paths"], group_index, needed, opened, sources)
        offset = 0
        for name, shape, size, decode in layouts:
            if name in tensors:
                raise ConversionError(f"tensor {name} appears twice in the manifest")
            if offset + size > len(data):
                raise ConversionError(f"tensor {name} needs bytes [{offset}, {offset + size}), the shards of group "
                                      f"{group_index} ({', '.join(map(str, group['paths']))}) hold {len(data)}: truncated")
            tensors[name] = decode(data[offset:offset + size]).reshape(shape)
            offset += size
    return tensors, sources


def _read_shards(folder, paths, group, needed, opened, sources):
    """The bytes of a group's shards, one after another: refused when they hold more than the `needed`
    bytes its tensors take, before any is read (so never more than the manifest says is read)."""
    files = []
    try:
        for shard in paths:
            files.append(_open_shard(folder, shard, group, opened))
        held = sum(os.fstat(file.fileno()).st_size for file in files)
        if held > needed:
            raise ConversionError(f"the shards of group {group} hold {held} bytes, its tensors take {needed}: "
                                  f"{held - needed} bytes left over")
        chunks = []
        for shard, file in zip(paths, files):
            chunks.append(file.read(needed - sum(map(len, chunks))))
            sources.append(_source(shard, chunks[-1]))
        return b"".join(chunks)
    finally:
        for file in files:
            file.close()


def _source(name, data):
    return {"file": name, "sha256": hashlib.sha256(data).hexdigest()}


def check_architecture(tensors, net="face_landmark_68"):
    """The manifest must hold exactly the tensors of `net` (a NETWORKS key), in its shapes."""
    shapes = expected_shapes(net)
    missing = [name for name in shapes if name not in tensors]
    if missing:
        raise ConversionError(f"tensor {missing[0]} is missing ({len(missing)} of {net}'s "
                              f"{len(shapes)} tensors are): is this face-api's {net} model?")
    for name, array in tensors.items():
        if name not in shapes:
            raise ConversionError(f"tensor {name} is not one of {net}'s")
        if list(array.shape) != shapes[name]:
            raise ConversionError(f"tensor {name} has shape {list(array.shape)}, {net} has {shapes[name]}")


# ---------------------------------------------------------------------------------------------
# The facet graph


class TfjsGraph(GraphBuilder):
    """The graph op by op, as face-api's layers come; every value is an NHWC map [h, w, c]."""

    def __init__(self, input_name, input_shape):
        super().__init__()
        self.input_name = input_name
        self.define_value(input_name, input_shape)

    def _add(self, op, name, inputs, shape, **fields):
        self.add_op(op, name, name, shape, **({"input": inputs[0]} if len(inputs) == 1 else {"inputs": list(inputs)}),
                    **fields)
        return name

    def conv(self, name, source, weight, bias, stride, relu=False, groups=1, padding="same"):
        """A TensorFlow convolution, "same" or "valid" padding; `weight` is [cout, cin / groups, kh, kw]."""
        h, w, _ = self.values[source]
        cout, _, kh, kw = weight.shape
        pads = same_pads([h, w], [kh, kw], [stride, stride]) if padding == "same" else [0, 0, 0, 0]
        if min(h + pads[0] + pads[2] - kh, w + pads[1] + pads[3] - kw) < 0:
            raise ConversionError(f"{name}: a {kh}x{kw} conv does not fit a {h}x{w} map")
        shape = [window_count(h, kh, stride, pads[0], pads[2]), window_count(w, kw, stride, pads[1], pads[3]), cout]
        fields = {"weight": self.tensor(name, "weight", weight)}
        if bias is not None:
            fields["bias"] = self.tensor(name, "bias", bias)
        fields.update(groups=groups, kernel=[kh, kw], stride=[stride, stride], pads=pads, dilation=[1, 1],
                      activation={"kind": "relu" if relu else "none"})
        return self._add("conv", name, [source], shape, **fields)

    def add(self, name, a, b):
        return self._add("add", name, [a, b], self.values[a])

    def relu(self, name, source):
        return self._add("activation", name, [source], self.values[source], activation={"kind": "relu"})

    def avg_pool(self, name, source, kernel, stride):
        return self._pool("avg_pool", name, source, kernel, stride, count_include_pad=False)

    def max_pool(self, name, source, kernel, stride):
        return self._pool("max_pool", name, source, kernel, stride)

    def _pool(self, op, name, source, kernel, stride, **fields):
        """A TensorFlow "valid" pooling (no padding) of a `kernel` x `kernel` window."""
        h, w, c = self.values[source]
        if min(h, w) < kernel:
            raise ConversionError(f"{name}: a {kernel}x{kernel} pool does not fit a {h}x{w} map")
        shape = [window_count(h, kernel, stride, 0, 0), window_count(w, kernel, stride, 0, 0), c]
        return self._add(op, name, [source], shape, kernel=[kernel, kernel], stride=[stride, stride],
                         pads=[0, 0, 0, 0], **fields)

    def pad_end(self, name, source, shape):
        """The map at the top-left of a larger one of `shape`, zeros after it in rows, columns and
        channels (face-api's residualDown concatenates zeros so to make its two branches match)."""
        return self._add("pad", name, [source], list(shape))

    def max_pool_same(self, name, source, kernel, stride):
        """tf.maxPool with "same" padding: the padding never wins (facet's max_pool, as ONNX's, skips it)."""
        h, w, c = self.values[source]
        pads = same_pads([h, w], [kernel, kernel], [stride, stride])
        shape = [window_count(h, kernel, stride, pads[0], pads[2]), window_count(w, kernel, stride, pads[1], pads[3]), c]
        return self._add("max_pool", name, [source], shape, kernel=[kernel, kernel], stride=[stride, stride], pads=pads)

    def dense(self, name, source, weight, bias):
        """Fully connected on a 1 x 1 map; `weight` is [out, in], `bias` may be None."""
        fields = {"weight": self.tensor(name, "weight", weight), "activation": {"kind": "none"}}
        if bias is not None:
            fields["bias"] = self.tensor(name, "bias", bias)
        return self._add("dense", name, [source], [1, 1, weight.shape[0]], **fields)

    def softmax(self, name, source):
        return self._add("softmax", name, [source], self.values[source])

    def metadata(self, outputs):
        """The graph object with `outputs`, the names of 1 x 1 values, in this order."""
        h, w, c = self.values[self.input_name]
        return self.graph_metadata(self.input_name, [1, c, h, w], [
            {"name": output, "value": output, "onnx_shape": [1, self.values[output][2]], "order": "hwc"}
            for output in outputs])


def _conv_weight(filters):
    """TF.js [kh, kw, cin, cout] -> facet [cout, cin, kh, kw]."""
    return filters.transpose(3, 2, 0, 1)


def _depthwise_weight(filters):
    """TF.js depthwise [kh, kw, c, 1] -> facet [c, 1, kh, kw] (a conv with c groups)."""
    return filters[:, :, :, 0].transpose(2, 0, 1)[:, None]


def _separable(graph, tensors, prefix, source, stride, relu):
    """tf.separableConv2d + bias: the depthwise 3x3 (no bias) then the pointwise 1x1 with the bias."""
    depthwise = _depthwise_weight(tensors[f"{prefix}/depthwise_filter"])
    name = prefix.replace("/", ".")
    inner = graph.conv(f"{name}.depthwise", source, depthwise, None, stride, groups=depthwise.shape[0])
    return graph.conv(f"{name}.pointwise", inner, _conv_weight(tensors[f"{prefix}/pointwise_filter"]),
                      tensors[f"{prefix}/bias"], 1, relu=relu)


def _fc(graph, tensors, prefix, source):
    """face-api's fullyConnectedLayer: x . weights + bias, weights [in, out]."""
    return graph.dense(prefix.replace("/", "."), source, tensors[f"{prefix}/weights"].T, tensors[f"{prefix}/bias"])


def _pool_to_vector(graph, source):
    """tf.avgPool 7x7, stride 2, valid: on the 7x7 map both backbones end with, one pixel."""
    pooled = graph.avg_pool("pool", source, POOL_KERNEL, POOL_STRIDE)
    if graph.values[pooled][:2] != [1, 1]:
        raise ConversionError(f"the pool gives a {graph.values[pooled][0]}x{graph.values[pooled][1]} map, not a vector")
    return pooled


def feature_extractor(graph, tensors):
    """face-api's FaceFeatureExtractor (src/faceFeatureExtractor): the four dense blocks and the pool
    (see the module's docstring); the pooled 1 x 1 x 256 value."""
    x = graph.input_name
    for block in range(len(BLOCK_CHANNELS)):
        prefix = f"dense{block}"
        if block == 0:
            out1 = graph.conv(f"{prefix}.conv0", x, _conv_weight(tensors[f"{prefix}/conv0/filters"]),
                              tensors[f"{prefix}/conv0/bias"], 2, relu=True)
        else:
            out1 = _separable(graph, tensors, f"{prefix}/conv0", x, 2, relu=True)
        # face-api sums out1 + (out2 + (out3 + out4)); summing from the left differs only in rounding.
        total, reader = out1, out1
        for k, conv in enumerate(SEPARABLE_CONVS, start=2):
            out = _separable(graph, tensors, f"{prefix}/{conv}", reader, 1, relu=False)
            total = graph.add(f"{prefix}.sum{k}", total, out)
            reader = graph.relu(f"{prefix}.relu{k}", total)
        x = reader
    return _pool_to_vector(graph, x)


def tiny_xception(graph, tensors):
    """face-api's TinyXception (src/xception/TinyXception.ts), every conv "same" with a bias:
        x = relu(conv_in(input))                                   3x3, stride 2
        reduction block (the first without its input's relu):
            y = sep1(relu(sep0(relu(x))));  x = maxpool3x3/2(y) + expansion_conv(x)   1x1, stride 2
        main block: x = sep2(relu(sep1(relu(sep0(relu(x)))))) + x
    two reduction blocks, two main blocks, a reduction block, relu(sep(x)), then the pool."""
    def reduction(prefix, x, activate_input):
        name = prefix.replace("/", ".")
        y = graph.relu(f"{name}.relu0", x) if activate_input else x
        y = _separable(graph, tensors, f"{prefix}/separable_conv0", y, 1, relu=True)
        y = _separable(graph, tensors, f"{prefix}/separable_conv1", y, 1, relu=False)
        y = graph.max_pool_same(f"{name}.pool", y, 3, 2)
        expansion = graph.conv(f"{name}.expansion_conv", x, _conv_weight(tensors[f"{prefix}/expansion_conv/filters"]),
                               tensors[f"{prefix}/expansion_conv/bias"], 2)
        return graph.add(f"{name}.sum", y, expansion)

    x = graph.conv("entry_flow.conv_in", graph.input_name, _conv_weight(tensors["entry_flow/conv_in/filters"]),
                   tensors["entry_flow/conv_in/bias"], 2, relu=True)
    for block in range(len(XCEPTION_REDUCTION_CHANNELS)):
        x = reduction(f"entry_flow/reduction_block_{block}", x, activate_input=block > 0)
    for block in range(XCEPTION_MAIN_BLOCKS):
        prefix = f"middle_flow/main_block_{block}"
        y = graph.relu(f"{prefix.replace('/', '.')}.relu0", x)
        for conv in range(3):
            y = _separable(graph, tensors, f"{prefix}/separable_conv{conv}", y, 1, relu=conv < 2)
        x = graph.add(f"{prefix.replace('/', '.')}.sum", y, x)
    x = reduction("exit_flow/reduction_block", x, activate_input=True)
    x = _separable(graph, tensors, "exit_flow/separable_conv", x, 1, relu=True)
    return _pool_to_vector(graph, x)


def _landmarks_head(graph, tensors):
    graph.dense("landmarks", feature_extractor(graph, tensors), tensors["fc/weights"].T, tensors["fc/bias"])
    return ["landmarks"]


def _expression_head(graph, tensors):
    """FaceExpressionNet: softmax(fc(features)) over face-api's seven expressions."""
    graph.softmax("expression", _fc(graph, tensors, "fc", feature_extractor(graph, tensors)))
    return ["expression"]


def _age_gender_heads(graph, tensors):
    """AgeGenderNet: the age as fc/age gives it (years), the gender as softmax(fc/gender)."""
    pooled = tiny_xception(graph, tensors)
    graph.dense("age", pooled, tensors["fc/age/weights"].T, tensors["fc/age/bias"])
    graph.softmax("gender", _fc(graph, tensors, "fc/gender", pooled))
    return ["age", "gender"]


# ---------------------------------------------------------------------------------------------
# face_recognition: face-api's FaceRecognitionNet (src/faceRecognitionNet), dlib's ResNet-34-like
# face descriptor network. On a 150x150 RGB crop, (pixel - mean) / 255 (the same mean as above):
#     conv32_down: conv 7x7 stride 2 "valid" + bias, scale (x * weights + biases), relu; max pool 3x3/2 valid
#     residual blocks (conv32_1 .. 3, conv64_1 .. 3, conv128_1 .. 2, conv256_1 .. 2):
#         relu(x + scaled(conv2(relu(scaled(conv1(x))))))                 convs 3x3 stride 1 "same"
#     residualDown blocks (conv64_down, conv128_down, conv256_down, conv256_down_out):
#         b = scaled(conv2(relu(scaled(conv1(x)))))                       conv1 3x3 stride 2 "valid"
#         p = avg_pool 2x2/2 valid (x), zeros appended in channels when b has more;
#         b gets a zero row and column at its end when the pool's map is larger; relu(p + b)
#     mean over rows and columns, times fc [256, 128] (no bias): the 128-d descriptor.
# Each conv's bias and the scale layer after it fold into the conv: w * s, bias * s + biases.

RECOGNITION_INPUT_SIZE = 150
RECOGNITION_STAGES = [  # (block, channels, residualDown?) in face-api's order
    ("conv32_1", 32, False), ("conv32_2", 32, False), ("conv32_3", 32, False),
    ("conv64_down", 64, True), ("conv64_1", 64, False), ("conv64_2", 64, False), ("conv64_3", 64, False),
    ("conv128_down", 128, True), ("conv128_1", 128, False), ("conv128_2", 128, False),
    ("conv256_down", 256, True), ("conv256_1", 256, False), ("conv256_2", 256, False),
    ("conv256_down_out", 256, True),
]
DESCRIPTOR_SIZE = 128


def recognition_expected_shapes():
    """Every tensor face_recognition has, in TF.js layout."""
    shapes = {}

    def conv_layer(prefix, kernel, cin, cout):
        shapes[f"{prefix}/conv/filters"] = [kernel, kernel, cin, cout]
        for key in ("conv/bias", "scale/weights", "scale/biases"):
            shapes[f"{prefix}/{key}"] = [cout]
    conv_layer("conv32_down", 7, 3, 32)
    channels_in = 32
    for block, channels, _ in RECOGNITION_STAGES:
        conv_layer(f"{block}/conv1", 3, channels_in, channels)
        conv_layer(f"{block}/conv2", 3, channels, channels)
        channels_in = channels
    shapes["fc"] = [channels_in, DESCRIPTOR_SIZE]
    return shapes


def _scaled_conv(graph, tensors, prefix, source, stride, relu, padding="same"):
    """face-api's convLayer: conv + bias, then the scale layer, folded into one conv."""
    scale = tensors[f"{prefix}/scale/weights"].astype(np.float64)
    weight = _conv_weight(tensors[f"{prefix}/conv/filters"]).astype(np.float64) * scale[:, None, None, None]
    bias = tensors[f"{prefix}/conv/bias"].astype(np.float64) * scale + tensors[f"{prefix}/scale/biases"]
    return graph.conv(prefix.replace("/", "."), source, weight.astype(np.float32), bias.astype(np.float32), stride,
                      relu=relu, padding=padding)


def _residual(graph, tensors, block, x, down):
    out = _scaled_conv(graph, tensors, f"{block}/conv1", x, 2 if down else 1, relu=True,
                       padding="valid" if down else "same")
    out = _scaled_conv(graph, tensors, f"{block}/conv2", out, 1, relu=False)
    shortcut = x
    if down:
        shortcut = graph.avg_pool(f"{block}.pool", x, 2, 2)
        pooled, branch = graph.values[shortcut], graph.values[out]
        if pooled[2] != branch[2]:
            if branch[2] != 2 * pooled[2]:
                raise ConversionError(f"{block}: {branch[2]} channels from {pooled[2]}; face-api doubles them")
            shortcut = graph.pad_end(f"{block}.pool_channels", shortcut, pooled[:2] + branch[2:])
        if pooled[:2] != branch[:2]:
            if [pooled[0] - branch[0], pooled[1] - branch[1]] != [1, 1]:
                raise ConversionError(f"{block}: a {branch[0]}x{branch[1]} branch beside a {pooled[0]}x{pooled[1]} pool")
            out = graph.pad_end(f"{block}.conv2_rows", out, pooled[:2] + branch[2:])
    total = graph.add(f"{block}.sum", shortcut, out)
    return graph.relu(f"{block}.relu", total)


def _descriptor_head(graph, tensors):
    """face_recognition's whole graph (see the comment above): the input to the 128-d descriptor."""
    x = _scaled_conv(graph, tensors, "conv32_down", graph.input_name, 2, relu=True, padding="valid")
    x = graph.max_pool("conv32_down.pool", x, 3, 2)
    for block, _, down in RECOGNITION_STAGES:
        x = _residual(graph, tensors, block, x, down)
    h, w, _ = graph.values[x]
    if h != w:
        raise ConversionError(f"the last map is {h}x{w}, not square")
    mean = graph.avg_pool("mean", x, h, 1)  # the whole map's mean
    graph.dense("descriptor", mean, tensors["fc"].T, None)
    return ["descriptor"]


class Network:
    """One face-api net: its tensors (TF.js layout), its input side, its graph, and the metadata section
    that says what its outputs mean and how faces are cropped for it (FORMAT.md; None: the net has
    none, its crop is fixed by its class, as FaceRecognizer's)."""

    def __init__(self, shapes, heads, section, outputs, input_size=INPUT_SIZE):
        self.shapes, self.heads, self.section, self.outputs, self.input_size = shapes, heads, section, outputs, input_size

    def metadata(self, crop_margin):
        return {self.section: {"crop_margin": crop_margin, **self.outputs}} if self.section else {}


NETWORKS = {
    "face_landmark_68": Network(lambda: {**feature_extractor_shapes(), **_fc_shapes("fc", BLOCK_CHANNELS[-1], 2 * POINTS)},
                                _landmarks_head, "landmarks", {}),
    "face_expression": Network(lambda: {**feature_extractor_shapes(),
                                        **_fc_shapes("fc", BLOCK_CHANNELS[-1], len(EXPRESSION_LABELS))},
                               _expression_head, "attributes", {"expression": {"labels": EXPRESSION_LABELS}}),
    "age_gender": Network(lambda: {**tiny_xception_shapes(), **_fc_shapes("fc/age", XCEPTION_EXIT_CHANNELS[-1], 1),
                                   **_fc_shapes("fc/gender", XCEPTION_EXIT_CHANNELS[-1], len(GENDER_LABELS))},
                          _age_gender_heads, "attributes", {"age": {"unit": "years"}, "gender": {"labels": GENDER_LABELS}}),
    "face_recognition": Network(recognition_expected_shapes, _descriptor_head, None, {}, RECOGNITION_INPUT_SIZE),
}


def expected_shapes(net="face_landmark_68"):
    """Every tensor `net` has, in TF.js layout: conv filters [kh, kw, cin, cout], depthwise
    [kh, kw, c, 1], pointwise [1, 1, cin, cout], fc weights [in, out]."""
    return NETWORKS[net].shapes()


def build_graph(tensors, net="face_landmark_68"):
    """The facet graph of `net` (see the module's docstring and the builders above)."""
    size = NETWORKS[net].input_size
    graph = TfjsGraph("input", [size, size, 3])
    outputs = NETWORKS[net].heads(graph, tensors)
    return graph.metadata(outputs), graph.tensors


# ---------------------------------------------------------------------------------------------
# Command line


def convert(manifest_path, out_path, crop_margin=0.0, net="face_landmark_68"):
    """Convert the model `net` at `manifest_path` into `out_path`; returns (op count, tensor count)."""
    if crop_margin and NETWORKS[net].section is None:
        raise ConversionError(f"--crop-margin is for the landmark and attribute nets, not {net}")
    tensors, source = read_tfjs_weights(manifest_path)
    check_architecture(tensors, net)
    graph, facet_tensors = build_graph(tensors, net)
    input_spec = {"color": "rgb", "mean": MEAN_RGB, "scale": [1 / 255] * 3}
    write_graph_file(out_path, PROGRAM, source, input_spec, graph, facet_tensors,
                     extra=NETWORKS[net].metadata(crop_margin))
    return len(graph["ops"]), len(facet_tensors)


def _margin(text):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"wants a number in [0, 1], got '{text}'")
    return value


def _argument_parser():
    parser = argparse.ArgumentParser(
        prog=PROGRAM, description="Convert one of face-api's nets (TF.js weights) to a facet graph file "
                                  "(weights/FORMAT.md, model \"graph\").")
    parser.add_argument("--out", required=True, type=Path, help="the facet file to write")
    parser.add_argument("--net", choices=sorted(NETWORKS), default="face_landmark_68",
                        help="which of face-api's nets the manifest holds (face_landmark_68)")
    parser.add_argument("--crop-margin", type=_margin, default=0.0,
                        help="landmarks.crop_margin or attributes.crop_margin: the crop around a detector box grows by "
                             "this fraction of its longer side on each side (FORMAT.md; 0)")
    parser.add_argument("manifest", type=Path, metavar="MANIFEST.json",
                        help="e.g. face_landmark_68_model-weights_manifest.json, its .bin beside it")
    return parser


def main(argv=None):
    args = _argument_parser().parse_args(argv)

    def convert_call():
        op_count, tensor_count = convert(args.manifest, args.out, args.crop_margin, args.net)
        return f"{op_count} ops, {tensor_count} tensors"
    return run_converter(PROGRAM, [args.manifest], args.out, convert_call)


if __name__ == "__main__":
    sys.exit(main())
