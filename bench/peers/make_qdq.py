#!/usr/bin/python3
"""RetinaFace-mnet0.25 (official checkpoint) as a statically quantised QDQ ONNX model, for ONNX Runtime.

    /usr/bin/python3 bench/peers/make_qdq.py OUT.onnx [--calibration minmax|percentile] [--percentile P]
                                             [--height H --width W]

Writes what onnxruntime.quantization.quantize_static(quant_format=QDQ, per_channel=True,
activation_type=QUInt8, weight_type=QInt8, calibrate_method=MinMax or Percentile) would write for
the same fp32 model (ORT's Python quantizer is not installable here; this follows its rules, see
bench/peers/README.md):
- the fp32 model: retinaface_torch.py with the official checkpoint, exported by torch.onnx at
  opset 13 (per-channel QuantizeLinear needs 13) with BatchNorm folded, any input size;
- activation ranges from running that model in ONNX Runtime (optimisations off, every float tensor
  made an output, as ORT's calibrators do) on CALIBRATION_IMAGES, each shrunk to a longer side of
  640 as facet-detect does; min/max over all of them, or ORT's Percentile calibrator's rule;
- every op type ORT quantises by default gets QuantizeLinear / DequantizeLinear on its float inputs
  and outputs: Conv (weights int8 symmetric per output channel, bias int32), LeakyRelu, Add, Concat,
  Softmax (output fixed to [0, 1]), Resize / Transpose / Reshape / Gather (output quantised like the
  input); the Relu after each context module's Concat is removed (the uint8 range does it).
--height / --width pin the input size (the timed copy); without them it stays any size.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

try:
    import onnx
    import torch
    from onnx import TensorProto, helper, numpy_helper
except ImportError as missing:
    sys.exit(f"make_qdq.py: {missing}. Run it with Debian's /usr/bin/python3 and "
             "`apt-get install python3-onnx python3-torch python3-opencv`.")

import ort_node  # noqa: E402  (this directory: a script's own, or put on the path by run.py and the tests)
import retinaface_post  # noqa: E402
import retinaface_torch  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
UPSTREAM_DIR_DEFAULT = Path(os.environ.get("FACET_UPSTREAM") or REPO_ROOT / "../shared/upstream")  # as run.py
CHECKPOINT = "retinaface/official/mobilenet0.25_Final.pth"  # the weights facet's benchmark and run.py time
# The calibration split every int8 path of this project uses; selfie_group.jpg and portrait_*.jpg
# are held out.
CALIBRATION_IMAGES = ("crowd.jpg", "multiface.jpg", "sample.jpg")
CALIBRATION_MAX_SIDE = 640  # facet-detect's default --max-side: the sizes the detector really sees
QDQ_OPSET = 13
PERCENTILE_DEFAULT = 99.99

OUTPUTS = ("loc", "conf", "landms")
# How ORT's QDQ quantiser treats each op type (onnxruntime/python/tools/quantization/registry.py and
# operators/*.py): float inputs and outputs each with their calibrated range; output with its input's
# scale and zero point; Relu dropped when its input is quantised (activations are asymmetric uint8).
OWN_RANGE_OPS = {"Conv", "LeakyRelu", "Add", "Concat", "Softmax"}
SAME_AS_INPUT_OPS = {"Resize", "Transpose", "Reshape", "Gather"}
REMOVABLE_ACTIVATIONS = {"Relu"}
ORT_DEFAULT_OP_TYPES = OWN_RANGE_OPS | SAME_AS_INPUT_OPS | REMOVABLE_ACTIVATIONS
OP_TYPE_SCOPES = {"ort-default": ORT_DEFAULT_OP_TYPES, "conv": {"Conv"}}  # --quantise
UINT8_MAX = 255
INT8_SYMMETRIC_MAX = 127  # ORT's symmetric int8 weights use [-127, 127]


def export_fp32(upstream_dir, path):
    """The official checkpoint in ONNX, opset 13, height and width free; returns the loaded ModelProto."""
    model = retinaface_torch.build(Path(upstream_dir) / CHECKPOINT, retinaface_torch.OFFICIAL_LEAKY_SLOPE)
    free = {"input": {2: "height", 3: "width"}, **{name: {1: "priors"} for name in OUTPUTS}}
    torch.onnx.export(model, torch.zeros(1, 3, 480, 640), str(path), opset_version=QDQ_OPSET, input_names=["input"],
                      output_names=list(OUTPUTS), dynamic_axes=free, do_constant_folding=True)
    return onnx.load(str(path))


def float_activations(model):
    """Names of the float tensors that nodes read or write, graph input included, initializers and
    constants excluded, in graph order: what ORT's calibrators measure."""
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = {vi.name: vi for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    constants = {init.name for init in model.graph.initializer}
    constants |= {out for node in model.graph.node if node.op_type == "Constant" for out in node.output}
    names = []
    for node in model.graph.node:
        for name in [*node.input, *node.output]:
            info = infos.get(name)
            if (info is not None and info.type.tensor_type.elem_type == TensorProto.FLOAT and name not in constants
                    and name not in names):
                names.append(name)
    return names


def collect_activations(fp32_path, inputs, workdir):
    """{tensor: [array per input]} for every float activation of the fp32 model."""
    model = onnx.load(str(fp32_path))
    names = float_activations(model)
    outputs = {out.name for out in model.graph.output}
    model.graph.output.extend(helper.make_empty_tensor_value_info(name) for name in names if name not in outputs)
    augmented = Path(workdir) / "augmented.onnx"
    onnx.save(model, str(augmented))
    runs = ort_node.run_model(augmented, inputs, workdir, optimization="disabled")
    return {name: [run[name] for run in runs] for name in names}


def minmax_ranges(activations):
    """ORT's MinMax calibrator: the smallest and largest value over all calibration inputs."""
    return {name: (min(float(a.min()) for a in arrays), max(float(a.max()) for a in arrays))
            for name, arrays in activations.items()}


def percentile_ranges(activations, percentile):
    """ORT's Percentile calibrator (symmetric, its default): T = the percentile of |x| over all
    inputs, range [-T, T] clipped to the observed [min, max].

    ORT reads T off a 2048-bin histogram of |x| (the left edge of the bin where the cumulative
    share crosses the percentile); this takes the exact percentile, which differs by under one bin.
    """
    ranges = {}
    for name, (low, high) in minmax_ranges(activations).items():
        magnitudes = np.concatenate([np.abs(a).ravel() for a in activations[name]])
        threshold = float(np.percentile(magnitudes, percentile))
        ranges[name] = (max(-threshold, low), min(threshold, high))
    return ranges


def uint8_params(low, high):
    """ORT's compute_scale_zp for asymmetric uint8: the range widened to hold 0, 255 steps."""
    low, high = np.float32(min(low, 0.0)), np.float32(max(high, 0.0))
    scale = np.float32((np.float64(high) - np.float64(low)) / UINT8_MAX)
    if scale < np.finfo(np.float32).tiny:
        return np.float32(1.0), np.uint8(0)
    return scale, np.uint8(np.clip(np.round(-low / scale), 0, UINT8_MAX))


def int8_per_channel(weights):
    """ORT's per-channel symmetric int8 weights (axis 0): (quantised, scales [C])."""
    flat = weights.reshape(weights.shape[0], -1).astype(np.float32)
    absmax = np.abs(flat).max(axis=1)
    scales = (absmax.astype(np.float64) / INT8_SYMMETRIC_MAX).astype(np.float32)
    scales[scales < np.finfo(np.float32).tiny] = 1.0
    quantised = np.clip(np.round(flat / scales[:, None]), -128, 127).astype(np.int8)
    return quantised.reshape(weights.shape), scales


class QdqWriter:
    """Rewrites an fp32 graph into QDQ form, node by node in graph order, as ORT's QDQQuantizer does."""

    def __init__(self, model, ranges, op_types):
        self.op_types = op_types
        self.model = model
        self.ranges = ranges
        self.initializers = {init.name: init for init in model.graph.initializer}
        self.new_initializers = []
        self.tensor_params = {}  # tensor -> (scale name, zero point name) of its QuantizeLinear
        self.scales = {}  # tensor -> its scale, for the biases
        self.consumers = {}
        for node in model.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.graph_outputs = {out.name for out in model.graph.output}

    def add_initializer(self, array, name):
        self.new_initializers.append(numpy_helper.from_array(array, name))
        return name

    def quantise_activation(self, name):
        """Gives `name` its own uint8 scale and zero point from its calibrated range."""
        if name in self.tensor_params or name not in self.ranges:
            return  # already quantised, or not a float activation (shapes, constants)
        scale, zero_point = uint8_params(*self.ranges[name])
        self.scales[name] = scale
        self.tensor_params[name] = (self.add_initializer(np.array(scale), f"{name}_scale"),
                                    self.add_initializer(np.array(zero_point), f"{name}_zero_point"))

    def quantise_like(self, output, source):
        if source in self.tensor_params and output in self.ranges:
            self.tensor_params[output] = self.tensor_params[source]
            self.scales[output] = self.scales[source]

    def quantise_node(self, node, kept):
        """Gives the node's tensors their quantisation as ORT's operator class for its type does;
        False when the node goes away (a Relu after a quantised tensor read only by it)."""
        if node.op_type in REMOVABLE_ACTIVATIONS:
            source = node.input[0]
            if source in self.tensor_params and len(self.consumers[source]) == 1 and source not in self.graph_outputs:
                # The producer writes the Relu's output directly, quantised with the Relu's range.
                del self.tensor_params[source]
                producer = next(n for n in kept if source in n.output)
                producer.output[list(producer.output).index(source)] = node.output[0]
                self.quantise_activation(node.output[0])
                return False
        elif node.op_type in OWN_RANGE_OPS:
            for name in [node.input[0]] if node.op_type == "Conv" else node.input:
                self.quantise_activation(name)
            if node.op_type == "Softmax":  # ORT fixes a Softmax output to [0, 1]
                self.ranges[node.output[0]] = (0.0, 1.0)
            self.quantise_activation(node.output[0])
        elif node.op_type in SAME_AS_INPUT_OPS:
            if node.op_type != "Gather":  # Gather's data is quantised only if it already is
                self.quantise_activation(node.input[0])
            self.quantise_like(node.output[0], node.input[0])
        return True

    def conv_parameters(self, node):
        """DequantizeLinear nodes for the conv's int8 weights and int32 bias; rewires the node to them."""
        weights = numpy_helper.to_array(self.initializers[node.input[1]])
        quantised, scales = int8_per_channel(weights)
        dequantised = []
        w_name = node.input[1]
        w_args = [self.add_initializer(quantised, f"{w_name}_quantized"), self.add_initializer(scales, f"{w_name}_scale"),
                  self.add_initializer(np.zeros(len(scales), np.int8), f"{w_name}_zero_point")]
        dequantised.append(helper.make_node("DequantizeLinear", w_args, [f"{w_name}_DequantizeLinear_Output"],
                                            f"{w_name}_DequantizeLinear", axis=0))
        node.input[1] = f"{w_name}_DequantizeLinear_Output"
        if len(node.input) > 2 and node.input[2]:
            b_name = node.input[2]
            bias_scales = (self.scales[node.input[0]] * scales).astype(np.float32)
            exact = np.round(numpy_helper.to_array(self.initializers[b_name]).astype(np.float64) / bias_scales)
            if np.abs(exact).max() > np.iinfo(np.int32).max:
                sys.exit(f"make_qdq.py: the bias {b_name} overflows int32 at scale input x weight")
            b_args = [self.add_initializer(exact.astype(np.int32), f"{b_name}_quantized"),
                      self.add_initializer(bias_scales, f"{b_name}_quantized_scale"),
                      self.add_initializer(np.zeros(len(scales), np.int32), f"{b_name}_quantized_zero_point")]
            dequantised.append(helper.make_node("DequantizeLinear", b_args, [f"{b_name}_quantized_DequantizeLinear_Output"],
                                                f"{b_name}_quantized_DequantizeLinear", axis=0))
            node.input[2] = f"{b_name}_quantized_DequantizeLinear_Output"
        return dequantised

    def write(self):
        graph = self.model.graph
        kept = []
        for node in graph.node:
            if node.op_type in self.op_types and not self.quantise_node(node, kept):
                continue  # a Relu that the producer's uint8 range replaces
            if node.op_type == "Conv":
                kept.extend(self.conv_parameters(node))
            kept.append(node)
        graph.ClearField("node")
        graph.node.extend(self.insert_qdq_pairs(kept))
        used = {name for node in graph.node for name in node.input}
        graph.ClearField("value_info")
        remaining = [init for init in graph.initializer if init.name in used]
        graph.ClearField("initializer")
        graph.initializer.extend(remaining + [init for init in self.new_initializers if init.name in used])
        return self.model

    def insert_qdq_pairs(self, nodes):
        """QuantizeLinear -> DequantizeLinear after each quantised tensor; its readers read the
        DequantizeLinear. A graph output keeps its name on the DequantizeLinear."""
        def pair(name, source):
            scale, zero_point = self.tensor_params[name]
            dq_out = name if name in self.graph_outputs else f"{name}_DequantizeLinear_Output"
            return dq_out, [helper.make_node("QuantizeLinear", [source, scale, zero_point], [f"{name}_QuantizeLinear_Output"],
                                             f"{name}_QuantizeLinear"),
                            helper.make_node("DequantizeLinear", [f"{name}_QuantizeLinear_Output", scale, zero_point],
                                             [dq_out], f"{name}_DequantizeLinear")]
        out, rewired = [], {}
        for graph_input in self.model.graph.input:
            if graph_input.name in self.tensor_params:
                rewired[graph_input.name], qdq = pair(graph_input.name, graph_input.name)
                out.extend(qdq)
        for node in nodes:
            for k, name in enumerate(node.input):
                node.input[k] = rewired.get(name, name)
            qdqs = []
            for k, name in enumerate(node.output):
                if name in self.tensor_params:
                    source = f"{name}_QuantizeLinear_Input" if name in self.graph_outputs else name
                    node.output[k] = source
                    rewired[name], qdq = pair(name, source)
                    qdqs.extend(qdq)
            out.append(node)
            out.extend(qdqs)
        return out


def pin_input(model, height, width):
    """The same model with a fixed 1 x 3 x height x width input (ORT then folds the shape arithmetic)."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, value in zip(dims, (1, 3, height, width)):
        dim.Clear()
        dim.dim_value = value
    return model


def calibrate(upstream_dir, workdir, log=print):
    """(the fp32 ModelProto, {tensor: [array per calibration image]}) for quantise()."""
    images = [Path(upstream_dir) / "images" / name for name in CALIBRATION_IMAGES]
    inputs = [retinaface_post.network_input(path, CALIBRATION_MAX_SIDE) for path in images]
    fp32_path = Path(workdir) / "fp32.onnx"
    model = export_fp32(upstream_dir, fp32_path)
    log(f"calibrating on {', '.join(CALIBRATION_IMAGES)} (longer side {CALIBRATION_MAX_SIDE}) in ONNX Runtime")
    return model, collect_activations(fp32_path, inputs, workdir)


def quantise(fp32_model, activations, calibration, percentile=PERCENTILE_DEFAULT, scope="ort-default"):
    """The QDQ ModelProto (input size free) for one calibration method; fp32_model is left as it was."""
    if calibration == "minmax":
        ranges = minmax_ranges(activations)
    else:
        ranges = percentile_ranges(activations, percentile)
    model = onnx.ModelProto()
    model.CopyFrom(fp32_model)
    qdq = QdqWriter(model, ranges, OP_TYPE_SCOPES[scope]).write()
    onnx.checker.check_model(qdq)
    return qdq


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the QDQ .onnx file to write")
    parser.add_argument("--calibration", choices=("minmax", "percentile"), default="minmax",
                        help="ORT's MinMax (default) or Percentile calibrator")
    parser.add_argument("--percentile", type=float, default=PERCENTILE_DEFAULT,
                        help=f"percentile of |x| for --calibration percentile (default {PERCENTILE_DEFAULT})")
    parser.add_argument("--quantise", choices=OP_TYPE_SCOPES, default="ort-default",
                        help="op types given QDQ: ORT's default set (default) or Conv only (op_types_to_quantize=['Conv'])")
    parser.add_argument("--height", type=int, help="pin the input height (with --width)")
    parser.add_argument("--width", type=int, help="pin the input width (with --height)")
    parser.add_argument("--upstream", type=Path, default=UPSTREAM_DIR_DEFAULT,
                        help="the upstream checkpoints and images (default $FACET_UPSTREAM, else ../shared/upstream)")
    args = parser.parse_args()
    if not args.out.parent.is_dir():
        parser.error(f"{args.out}: the directory {args.out.parent} does not exist")
    if (args.height is None) != (args.width is None):
        parser.error("--height and --width go together")
    if args.height is not None and (args.height < 32 or args.width < 32):
        parser.error(f"--height {args.height} --width {args.width}: each must be at least 32 (the coarsest stride)")
    if not 50 < args.percentile < 100:
        parser.error(f"--percentile {args.percentile}: must be in (50, 100)")
    return args


def main():
    args = parse_args()
    for name in (CHECKPOINT, *(f"images/{image}" for image in CALIBRATION_IMAGES)):
        if not (args.upstream / name).exists():
            sys.exit(f"make_qdq.py: {args.upstream / name} not found (--upstream names the directory)")
    with tempfile.TemporaryDirectory(prefix="facet-qdq-") as tmp:
        try:
            fp32_model, activations = calibrate(args.upstream, tmp)
        except RuntimeError as why:  # node / onnxruntime-node missing or failing
            sys.exit(f"make_qdq.py: {why}")
    qdq = quantise(fp32_model, activations, args.calibration, args.percentile, args.quantise)
    if args.height is not None:
        pin_input(qdq, args.height, args.width)
    onnx.save(qdq, str(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
