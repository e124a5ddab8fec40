#!/usr/bin/env python3
"""The retinaface-mnet025-dcn recipe: the deformable RetinaFace's extra offset convs are stored
unchanged beside the folded convs, the file says its context modules are deformable, and
checkpoints of the other variant are refused by key."""

import tempfile
import unittest
from pathlib import Path

import numpy as np

from support import REPO_ROOT, run_pth2facet
from facetfile import read_facet
from recipes import RECIPES, RETINAFACE_CONVS, RETINAFACE_DCN_CONVS, Checkpoint, RecipeError, retinaface_expected_shapes
from torchpickle import load_state_dict

DCN = RECIPES["retinaface-mnet025-dcn"]
REFERENCE_STATE_DICT = REPO_ROOT / "tests/deform/retinaface_dcn/state_dict.pth"


def synthetic_checkpoint(convs):
    rng = np.random.default_rng(0)
    return [Checkpoint("synthetic.pth", {key: rng.uniform(0.5, 1.5, shape).astype(np.float32)
                                         for key, shape in retinaface_expected_shapes(convs).items()})]


class DeformableRecipeTest(unittest.TestCase):
    def test_offset_convs_are_added_to_every_context_conv(self):
        offset_convs = [conv for conv in RETINAFACE_DCN_CONVS if conv not in RETINAFACE_CONVS]
        self.assertEqual(len(offset_convs), 15)  # 5 convs x 3 levels
        self.assertIn("ssh1.conv3X3.0.conv_offset", [conv.name for conv in offset_convs])
        shapes = {conv.name: conv.shape for conv in offset_convs}
        self.assertEqual(shapes["ssh2.conv5X5_1.0.conv_offset"], (27, 64, 3, 3))
        self.assertEqual(shapes["ssh3.conv7x7_3.0.conv_offset"], (27, 16, 3, 3))

    def test_converts_with_context_and_unactivated_offset_convs(self):
        checkpoints = synthetic_checkpoint(RETINAFACE_DCN_CONVS)
        metadata, tensors = DCN.convert(checkpoints)
        self.assertEqual(metadata["retinaface"]["context"], "deformable")
        self.assertEqual(len(tensors), 2 * len(RETINAFACE_DCN_CONVS))
        activations = metadata["retinaface"]["activations"]
        self.assertEqual(activations["ssh1.conv7X7_2.0.conv_offset"], {"kind": "none"})
        self.assertEqual(activations["ssh1.conv7X7_2.0"], {"kind": "leaky_relu", "slope": 0.1})
        # No BatchNorm follows an offset conv: its weight and bias are stored as they are.
        state_dict = checkpoints[0].state_dict
        for part in ("weight", "bias"):
            np.testing.assert_array_equal(tensors[f"ssh2.conv3X3.0.conv_offset.{part}"],
                                          state_dict[f"ssh2.conv3X3.0.conv_offset.{part}"])

    def test_plain_recipes_say_so(self):
        metadata, _ = RECIPES["retinaface-mnet025"].convert(synthetic_checkpoint(RETINAFACE_CONVS))
        self.assertEqual(metadata["retinaface"]["context"], "plain")

    def test_each_variant_refuses_the_others_checkpoint(self):
        with self.assertRaisesRegex(RecipeError, "missing key ssh1.conv3X3.0.conv_offset.weight"):
            DCN.convert(synthetic_checkpoint(RETINAFACE_CONVS))
        with self.assertRaisesRegex(RecipeError, "unexpected key ssh1.conv3X3.0.conv_offset.weight"):
            RECIPES["retinaface-mnet025-official"].convert(synthetic_checkpoint(RETINAFACE_DCN_CONVS))

    def test_the_pytorch_reference_converts(self):
        with tempfile.TemporaryDirectory() as directory:
            out = Path(directory) / "dcn.facet"
            result = run_pth2facet("--recipe", DCN.name, "--out", out, REFERENCE_STATE_DICT)
            self.assertEqual(result.returncode, 0, result.stderr)
            metadata, tensors = read_facet(out)
        self.assertEqual(metadata["recipe"], DCN.name)
        state_dict = load_state_dict(REFERENCE_STATE_DICT)
        np.testing.assert_array_equal(tensors["ssh3.conv5X5_2.0.conv_offset.weight"],
                                      state_dict["ssh3.conv5X5_2.0.conv_offset.weight"])


if __name__ == "__main__":
    unittest.main()
