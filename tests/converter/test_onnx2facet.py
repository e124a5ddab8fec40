#!/usr/bin/env python3
"""onnx2facet and its protobuf reader: what is converted into what (fusions, folded shape
arithmetic, layouts), what is refused and how it is said, and the real PFLD-GhostOne model.
The models are written by onnx_writer.py, or are the committed fixtures of tests/onnx."""

import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np

import onnx_writer as w
from support import CONVERTERS, REPO_ROOT, upstream_dir
from facetfile import read_facet
from onnx2facet import ConversionError, Converter, window_count
from onnxproto import OnnxError, parse_model

ONNX2FACET = CONVERTERS / "onnx2facet.py"
PFLD = upstream_dir() / "pfld" / "PFLD_GhostOne_112_1_opt_sim.onnx"


def run_onnx2facet(*arguments):
    return subprocess.run([sys.executable, str(ONNX2FACET), *map(str, arguments)], capture_output=True, text=True,
                          check=False)


def graph_of(model_bytes, **options):
    """The converted graph metadata and tensors of an in-memory model."""
    converter = Converter(parse_model(model_bytes, "test.onnx"), **options)
    return converter.run(), converter.tensors


def conv_model(extra_nodes=(), extra_initializers=None, output="y", output_shape=(1, 4, 6, 6), opset=13):
    """x [1, 3, 6, 6] -> Conv 3x3 pad 1 (4 channels, bias) -> `extra_nodes` -> output."""
    rng = np.random.default_rng(0)
    initializers = {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
                    "b": rng.standard_normal(4).astype(np.float32), **(extra_initializers or {})}
    nodes = [w.node("Conv", ["x", "w", "b"], ["c"], "conv", pads=[1, 1, 1, 1]), *extra_nodes]
    return w.model(nodes, initializers, [("x", [1, 3, 6, 6])], [(output, list(output_shape))], opset)


class ReaderTest(unittest.TestCase):
    """The protobuf reader refuses what is not a whole ONNX model, clearly."""

    def test_every_truncation_is_a_clear_error(self):
        model = conv_model([w.node("Relu", ["c"], ["y"], "relu")])
        parse_model(model, "whole.onnx")
        for size in range(0, len(model), 7):
            with self.subTest(size=size), self.assertRaises((OnnxError, ConversionError)) as caught:
                graph_of(model[:size])
            self.assertRegex(str(caught.exception), "truncated|empty file")

    def test_not_onnx(self):
        with self.assertRaisesRegex(OnnxError, "not an ONNX"):
            parse_model(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "noise.bin")
        with self.assertRaisesRegex(OnnxError, "empty file"):
            parse_model(b"", "empty.onnx")


class ConversionTest(unittest.TestCase):

    def test_batchnorm_and_relu_fold_into_the_conv(self):
        bn = {"g": np.array([1.5, 0.5, 2.0, 1.0], np.float32), "beta": np.array([0.1, -0.2, 0.3, 0.0], np.float32),
              "mean": np.array([0.5, -1.0, 0.0, 2.0], np.float32), "var": np.array([1.0, 4.0, 0.25, 2.0], np.float32)}
        model = conv_model([w.node("BatchNormalization", ["c", "g", "beta", "mean", "var"], ["n"], "bn", epsilon=1e-3),
                            w.node("Relu", ["n"], ["y"], "relu")], bn)
        graph, tensors = graph_of(model)
        (op,) = graph["ops"]
        self.assertEqual(op["op"], "conv")
        self.assertEqual(op["activation"], {"kind": "relu"})
        scale = bn["g"].astype(np.float64) / np.sqrt(bn["var"] + 1e-3)
        rng = np.random.default_rng(0)
        weight, bias = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
        np.testing.assert_allclose(tensors[op["weight"]], weight * scale[:, None, None, None], rtol=1e-6)
        np.testing.assert_allclose(tensors[op["bias"]], (bias - bn["mean"]) * scale + bn["beta"], rtol=1e-6, atol=1e-7)
        self.assertEqual(graph["outputs"], [{"name": "y", "value": "c", "onnx_shape": [1, 4, 6, 6], "order": "chw"}])

    def test_relu6_stays_a_clip_and_clip_to_infinity_is_a_relu(self):
        six = conv_model([w.node("Clip", ["c", "lo", "hi"], ["y"], "clip")],
                         {"lo": np.array(0, np.float32), "hi": np.array(6, np.float32)})
        ops = graph_of(six)[0]["ops"]
        self.assertEqual([op["op"] for op in ops], ["conv", "activation"])
        self.assertEqual(ops[1]["activation"], {"kind": "clip", "min": 0.0, "max": 6.0})
        relu = conv_model([w.node("Clip", ["c", "lo"], ["y"], "clip")], {"lo": np.array(0, np.float32)})
        (op,) = graph_of(relu)[0]["ops"]
        self.assertEqual(op["activation"], {"kind": "relu"})

    def test_an_activation_read_twice_is_not_fused(self):
        model = conv_model([w.node("Relu", ["c"], ["r"], "relu"), w.node("Add", ["c", "r"], ["y"], "add")])
        self.assertEqual([op["op"] for op in graph_of(model)[0]["ops"]], ["conv", "activation", "add"])

    def test_shape_arithmetic_is_folded_and_a_layout_keeping_reshape_is_free(self):
        # Global pooling, then Reshape to [N, -1] with N read from the input's shape, then Gemm.
        nodes = [w.node("GlobalAveragePool", ["c"], ["p"], "pool"),
                 w.node("Shape", ["p"], ["s"], "shape"),
                 w.node("Gather", ["s", "zero"], ["n"], "gather", axis=0),
                 w.node("Unsqueeze", ["n", "axes"], ["n1"], "unsqueeze"),
                 w.node("Concat", ["n1", "minus_one"], ["target"], "concat", axis=0),
                 w.node("Reshape", ["p", "target"], ["flat"], "reshape"),
                 w.node("Gemm", ["flat", "fc", "fc_bias"], ["y"], "fc", transB=1)]
        initializers = {"zero": np.array(0, np.int64), "axes": np.array([0], np.int64),
                        "minus_one": np.array([-1], np.int64), "fc": np.ones((5, 4), np.float32),
                        "fc_bias": np.zeros(5, np.float32)}
        graph, _ = graph_of(conv_model(nodes, initializers, output_shape=(1, 5)))
        self.assertEqual([op["op"] for op in graph["ops"]], ["conv", "avg_pool", "dense"])
        self.assertEqual(graph["ops"][2]["input"], "p")  # the reshape is the pooled map itself
        self.assertEqual(graph["values"]["p"], [1, 1, 4])

    def test_flattening_a_map_is_a_channel_major_copy(self):
        nodes = [w.node("Flatten", ["c"], ["y"], "flatten", axis=1)]
        graph, _ = graph_of(conv_model(nodes, output_shape=(1, 144)))
        self.assertEqual(graph["ops"][1], {"op": "flatten", "name": "flatten", "output": "y", "input": "c", "order": "chw"})
        self.assertEqual(graph["values"]["y"], [1, 1, 144])

    def test_pooling_shapes_follow_onnx(self):
        self.assertEqual(window_count(12, 3, 2, 1, 1, ceil_mode=False), 6)
        self.assertEqual(window_count(12, 3, 2, 1, 1, ceil_mode=True), 7)
        self.assertEqual(window_count(5, 2, 2, 0, 0, ceil_mode=True), 3)
        self.assertEqual(window_count(5, 2, 2, 1, 1, ceil_mode=True), 3)  # a window starting in the right pad is dropped
        nodes = [w.node("MaxPool", ["c"], ["y"], "pool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)]
        graph, _ = graph_of(conv_model(nodes, output_shape=(1, 4, 4, 4)))
        self.assertEqual(graph["values"]["y"], [4, 4, 4])

    def test_ops_nothing_reads_are_dropped(self):
        model = conv_model([w.node("Relu", ["c"], ["y"], "relu"), w.node("Sigmoid", ["y"], ["unused"], "sigmoid")])
        self.assertEqual([op["op"] for op in graph_of(model)[0]["ops"]], ["conv"])

    def test_a_symbolic_input_needs_input_shape(self):
        model = w.model([w.node("Relu", ["x"], ["y"], "relu")], {}, [("x", ["N", 3, 8, 8])], [("y", ["N", 3, 8, 8])])
        with self.assertRaisesRegex(ConversionError, "give --input-shape"):
            graph_of(model)
        graph, _ = graph_of(model, input_shape=[1, 3, 8, 8])
        self.assertEqual(graph["values"]["y"], [8, 8, 3])


class RefusalTest(unittest.TestCase):
    """What facet cannot run is refused by name, with the node, in one line, exit status 2."""

    def convert_bytes(self, model_bytes):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            path.write_bytes(model_bytes)
            result = run_onnx2facet("--raw-pixels", "--out", Path(tmp) / "out.facet", path)
            self.assertFalse((Path(tmp) / "out.facet").exists())
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertEqual(result.stdout, "")
        self.assertNotIn("Traceback", result.stderr)
        self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)
        return result.stderr

    def test_unsupported_operator(self):
        error = self.convert_bytes(conv_model([w.node("Erf", ["c"], ["y"], "the_erf")]))
        self.assertIn("onnx2facet: error: ", error)
        self.assertIn("unsupported operator Erf (Erf node 'the_erf')", error)

    def test_unsupported_attribute_values(self):
        cases = [
            (w.node("Resize", ["c", "", "scales"], ["y"], "up", mode="linear"), {"scales": np.array([1, 1, 2, 2], np.float32)},
             "Resize node 'up': Resize mode 'linear' is not supported"),
            (w.node("Resize", ["c", "", "", "sizes"], ["y"], "up", coordinate_transformation_mode="align_corners"),
             {"sizes": np.array([1, 4, 10, 10], np.int64)}, "picks other pixels than facet does"),
            (w.node("Softmax", ["c"], ["y"], "softmax", axis=2), {}, "softmax over axis 2"),
            (w.node("Transpose", ["c"], ["y"], "transpose", perm=[0, 1, 3, 2]), {}, "only Transpose(0, 2, 3, 1)"),
            (w.node("MaxPool", ["c"], ["y"], "pool", kernel_shape=[2, 2], dilations=[2, 2]), {}, "dilated max-pooling"),
            (w.node("Relu", ["c"], ["y"], "relu", alpha=1.0), {}, "attribute 'alpha' is not supported"),
        ]
        for node, initializers, message in cases:
            with self.subTest(message=message):
                self.assertIn(message, self.convert_bytes(conv_model([node], initializers)))

    def test_truncated_onnx_file(self):
        model = conv_model([w.node("Relu", ["c"], ["y"], "relu")])
        error = self.convert_bytes(model[:len(model) // 2])
        self.assertRegex(error, "model.onnx: truncated file")

    def test_not_an_onnx_file(self):
        self.assertIn("not an ONNX model", self.convert_bytes(b"FACETWGT this is not protobuf"))

    @unittest.skipUnless(PFLD.exists(), f"{PFLD} not found")
    def test_truncated_pfld(self):
        error = self.convert_bytes(PFLD.read_bytes()[:1_000_000])
        self.assertIn("truncated file", error)


@unittest.skipUnless(PFLD.exists(), f"{PFLD} not found (set FACET_UPSTREAM)")
class PfldTest(unittest.TestCase):
    """The real model: GhostNet blocks, global pooling, a 7x7 conv and the fully connected head."""

    def test_converts_to_a_loadable_graph(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "pfld.facet"
            result = run_onnx2facet("--out", out, "--color", "rgb", "--mean", "127.5,127.5,127.5",
                                    "--scale", "0.0078431373,0.0078431373,0.0078431373",
                                    PFLD)
            self.assertEqual(result.returncode, 0, result.stderr)
            metadata, tensors = read_facet(out)
        graph = metadata["graph"]
        self.assertEqual(metadata["model"], "graph")
        self.assertEqual(metadata["input"], {"color": "rgb", "mean": [127.5] * 3, "scale": [0.0078431373] * 3})
        self.assertEqual(graph["input"], {"name": "input", "onnx_shape": [1, 3, 112, 112]})
        self.assertEqual(graph["outputs"], [{"name": "output", "value": "output", "onnx_shape": [1, 196], "order": "hwc"}])
        kinds = [op["op"] for op in graph["ops"]]
        self.assertEqual({kind: kinds.count(kind) for kind in set(kinds)},
                         {"conv": 51, "avg_pool": 4, "concat": 23, "dense": 1})
        # Every Relu follows a conv: all 26 become conv epilogues.
        self.assertEqual(sum(op.get("activation", {}).get("kind") == "relu" for op in graph["ops"]), 26)
        self.assertEqual(len(tensors), 103)  # 104 initializers: the reshape target is folded away
        self.assertEqual(metadata["source"][0]["sha256"], "74d1a83932af79c2689d9371b21f32d014552f089985f076e832e89cb18f41e8")


class FixtureTest(unittest.TestCase):
    """The committed exports of tests/onnx convert (the C++ tests check their numbers)."""

    def test_fixtures_convert(self):
        for name, ops in (("ops_zoo", 27), ("retinaface_random", 79)):
            with self.subTest(name=name):
                converter = Converter(parse_model((REPO_ROOT / "tests" / "onnx" / f"{name}.onnx").read_bytes(), name))
                self.assertEqual(len(converter.run()["ops"]), ops)


if __name__ == "__main__":
    unittest.main()
