#!/usr/bin/env python3
"""The pfld and pfld-angles recipes: PFLD-pytorch checkpoints (a training checkpoint of backbone and
auxiliary net, or the backbone's state dict) become facet graphs with folded BatchNorms, residual
adds where the layout has them and the multi-scale branch; checkpoints that do not fit are refused
by key. (Parity of the converted network with PyTorch: tests/test_pfld.cpp.)"""

import tempfile
import unittest
from pathlib import Path

import numpy as np

import support  # noqa: F401  (makes converters/ importable)

from facetfile import FacetFileError, write_facet
from recipes import (PFLD_BOTTLENECKS, RECIPES, Checkpoint, RecipeError, fold_batchnorm, pfld_auxiliary_shapes,
                     pfld_backbone_shapes)

PFLD, PFLD_ANGLES = RECIPES["pfld"], RECIPES["pfld-angles"]


def synthetic_state_dict(points=98, auxiliary=True, **changes):
    """A training checkpoint's keys (or, without `auxiliary`, the backbone's alone) with random
    values; `changes` replaces (or, with None, removes) keys."""
    rng = np.random.default_rng(0)
    prefix = "plfd_backbone." if auxiliary else ""
    shapes = {prefix + key: shape for key, shape in pfld_backbone_shapes(points).items()}
    if auxiliary:
        shapes.update(("auxiliarynet." + key, shape) for key, shape in pfld_auxiliary_shapes().items())
    state_dict = {key: rng.uniform(0.5, 1.5, shape).astype(np.float32) for key, shape in shapes.items()}
    for key, value in changes.items():
        if value is None:
            del state_dict[key]
        else:
            state_dict[key] = value
    return state_dict


def convert(recipe, state_dict):
    return recipe.convert([Checkpoint("synthetic.pth", state_dict)])


class PfldGraphTest(unittest.TestCase):
    def test_landmarks_graph(self):
        metadata, tensors = convert(PFLD, synthetic_state_dict())
        graph = metadata["graph"]
        self.assertEqual(metadata["model"], "graph")
        self.assertEqual(metadata["input"], {"color": "bgr", "mean": [0, 0, 0], "scale": [1 / 255] * 3})
        self.assertEqual(graph["input"], {"name": "input", "onnx_shape": [1, 3, 112, 112]})
        self.assertEqual(graph["outputs"], [{"name": "landmarks", "value": "plfd_backbone.fc", "onnx_shape": [1, 196],
                                             "order": "hwc"}])
        ops = {op["name"]: op for op in graph["ops"]}
        # Residual adds after exactly the blocks the layout gives one (conv5_1 has none).
        adds = [op["name"] for op in graph["ops"] if op["op"] == "add"]
        self.assertEqual(adds, [f"plfd_backbone.{b.module}" for b in PFLD_BOTTLENECKS if b.residual])
        self.assertNotIn("plfd_backbone.conv5_1", adds)
        self.assertEqual(ops["plfd_backbone.conv3_1.conv.3"]["groups"], 128)  # depthwise
        self.assertEqual(ops["plfd_backbone.conv3_1.conv.6"]["activation"], {"kind": "none"})  # linear bottleneck
        self.assertEqual(graph["values"]["plfd_backbone.block3_5"], [28, 28, 64])
        self.assertEqual(graph["values"]["plfd_backbone.conv6_1.conv.6"], [14, 14, 16])
        self.assertEqual(graph["values"]["plfd_backbone.conv8"], [1, 1, 128])
        self.assertEqual(ops["plfd_backbone.multi_scale"]["inputs"],
                         ["plfd_backbone.avg_pool1", "plfd_backbone.avg_pool2", "plfd_backbone.conv8"])
        self.assertFalse([name for name in tensors if name.startswith("auxiliarynet")])

    def test_batchnorm_folded_and_bn8_not_applied(self):
        state_dict = synthetic_state_dict()
        _, tensors = convert(PFLD, state_dict)
        weight, bias = fold_batchnorm(state_dict["plfd_backbone.block5_2.conv.3.weight"], *(
            state_dict[f"plfd_backbone.block5_2.conv.4.{p}"] for p in ("weight", "bias", "running_mean", "running_var")))
        np.testing.assert_array_equal(tensors["plfd_backbone.block5_2.conv.3.weight"], weight)
        np.testing.assert_array_equal(tensors["plfd_backbone.block5_2.conv.3.bias"], bias)
        # conv8 keeps its own weight and bias: upstream's forward never applies bn8.
        np.testing.assert_array_equal(tensors["plfd_backbone.conv8.weight"], state_dict["plfd_backbone.conv8.weight"])
        np.testing.assert_array_equal(tensors["plfd_backbone.conv8.bias"], state_dict["plfd_backbone.conv8.bias"])

    def test_angles_graph(self):
        metadata, tensors = convert(PFLD_ANGLES, synthetic_state_dict())
        graph = metadata["graph"]
        self.assertEqual([o["name"] for o in graph["outputs"]], ["landmarks", "angles"])
        self.assertEqual(graph["outputs"][1]["value"], "auxiliarynet.fc2")
        ops = {op["name"]: op for op in graph["ops"]}
        self.assertEqual(ops["auxiliarynet.conv1.0"]["input"], "plfd_backbone.block3_5")
        self.assertEqual(graph["values"]["auxiliarynet.conv4.0"], [3, 3, 128])  # 7x7 with padding 1 on 7 x 7
        self.assertEqual(graph["values"]["auxiliarynet.max_pool1"], [1, 1, 128])
        self.assertIn("auxiliarynet.fc1.weight", tensors)

    def test_68_points_from_a_backbone_state_dict(self):
        metadata, _ = convert(PFLD, synthetic_state_dict(points=68, auxiliary=False))
        self.assertEqual(metadata["graph"]["outputs"][0]["onnx_shape"], [1, 136])
        self.assertEqual(metadata["graph"]["outputs"][0]["value"], "fc")

    def test_unused_and_bookkeeping_keys_are_optional(self):
        counters = {"plfd_backbone.bn1.num_batches_tracked": np.array(5, np.int64),
                    "auxiliarynet.conv2.1.num_batches_tracked": np.array(5, np.int64),
                    **{f"plfd_backbone.bn8.{p}": np.ones(128, np.float32)
                       for p in ("weight", "bias", "running_mean", "running_var")}}
        for recipe in (PFLD, PFLD_ANGLES):
            with self.subTest(recipe=recipe.name):
                convert(recipe, synthetic_state_dict(**counters))


class PfldRefusalsTest(unittest.TestCase):
    def assert_refused(self, recipe, state_dict, problem):
        with self.assertRaises(RecipeError) as raised:
            convert(recipe, state_dict)
        self.assertEqual(str(raised.exception), f"checkpoint synthetic.pth is not a {recipe.name} checkpoint: {problem}")

    def test_missing_key(self):
        self.assert_refused(PFLD, synthetic_state_dict(**{"plfd_backbone.block5_4.conv.4.running_var": None}),
                            "missing key plfd_backbone.block5_4.conv.4.running_var")
        self.assert_refused(PFLD_ANGLES, synthetic_state_dict(**{"auxiliarynet.fc2.bias": None}),
                            "missing key auxiliarynet.fc2.bias")

    def test_wrong_shape(self):
        self.assert_refused(PFLD, synthetic_state_dict(**{"plfd_backbone.conv2.weight": np.zeros((64, 1, 3, 3), np.float32)}),
                            "key plfd_backbone.conv2.weight has shape (64,1,3,3), expected (64,64,3,3)")

    def test_landmark_count_other_than_98_or_68(self):
        self.assert_refused(PFLD, synthetic_state_dict(**{"plfd_backbone.fc.weight": np.zeros((212, 176), np.float32)}),
                            "key plfd_backbone.fc.weight is of shape (212,176), expected (196 or 136,176) "
                            "for 98 or 68 landmarks")
        self.assert_refused(PFLD, synthetic_state_dict(auxiliary=False, **{"fc.weight": None}),
                            "key fc.weight is missing, expected (196 or 136,176) for 98 or 68 landmarks")

    def test_unexpected_key(self):
        self.assert_refused(PFLD, synthetic_state_dict(**{"plfd_backbone.conv9.weight": np.zeros(3, np.float32)}),
                            "unexpected key plfd_backbone.conv9.weight")

    def test_angles_need_the_auxiliary_net(self):
        self.assert_refused(PFLD_ANGLES, synthetic_state_dict(auxiliary=False),
                            "it holds no auxiliary net (a training checkpoint has 'plfd_backbone' and 'auxiliarynet'); "
                            "recipe pfld converts the landmarks alone")

    def test_nan_weight_is_not_written(self):
        weight = np.full((64, 3, 3, 3), np.nan, np.float32)
        metadata, tensors = convert(PFLD, synthetic_state_dict(**{"plfd_backbone.conv1.weight": weight}))
        with tempfile.TemporaryDirectory() as tmp:
            with self.assertRaisesRegex(FacetFileError, "tensor plfd_backbone.conv1.weight holds NaN or infinity"):
                write_facet(Path(tmp) / "out.facet", metadata, tensors)
            self.assertFalse((Path(tmp) / "out.facet").exists())

    def test_checkpoint_of_another_model(self):
        self.assert_refused(PFLD, {"body.stage1.0.0.weight": np.zeros((8, 3, 3, 3), np.float32)},
                            "key fc.weight is missing, expected (196 or 136,176) for 98 or 68 landmarks")


if __name__ == "__main__":
    unittest.main()
