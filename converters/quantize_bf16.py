#!/usr/bin/env python3
"""Turn a RetinaFace or graph facet file (float32) into a bf16 one: the weights of the layers facet runs in
bf16 (AVX512-BF16, kernels/conv1x1_bf16.hpp and winograd_f43_bf16.hpp) rounded to bfloat16 (to
nearest, ties to even), their biases and every other layer kept float32, and "precision": "bf16"
in the metadata. facet loads each layer by its weights' dtype; on a CPU without AVX512-BF16 it
widens the bf16 weights back to float32 (exactly) and runs the fp32 kernels.

Which layers, measured (README, "bf16 weights"; tests/test_retinaface_bf16.cpp holds the gate):
the backbone's pointwise convs, the FPN (lateral 1x1s and 3x3 merges), the heads and the context
modules' two convs that read the FPN's 64 channels (conv3X3, conv5X5_1) run in bf16. Kept float32:
the stem conv and the first block (they run fused in float32, mobilenet_stem.hpp), the second
block's pointwise conv (16 input channels: 5% slower in bf16, the conversion outweighs), the
depthwise convs (no bf16 kernel: memory-bound, bf16 would not speed them) and the context modules'
three 16 -> 16 convs: with them in bf16 too the seven shared images still pass the gate, but 3 of
their 21 mirrored, darkened and cropped variants do not (a landmark 2.2% of the box off on
selfie_group.jpg mirrored; with only the two 64-channel convs, 21 of 21 pass, as with none).

A graph file (model "graph": PFLD-GhostOne, face_landmark_68; graph.hpp runs it): its pointwise
convs run in bf16, layers named by their op. Kept float32: depthwise, strided, 2x2 and larger convs
and dense layers (no bf16 kernel: bf16 would only round them), and the dense 3x3 stride-1 convs,
which have one (Winograd) but, measured (README, "bf16 weights"; tests/test_landmarks_bf16.cpp holds
the gate), cost accuracy for no time: PFLD-GhostOne's only one (Conv_107, 16 -> 32 channels on its
7 x 7 map) in bf16 tripled the mean NME against fp32 on the shared images' faces (0.05% -> 0.15% of
the box, worst 0.31% -> 0.65%). face_landmark_68's first pointwise convs (32 input channels) were
measured faster in bf16 too, so every pointwise conv is in.

`--keep-fp32 REGEX` keeps more layers float32 (a layer's name: the weight tensor's without
".weight" for RetinaFace, the op's for a graph).

    python3 converters/quantize_bf16.py --out weights/retinaface_mnet025_official_bf16.facet \\
        weights/retinaface_mnet025_official.facet
    python3 converters/quantize_bf16.py --out weights/pfld_ghostone_bf16.facet weights/pfld_ghostone.facet

NumPy and the standard library only, as the other converters.
"""

import argparse
import re
import sys

import numpy as np

import facetfile
from cli import ConverterError, InputFileError, run_converter

PROGRAM = "quantize_bf16.py"

# The layers (weight tensor names without ".weight") run in bf16 by default.
BF16_LAYERS = [
    r"body\.stage1\.[3-5]\.3",          # backbone pointwise convs from the third block (the second's,
                                        # 16 -> 32 channels, measured 5% slower in bf16: too few pairs)
    r"body\.stage[23]\.\d+\.3",
    r"fpn\.(output|merge)\d\.0",        # FPN lateral 1x1s and 3x3 merges
    r"(ClassHead|BboxHead|LandmarkHead)\.\d\.conv1x1",
    r"ssh\d\.conv(3X3|5X5_1)\.0",        # the context modules' convs reading the FPN's 64 channels
                                        # (their 16 -> 16 convs in bf16 cost the gate on variants)
]


def retinaface_layers(tensors):
    """(layer, weight tensor name, whether it runs in bf16) for each conv of a RetinaFace file."""
    bf16 = re.compile("|".join(f"(?:{pattern})" for pattern in BF16_LAYERS))
    for name, array in tensors.items():
        layer, _, kind = name.rpartition(".")
        if kind == "weight" and array.ndim == 4 and array.dtype == np.float32:
            yield layer, name, bool(bf16.fullmatch(layer))


def is_pointwise(op):
    """Whether graph.hpp runs this graph op on the pointwise conv kernel (conv1x1_bf16 in bf16)."""
    return (op.get("op") == "conv" and op.get("groups") == 1 and op.get("kernel") == [1, 1] and
            op.get("stride") == [1, 1] and op.get("pads") == [0, 0, 0, 0] and op.get("dilation") == [1, 1])


def graph_layers(source, metadata, tensors):
    """(op name, weight tensor name, whether it runs in bf16) for each conv and dense op of a graph file."""
    try:
        ops = metadata["graph"]["ops"]
        for op in ops:
            if op["op"] in ("conv", "dense"):
                name = op["weight"]
                if not isinstance(tensors.get(name), np.ndarray) or tensors[name].dtype != np.float32:
                    raise InputFileError(f"{source}: op {op['name']!r} reads weight {name!r}, which is not a float32 tensor "
                                         "of the file")
                yield op["name"], name, is_pointwise(op)
    except (KeyError, TypeError) as error:
        raise InputFileError(f"{source}: bad graph metadata ({error!r} missing or malformed)") from None


def quantize(source, out, keep_fp32):
    """Writes the bf16 file; returns (layers in bf16, layers kept float32)."""
    try:
        metadata, tensors = facetfile.read_facet(source)
    except ValueError as error:  # read_facet names the file and the reason
        raise InputFileError(str(error)) from None
    model = metadata.get("model")
    if model not in ("retinaface", "graph"):
        raise InputFileError(f"{source}: model is {model!r}; this tool's layer choice was measured "
                             "for 'retinaface' and 'graph' files only")
    if metadata.get("precision", "fp32") != "fp32":
        raise InputFileError(f"{source}: precision is {metadata['precision']!r}; give the float32 file")
    layers = list(retinaface_layers(tensors) if model == "retinaface" else graph_layers(source, metadata, tensors))
    kept = [re.compile(pattern) for pattern in keep_fp32]
    written = {name: np.array(array) for name, array in tensors.items()}
    in_bf16, in_fp32 = [], []
    for layer, weight, eligible in layers:
        if eligible and not any(k.search(layer) for k in kept):
            written[weight] = facetfile.BFloat16.from_float32(tensors[weight])  # to nearest, ties to even
            in_bf16.append(layer)
        else:
            in_fp32.append(layer)
    if not in_bf16:
        raise ConverterError(f"no layer is left in bf16 (every bf16 layer matched --keep-fp32, or the file has none "
                             f"of the {model} layers that run in bf16)")
    facetfile.write_facet(out, {**metadata, "precision": "bf16"}, written)
    return in_bf16, in_fp32


def _argument_parser():
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="the bf16 facet file to write")
    parser.add_argument("--keep-fp32", action="append", default=[], metavar="REGEX",
                        help="also keep float32 the layers whose name matches (repeatable), e.g. 'fpn\\.merge'")
    parser.add_argument("source", help="a RetinaFace or graph facet file in float32 (pth2facet.py's, onnx2facet.py's or "
                                       "tfjs2facet.py's output)")
    return parser


def main(argv=None):
    args = _argument_parser().parse_args(argv)
    for pattern in args.keep_fp32:
        try:
            re.compile(pattern)
        except re.error as error:
            print(f"{PROGRAM}: error: --keep-fp32 {pattern!r} is no regular expression ({error})", file=sys.stderr)
            return 2

    def convert_call():
        in_bf16, in_fp32 = quantize(args.source, args.out, args.keep_fp32)
        return f"{len(in_bf16)} layers in bf16, {len(in_fp32)} in float32"
    return run_converter(PROGRAM, [args.source], args.out, convert_call)


if __name__ == "__main__":
    sys.exit(main())
