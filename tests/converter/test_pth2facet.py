#!/usr/bin/env python3
"""pth2facet and its recipes: BatchNorm folding agrees with torch, checkpoints that do not fit a
recipe are refused by key, and the real upstream checkpoints convert to loadable facet files."""

import hashlib
import tempfile
import unittest
from pathlib import Path

import numpy as np

from support import FIXTURES, run_pth2facet, upstream_dir
from facetfile import read_facet
from recipes import (RECIPES, RETINAFACE_CONVS, Checkpoint, RecipeError, fold_batchnorm,
                     retinaface_expected_shapes)
from torchpickle import load_state_dict

# The tiny fixture network's convolutions, as gen_fixtures.py builds them.
CONV_STRIDE, CONV_PADDING = 2, 1
DEPTHWISE_STRIDE, DEPTHWISE_PADDING = 1, 1

UPSTREAM = upstream_dir()
UPSTREAM_INPUTS = {
    "retinaface-mnet025": ["retinaface/mobilenet0.25_Final.pth"],
    "retinaface-mnet025-official": ["retinaface/official/mobilenet0.25_Final.pth"],
    "retinaface-mnet025-1mb": ["retinaface/face-detector-1mb/mobilenet0.25_Final.pth"],
    "mtcnn": ["mtcnn/pnet.pt", "mtcnn/rnet.pt", "mtcnn/onet.pt"],
}
RETINAFACE_TENSOR_COUNT = 2 * len(RETINAFACE_CONVS)  # a weight and a bias per conv: 112
MTCNN_TENSOR_COUNT = 13 + 16 + 21


def conv2d(image, weight, bias, stride, padding, groups=1):
    """Reference convolution of one CHW image, in float64: plain loops over the kernel taps."""
    out_channels, group_in_channels, kernel_h, kernel_w = weight.shape
    padded = np.pad(image.astype(np.float64), ((0, 0), (padding, padding), (padding, padding)))
    out_h = (padded.shape[1] - kernel_h) // stride + 1
    out_w = (padded.shape[2] - kernel_w) // stride + 1
    group_out_channels = out_channels // groups
    output = np.zeros((out_channels, out_h, out_w))
    for out_channel in range(out_channels):
        group = out_channel // group_out_channels
        inputs = padded[group * group_in_channels:(group + 1) * group_in_channels]
        for i in range(kernel_h):
            for j in range(kernel_w):
                window = inputs[:, i:i + stride * out_h:stride, j:j + stride * out_w:stride]
                output[out_channel] += np.tensordot(weight[out_channel, :, i, j], window, axes=1)
        output[out_channel] += bias[out_channel]
    return output


def folded(state_dict, conv, batchnorm):
    return fold_batchnorm(state_dict[f"{conv}.weight"], *(
        state_dict[f"{batchnorm}.{p}"] for p in ("weight", "bias", "running_mean", "running_var")))


class BatchNormFoldingTest(unittest.TestCase):
    """A folded conv must compute what torch's conv + BatchNorm compute in eval mode."""

    def setUp(self):
        self.state_dict = load_state_dict(FIXTURES / "tiny_legacy.pth")
        with np.load(FIXTURES / "tiny_conv_outputs.npz") as outputs:
            self.torch_outputs = {name: outputs[name][0] for name in outputs.files}  # drop the batch dim

    def test_conv_with_batchnorm(self):
        weight, bias = folded(self.state_dict, "conv", "conv_bn")
        output = conv2d(self.torch_outputs["input"], weight, bias, CONV_STRIDE, CONV_PADDING)
        np.testing.assert_allclose(output, self.torch_outputs["conv"], rtol=1e-5, atol=1e-5)

    def test_depthwise_conv_with_batchnorm(self):
        weight, bias = folded(self.state_dict, "depthwise", "depthwise_bn")
        output = conv2d(self.torch_outputs["conv"], weight, bias, DEPTHWISE_STRIDE, DEPTHWISE_PADDING,
                        groups=weight.shape[0])
        np.testing.assert_allclose(output, self.torch_outputs["depthwise"], rtol=1e-5, atol=1e-5)

    def test_folded_tensors_are_float32(self):
        weight, bias = folded(self.state_dict, "conv", "conv_bn")
        self.assertEqual((weight.dtype, bias.dtype), (np.float32, np.float32))


def synthetic_retinaface_checkpoint(**changes):
    """A RetinaFace-mnet0.25 state dict of random values with the real keys and shapes, with
    `changes` applied (key -> array, or None to delete the key)."""
    rng = np.random.default_rng(0)
    state_dict = {key: rng.uniform(0.5, 1.5, shape).astype(np.float32)
                  for key, shape in retinaface_expected_shapes().items()}
    state_dict["body.stage1.0.1.num_batches_tracked"] = np.array(100)
    for key, value in changes.items():
        if value is None:
            del state_dict[key]
        else:
            state_dict[key] = value
    return [Checkpoint("synthetic.pth", state_dict)]


class RecipeChecksTest(unittest.TestCase):
    """Recipes on in-memory state dicts: what is accepted, and how a mismatch is reported."""

    recipe = RECIPES["retinaface-mnet025"]

    def assert_refused(self, checkpoints, problem):
        message = f"checkpoint synthetic.pth is not a retinaface-mnet025 checkpoint: {problem}"
        with self.assertRaises(RecipeError) as raised:
            self.recipe.convert(checkpoints)
        self.assertEqual(str(raised.exception), message)

    def test_converts_every_conv_with_its_activation(self):
        metadata, tensors = self.recipe.convert(synthetic_retinaface_checkpoint())
        self.assertEqual(len(tensors), RETINAFACE_TENSOR_COUNT)
        convs = {name[:-len(".weight")] for name in tensors if name.endswith(".weight")}
        activations = metadata["retinaface"]["activations"]
        self.assertEqual(set(activations), convs | {"ssh1.out", "ssh2.out", "ssh3.out"})
        self.assertFalse([name for name in tensors if "running_" in name])

    def test_missing_key(self):
        self.assert_refused(synthetic_retinaface_checkpoint(**{"fpn.merge1.0.weight": None}),
                            "missing key fpn.merge1.0.weight")

    def test_wrong_shape(self):
        wrong = np.zeros((8, 3, 3, 4), np.float32)
        self.assert_refused(synthetic_retinaface_checkpoint(**{"body.stage1.0.0.weight": wrong}),
                            "key body.stage1.0.0.weight has shape (8,3,3,4), expected (8,3,3,3)")

    def test_unexpected_key(self):
        extra = np.zeros(3, np.float32)
        self.assert_refused(synthetic_retinaface_checkpoint(**{"fpn.output4.0.weight": extra}),
                            "unexpected key fpn.output4.0.weight")

    def test_batch_counters_are_optional(self):
        checkpoints = synthetic_retinaface_checkpoint(**{"body.stage1.0.1.num_batches_tracked": None})
        self.assertEqual(len(self.recipe.convert(checkpoints)[1]), RETINAFACE_TENSOR_COUNT)


class CommandLineErrorsTest(unittest.TestCase):
    """User errors: exit status 2 and one line on stderr, never a traceback or an output file."""

    def setUp(self):
        temporary = tempfile.TemporaryDirectory()
        self.addCleanup(temporary.cleanup)
        self.out = Path(temporary.name) / "out.facet"

    def assert_user_error(self, result, message_pattern):
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertRegex(result.stderr, r"(?m)^pth2facet: error: " + message_pattern)
        self.assertNotIn("Traceback", result.stderr)
        self.assertFalse(self.out.exists())

    def test_checkpoint_of_another_model(self):
        result = run_pth2facet("--recipe", "retinaface-mnet025", "--out", self.out, FIXTURES / "tiny_zip.pth")
        self.assert_user_error(result, r"checkpoint .*tiny_zip\.pth is not a retinaface-mnet025 checkpoint: "
                                       r"missing key body\.stage1\.0\.0\.weight")

    def test_malicious_checkpoint(self):
        result = run_pth2facet("--recipe", "retinaface-mnet025", "--out", self.out,
                               FIXTURES / "malicious_legacy.pth")
        self.assert_user_error(result, r"refusing to load checkpoint .*malicious_legacy\.pth: "
                                       r"pickle wants to call os\.system")

    def test_wrong_number_of_inputs(self):
        result = run_pth2facet("--recipe", "mtcnn", "--out", self.out, FIXTURES / "tiny_zip.pth")
        self.assert_user_error(result, r"recipe mtcnn takes 3 input\(s\): pnet\.pt rnet\.pt onet\.pt; got 1")

    def test_missing_input(self):
        result = run_pth2facet("--recipe", "retinaface-mnet025", "--out", self.out, FIXTURES / "absent.pth")
        self.assert_user_error(result, r".*absent\.pth: No such file or directory")


@unittest.skipUnless(UPSTREAM.is_dir(), f"no upstream checkpoints at {UPSTREAM} (set FACET_UPSTREAM)")
class UpstreamCheckpointsTest(unittest.TestCase):
    """End to end on the real checkpoints: convert each recipe, read the file back."""

    @classmethod
    def setUpClass(cls):
        cls.temporary = tempfile.TemporaryDirectory()
        cls.converted = {}  # recipe -> (metadata, tensors)
        for recipe, inputs in UPSTREAM_INPUTS.items():
            out = Path(cls.temporary.name) / f"{recipe}.facet"
            result = run_pth2facet("--recipe", recipe, "--out", out, *(UPSTREAM / i for i in inputs))
            if result.returncode != 0:
                raise AssertionError(f"converting {recipe} failed: {result.stderr}")
            cls.converted[recipe] = read_facet(out)

    @classmethod
    def tearDownClass(cls):
        cls.temporary.cleanup()

    def activations(self, recipe):
        return self.converted[recipe][0]["retinaface"]["activations"]

    def test_retinaface_tensors(self):
        for recipe in ("retinaface-mnet025", "retinaface-mnet025-official", "retinaface-mnet025-1mb"):
            with self.subTest(recipe=recipe):
                tensors = self.converted[recipe][1]
                self.assertEqual(len(tensors), RETINAFACE_TENSOR_COUNT)
                self.assertEqual(tensors["body.stage1.0.0.weight"].shape, (8, 3, 3, 3))
                self.assertEqual(tensors["body.stage1.1.0.weight"].shape, (8, 1, 3, 3))
                self.assertEqual(tensors["body.stage3.1.3.weight"].shape, (256, 256, 1, 1))
                self.assertEqual(tensors["ssh3.conv7x7_3.0.bias"].shape, (16,))
                self.assertEqual(tensors["LandmarkHead.2.conv1x1.weight"].shape, (20, 64, 1, 1))
                self.assertNotIn("body.stage1.0.1.running_var", tensors)

    def test_retinaface_weights_are_folded_from_the_checkpoint(self):
        state_dict = load_state_dict(UPSTREAM / UPSTREAM_INPUTS["retinaface-mnet025"][0])
        tensors = self.converted["retinaface-mnet025"][1]
        weight, bias = folded(state_dict, "fpn.merge1.0", "fpn.merge1.1")
        np.testing.assert_array_equal(tensors["fpn.merge1.0.weight"], weight)
        np.testing.assert_array_equal(tensors["fpn.merge1.0.bias"], bias)
        np.testing.assert_array_equal(tensors["ClassHead.1.conv1x1.bias"],
                                      state_dict["ClassHead.1.conv1x1.bias"])  # heads are stored as is

    def test_official_checkpoint_uses_leaky_relu_where_models_md_says(self):
        leaky, relu, none = {"kind": "leaky_relu", "slope": 0.1}, {"kind": "relu"}, {"kind": "none"}
        activations = self.activations("retinaface-mnet025-official")
        for conv in ("body.stage1.0.0", "body.stage2.3.0", "body.stage2.3.3", "fpn.output3.0",
                     "fpn.merge1.0", "ssh2.conv5X5_1.0", "ssh2.conv7X7_2.0"):
            self.assertEqual(activations[conv], leaky, conv)
        for conv in ("ssh2.conv3X3.0", "ssh2.conv5X5_2.0", "ssh2.conv7x7_3.0", "BboxHead.0.conv1x1"):
            self.assertEqual(activations[conv], none, conv)
        self.assertEqual(activations["ssh2.out"], relu)

    def test_2019_checkpoints_use_relu(self):
        for recipe in ("retinaface-mnet025", "retinaface-mnet025-1mb"):
            activations = self.activations(recipe)
            self.assertEqual(activations["body.stage1.0.0"], {"kind": "relu"}, recipe)
            self.assertEqual(activations["ssh1.conv7X7_2.0"], {"kind": "relu"}, recipe)
            self.assertNotIn("leaky_relu", [a["kind"] for a in activations.values()], recipe)

    def test_retinaface_metadata(self):
        metadata = self.converted["retinaface-mnet025-1mb"][0]
        self.assertEqual((metadata["format"], metadata["model"], metadata["recipe"]),
                         ("facet", "retinaface", "retinaface-mnet025-1mb"))
        self.assertEqual(metadata["input"], {"color": "bgr", "mean": [104, 117, 123], "scale": [1, 1, 1]})
        self.assertEqual(metadata["retinaface"]["min_sizes"], [[10, 20], [32, 64], [128, 256]])
        self.assertEqual(self.converted["retinaface-mnet025"][0]["retinaface"]["min_sizes"],
                         [[16, 32], [64, 128], [256, 512]])
        self.assertEqual(metadata["retinaface"]["steps"], [8, 16, 32])

    def test_source_records_each_input_and_its_sha256(self):
        for recipe, inputs in UPSTREAM_INPUTS.items():
            expected = [{"file": Path(i).name,
                         "sha256": hashlib.sha256((UPSTREAM / i).read_bytes()).hexdigest()}
                        for i in inputs]
            self.assertEqual(self.converted[recipe][0]["source"], expected, recipe)

    def test_mtcnn_tensors_are_stored_unchanged_with_net_prefixes(self):
        metadata, tensors = self.converted["mtcnn"]
        self.assertEqual(len(tensors), MTCNN_TENSOR_COUNT)
        self.assertEqual(metadata["input"]["color"], "rgb")
        self.assertEqual(metadata["mtcnn"], {"min_face": 20, "factor": 0.709, "thresholds": [0.6, 0.7, 0.7]})
        self.assertEqual(tensors["rnet.dense4.weight"].shape, (128, 576))
        self.assertEqual(tensors["onet.dense6_3.weight"].shape, (10, 256))
        pnet = load_state_dict(UPSTREAM / "mtcnn/pnet.pt")
        for key, value in pnet.items():
            np.testing.assert_array_equal(tensors[f"pnet.{key}"], value)

    def test_wrong_recipe_for_checkpoint_names_a_key(self):
        with tempfile.TemporaryDirectory() as directory:
            out = Path(directory) / "out.facet"
            result = run_pth2facet("--recipe", "retinaface-mnet025", "--out", out, UPSTREAM / "mtcnn/pnet.pt")
            self.assertEqual(result.returncode, 2)
            self.assertIn("pnet.pt is not a retinaface-mnet025 checkpoint: "
                          "missing key body.stage1.0.0.weight", result.stderr)
            self.assertNotIn("Traceback", result.stderr)
            self.assertFalse(out.exists())

    def test_known_checkpoint_with_the_wrong_recipe_is_refused(self):
        """The official and 2019 checkpoints share every key: only their sha256 tells them apart."""
        with tempfile.TemporaryDirectory() as directory:
            out = Path(directory) / "out.facet"
            result = run_pth2facet("--recipe", "retinaface-mnet025", "--out", out,
                                   UPSTREAM / "retinaface/official/mobilenet0.25_Final.pth")
            self.assertEqual(result.returncode, 2)
            self.assertIn("mobilenet0.25_Final.pth is the upstream checkpoint for recipe "
                          "retinaface-mnet025-official, not retinaface-mnet025", result.stderr)
            self.assertFalse(out.exists())


if __name__ == "__main__":
    unittest.main()
