#!/usr/bin/env python3
"""Turn a RetinaFace facet file (float32) into a bf16 one: the weights of the layers facet runs in
bf16 (AVX512-BF16, kernels/conv1x1_bf16.hpp and winograd_f43_bf16.hpp) rounded to bfloat16 (to
nearest, ties to even), their biases and every other layer kept float32, and "precision": "bf16"
in the metadata. facet loads each layer by its weights' dtype; on a CPU without AVX512-BF16 it
widens the bf16 weights back to float32 (exactly) and runs the fp32 kernels.

Which layers, measured (README, "bf16 weights"; tests/test_retinaface_bf16.cpp holds the gate):
the backbone's pointwise convs, the FPN (lateral 1x1s and 3x3 merges) and the heads run in bf16.
Kept float32: the stem conv and the first block (they run fused in float32, mobilenet_stem.hpp), the
second block's pointwise conv (16 input channels: 5% slower in bf16, the conversion outweighs), the
depthwise convs (no bf16 kernel: memory-bound, bf16 would not speed them) and the context modules,
whose five 3x3 convs in bf16 Winograd lost faces (a landmark 1.7% of the box off on crowd.jpg, a
score 0.033 off on selfie_group.jpg). `--keep-fp32 REGEX` keeps more layers float32.

    python3 converters/quantize_bf16.py --out weights/retinaface_mnet025_official_bf16.facet \\
        weights/retinaface_mnet025_official.facet

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
]


def quantize(source, out, keep_fp32):
    """Writes the bf16 file; returns (layers in bf16, layers kept float32)."""
    try:
        metadata, tensors = facetfile.read_facet(source)
    except ValueError as error:  # read_facet names the file and the reason
        raise InputFileError(str(error)) from None
    if metadata.get("model") != "retinaface":
        raise InputFileError(f"{source}: model is {metadata.get('model')!r}; this tool's layer choice was measured "
                             "for 'retinaface' files only")
    if metadata.get("precision", "fp32") != "fp32":
        raise InputFileError(f"{source}: precision is {metadata['precision']!r}; give the float32 file")
    bf16 = re.compile("|".join(f"(?:{pattern})" for pattern in BF16_LAYERS))
    kept = [re.compile(pattern) for pattern in keep_fp32]
    written, in_bf16, in_fp32 = {}, [], []
    for name, array in tensors.items():
        layer, _, kind = name.rpartition(".")
        if kind == "weight" and array.ndim == 4 and array.dtype == np.float32:
            if bf16.fullmatch(layer) and not any(k.search(layer) for k in kept):
                written[name] = facetfile.BFloat16.from_float32(array)  # to nearest, ties to even
                in_bf16.append(layer)
                continue
            in_fp32.append(layer)
        written[name] = np.array(array)
    if not in_bf16:
        raise ConverterError("no layer is left in bf16 (every bf16 layer matched --keep-fp32, or the file has none "
                             "of RetinaFace's layer names)")
    facetfile.write_facet(out, {**metadata, "precision": "bf16"}, written)
    return in_bf16, in_fp32


def _argument_parser():
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="the bf16 facet file to write")
    parser.add_argument("--keep-fp32", action="append", default=[], metavar="REGEX",
                        help="also keep float32 the layers whose name matches (repeatable), e.g. 'fpn\\.merge'")
    parser.add_argument("source", help="a RetinaFace facet file in float32 (converters/pth2facet.py's output)")
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
