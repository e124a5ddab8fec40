#!/usr/bin/env python3
"""quantize_bf16: which layers of a RetinaFace or graph file become bfloat16 (rounded to nearest even,
biases and the other layers kept float32, "precision": "bf16" in the metadata), and every refusal as
one line with exit status 2."""

import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np

import support
import facetfile

QUANTIZE = support.CONVERTERS / "quantize_bf16.py"


def run_quantize(*arguments):
    return subprocess.run([sys.executable, str(QUANTIZE), *map(str, arguments)], capture_output=True, text=True,
                          check=False)


def tiny_retinaface(path, metadata=None):
    """A file with four of RetinaFace's layer names (not a whole network: the tool only renames dtypes)."""
    # 1 + 2^-8 is a tie between bfloat16 neighbours 1 and 1 + 2^-7: it rounds to the even one, 1;
    # 1 + 3 x 2^-8 rounds up to 1 + 2^-6.
    pointwise = np.array([1.0, 1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, -2.0], dtype=np.float32).reshape(4, 1, 1, 1)
    tensors = {
        "body.stage2.1.3.weight": pointwise,
        "body.stage2.1.3.bias": np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32),
        "ssh1.conv3X3.0.weight": np.full((2, 1, 3, 3), 0.3, dtype=np.float32),
        "ssh1.conv3X3.0.bias": np.zeros(2, dtype=np.float32),
        "ssh1.conv7X7_2.0.weight": np.full((2, 1, 3, 3), 0.3, dtype=np.float32),
        "ssh1.conv7X7_2.0.bias": np.zeros(2, dtype=np.float32),
        "fpn.merge1.0.weight": np.full((2, 1, 3, 3), 0.3, dtype=np.float32),
        "fpn.merge1.0.bias": np.zeros(2, dtype=np.float32),
    }
    facetfile.write_facet(path, metadata or {"model": "retinaface", "format": 1}, tensors)


def conv_op(name, kernel, stride, pads, groups=1):
    return {"op": "conv", "name": name, "input": "x", "output": name, "weight": f"{name}.weight", "groups": groups,
            "kernel": [kernel, kernel], "stride": [stride, stride], "pads": pads, "dilation": [1, 1],
            "activation": {"kind": "none"}}


def tiny_graph(path, ops=None):
    """A graph file's ops and weights (not a runnable graph: the tool reads only the ops' shapes)."""
    ops = ops or [
        conv_op("pointwise", 1, 1, [0, 0, 0, 0]),
        conv_op("pointwise2", 1, 1, [0, 0, 0, 0]),
        conv_op("padded_pointwise", 1, 1, [1, 1, 1, 1]),
        conv_op("same3x3", 3, 1, [1, 1, 1, 1]),
        conv_op("valid3x3", 3, 1, [0, 0, 0, 0]),
        conv_op("strided3x3", 3, 2, [1, 1, 1, 1]),
        conv_op("tf_same_strided", 3, 2, [0, 0, 1, 1]),
        conv_op("depthwise", 3, 1, [1, 1, 1, 1], groups=2),
        conv_op("seven", 7, 1, [0, 0, 0, 0]),
        {"op": "dense", "name": "fc", "input": "x", "output": "fc", "weight": "fc.weight"},
        {"op": "activation", "name": "relu", "input": "fc", "output": "y", "activation": {"kind": "relu"}},
    ]
    shapes = {"pointwise": (2, 2, 1, 1), "pointwise2": (2, 2, 1, 1), "padded_pointwise": (2, 2, 1, 1), "same3x3": (2, 2, 3, 3), "valid3x3": (2, 2, 3, 3), "strided3x3": (2, 2, 3, 3),
              "tf_same_strided": (2, 2, 3, 3), "depthwise": (2, 1, 3, 3), "seven": (2, 2, 7, 7), "fc": (2, 8)}
    tensors = {f"{name}.weight": np.full(shape, 1.0 + 3 * 2.0 ** -8, dtype=np.float32) for name, shape in shapes.items()}
    tensors["pointwise.bias"] = np.array([0.1, 0.2], dtype=np.float32)
    facetfile.write_facet(path, {"model": "graph", "format": "facet", "graph": {"ops": ops}}, tensors)


class QuantizeBf16Test(unittest.TestCase):
    def setUp(self):
        temporary = tempfile.TemporaryDirectory()
        self.addCleanup(temporary.cleanup)
        self.dir = Path(temporary.name)
        self.source, self.out = self.dir / "fp32.facet", self.dir / "bf16.facet"
        tiny_retinaface(self.source)

    def test_layers_in_bf16_rounded_to_nearest_even(self):
        result = run_quantize("--out", self.out, self.source)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("3 layers in bf16, 1 in float32", result.stdout)
        metadata, tensors = facetfile.read_facet(self.out)
        self.assertEqual(metadata["precision"], "bf16")
        pointwise = tensors["body.stage2.1.3.weight"]
        self.assertIsInstance(pointwise, facetfile.BFloat16)
        self.assertEqual(pointwise.bits.ravel().tolist(), [0x3F80, 0x3F80, 0x3F82, 0xC000])
        self.assertIsInstance(tensors["fpn.merge1.0.weight"], facetfile.BFloat16)
        self.assertIsInstance(tensors["ssh1.conv3X3.0.weight"], facetfile.BFloat16)
        # Biases, and the context modules' 16 -> 16 convs (measured to cost the gate in bf16), stay float32.
        self.assertEqual(tensors["body.stage2.1.3.bias"].dtype, np.float32)
        self.assertEqual(tensors["ssh1.conv7X7_2.0.weight"].dtype, np.float32)

    def test_graph_pointwise_convs_in_bf16(self):
        tiny_graph(self.source)
        result = run_quantize("--out", self.out, self.source)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("2 layers in bf16, 8 in float32", result.stdout)
        metadata, tensors = facetfile.read_facet(self.out)
        self.assertEqual(metadata["precision"], "bf16")
        self.assertEqual(metadata["graph"], facetfile.read_facet(self.source)[0]["graph"])
        # Pointwise convs (graph.hpp's conv1x1). 1 + 3 x 2^-8 rounds to nearest, up, to 1 + 2^-6.
        for name in ("pointwise", "pointwise2"):
            self.assertIsInstance(tensors[f"{name}.weight"], facetfile.BFloat16, name)
            self.assertEqual(set(tensors[f"{name}.weight"].bits.ravel().tolist()), {0x3F82}, name)
        # A padded 1x1, strided, depthwise, 7x7 and dense layers have no bf16 kernel; the 3x3 stride-1
        # convs have one but were measured to cost accuracy for no time. Biases stay float32.
        for name in ("padded_pointwise", "same3x3", "valid3x3", "strided3x3", "tf_same_strided", "depthwise", "seven", "fc"):
            self.assertEqual(tensors[f"{name}.weight"].dtype, np.float32, name)
        self.assertEqual(tensors["pointwise.bias"].dtype, np.float32)

    def test_graph_keep_fp32_by_op_name(self):
        tiny_graph(self.source)
        result = run_quantize("--keep-fp32", "2$", "--out", self.out, self.source)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("1 layers in bf16, 9 in float32", result.stdout)
        _, tensors = facetfile.read_facet(self.out)
        self.assertEqual(tensors["pointwise2.weight"].dtype, np.float32)
        self.assertIsInstance(tensors["pointwise.weight"], facetfile.BFloat16)

    def test_keep_fp32(self):
        result = run_quantize("--keep-fp32", r"fpn\.", "--out", self.out, self.source)
        self.assertEqual(result.returncode, 0, result.stderr)
        _, tensors = facetfile.read_facet(self.out)
        self.assertEqual(tensors["fpn.merge1.0.weight"].dtype, np.float32)
        self.assertIsInstance(tensors["body.stage2.1.3.weight"], facetfile.BFloat16)

    def test_refusals_are_one_line_with_status_2(self):
        other, graph, broken, no_bf16 = (self.dir / name for name in ("mesh.facet", "graph.facet", "broken.facet",
                                                                       "no_bf16.facet"))
        tiny_retinaface(other, {"model": "mesh"})
        tiny_graph(graph)
        tiny_graph(broken, [conv_op("pointwise", 1, 1, [0, 0, 0, 0]) | {"weight": "absent"}])
        tiny_graph(no_bf16, [conv_op("strided3x3", 3, 2, [1, 1, 1, 1])])
        run_quantize("--out", self.out, self.source)
        cases = [
            ((other,), "model is 'mesh'"),
            ((broken,), "op 'pointwise' reads weight 'absent', which is not a float32 tensor of the file"),
            ((no_bf16,), "no layer is left in bf16"),
            (("--keep-fp32", "pointwise", graph), "no layer is left in bf16"),
            ((self.out,), "precision is 'bf16'; give the float32 file"),
            ((self.dir / "missing.facet",), "No such file or directory"),
            (("--keep-fp32", ".", self.source), "no layer is left in bf16"),
            (("--keep-fp32", "(", self.source), "is no regular expression"),
        ]
        for arguments, message in cases:
            with self.subTest(arguments=arguments):
                result = run_quantize("--out", self.dir / "x.facet", *arguments)
                self.assertEqual(result.returncode, 2)
                self.assertIn(message, result.stderr)
                self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)
                self.assertNotIn("Traceback", result.stderr)


if __name__ == "__main__":
    unittest.main()
