"""Hand-computed cases for make_qdq.py's quantisation rules (ORT quantize_static's, QDQ format).

    /usr/bin/python3 -m unittest bench/peers/test_make_qdq.py
"""

import sys
import unittest
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_qdq  # noqa: E402  (needs this directory on the path)


class ParameterTest(unittest.TestCase):
    def test_uint8_asymmetric(self):
        scale, zero_point = make_qdq.uint8_params(-1.0, 3.0)
        self.assertAlmostEqual(float(scale), 4 / 255, places=7)
        self.assertEqual(int(zero_point), 64)  # 1 / (4 / 255) = 63.75
        scale, zero_point = make_qdq.uint8_params(2.0, 5.0)  # widened to hold 0
        self.assertAlmostEqual(float(scale), 5 / 255, places=7)
        self.assertEqual(int(zero_point), 0)
        self.assertEqual(make_qdq.uint8_params(0.0, 0.0), (1.0, 0))

    def test_int8_symmetric_per_output_channel(self):
        weights = np.array([[1.0, -2.0], [0.5, 0.25]], dtype=np.float32)
        quantised, scales = make_qdq.int8_per_channel(weights)
        np.testing.assert_allclose(scales, [2 / 127, 0.5 / 127], rtol=1e-6)
        # 1 / (2 / 127) = 63.5 and 0.25 / (0.5 / 127) = 63.5 round to even, as numpy (and ORT) do.
        np.testing.assert_array_equal(quantised, [[64, -127], [127, 64]])

    def test_percentile_range_is_symmetric_then_cut_to_the_observed_range(self):
        values = np.concatenate([np.linspace(-1, 9, 10001), [100.0]]).astype(np.float32)
        low, high = make_qdq.percentile_ranges({"t": [values]}, 99.0)["t"]
        self.assertEqual(low, -1.0)  # -T is below the smallest value
        self.assertAlmostEqual(high, float(np.percentile(np.abs(values), 99.0)), places=5)
        self.assertLess(high, 9.0)  # the outlier at 100 is cut


def tiny_model():
    """input -> Conv (2 channels, bias) -> LeakyRelu -> Concat(with itself) -> Relu -> output."""
    weights = numpy_helper.from_array(np.array([[[[1.0]]], [[[-0.5]]]], dtype=np.float32), "w")
    bias = numpy_helper.from_array(np.array([0.1, -0.2], dtype=np.float32), "b")
    nodes = [helper.make_node("Conv", ["input", "w", "b"], ["conv"]),
             helper.make_node("LeakyRelu", ["conv"], ["leaky"], alpha=0.1),
             helper.make_node("Concat", ["leaky", "leaky"], ["cat"], axis=1),
             helper.make_node("Relu", ["cat"], ["output"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 2, 2])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4, 2, 2])],
                              [weights, bias])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", make_qdq.QDQ_OPSET)])


class WriterTest(unittest.TestCase):
    def setUp(self):
        ranges = {"input": (-1.0, 1.0), "conv": (-2.0, 2.0), "leaky": (-0.2, 2.0), "cat": (-0.2, 2.0), "output": (0.0, 2.0)}
        self.model = make_qdq.QdqWriter(tiny_model(), ranges, make_qdq.ORT_DEFAULT_OP_TYPES).write()
        self.nodes = {node.name or node.output[0]: node for node in self.model.graph.node}
        self.initializers = {init.name: numpy_helper.to_array(init) for init in self.model.graph.initializer}

    def test_every_tensor_gets_one_pair_and_relu_goes(self):
        ops = [node.op_type for node in self.model.graph.node]
        self.assertNotIn("Relu", ops)
        self.assertEqual(ops.count("QuantizeLinear"), 4)  # input, conv, leaky, output
        concat = next(node for node in self.model.graph.node if node.op_type == "Concat")
        self.assertEqual(list(concat.input), ["leaky_DequantizeLinear_Output"] * 2)
        self.assertEqual(list(concat.output), ["output_QuantizeLinear_Input"])  # the graph output keeps its name
        self.assertEqual(self.nodes["output_DequantizeLinear"].output[0], "output")
        self.assertEqual(int(self.initializers["output_zero_point"]), 0)  # the Relu's range [0, 2]

    def test_weights_and_bias(self):
        np.testing.assert_array_equal(self.initializers["w_quantized"].ravel(), [127, -127])
        self.assertEqual(self.initializers["w_quantized"].dtype, np.int8)
        bias_scales = self.initializers["b_quantized_scale"]
        np.testing.assert_allclose(bias_scales, np.float32(2 / 255) * np.array([1 / 127, 0.5 / 127], np.float32), rtol=1e-6)
        np.testing.assert_array_equal(self.initializers["b_quantized"], np.round([0.1, -0.2] / bias_scales))
        weight_dq = self.nodes["w_DequantizeLinear"]
        self.assertEqual([a.i for a in weight_dq.attribute if a.name == "axis"], [0])


    def test_transpose_output_shares_its_input_parameters(self):
        model = tiny_model()
        model.graph.node.append(helper.make_node("Transpose", ["output"], ["transposed"], perm=[0, 2, 3, 1]))
        model.graph.output[0].name = "transposed"
        ranges = {"input": (-1.0, 1.0), "conv": (-2.0, 2.0), "leaky": (-0.2, 2.0), "cat": (-0.2, 2.0),
                  "output": (0.0, 2.0), "transposed": (0.0, 9.0)}
        qdq = make_qdq.QdqWriter(model, ranges, make_qdq.ORT_DEFAULT_OP_TYPES).write()
        last_dq = qdq.graph.node[-1]
        self.assertEqual(list(last_dq.output), ["transposed"])
        self.assertEqual(list(last_dq.input[1:]), ["output_scale", "output_zero_point"])  # not its own [0, 9]


if __name__ == "__main__":
    unittest.main()
