#!/usr/bin/env python3
"""torchpickle: both torch.save layouts read exactly as torch wrote them, and a checkpoint whose
pickle calls anything but the tensor-building names is refused before anything runs."""

import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import numpy as np

from support import FIXTURES
from torchpickle import CheckpointError, load_state_dict

MARKER_VARIABLE = "FACET_PICKLE_MARKER"  # the malicious fixtures create the file it names

# What a plain pickle.load does with each malicious fixture (the check that they are live).
PLAIN_UNPICKLING = {
    "malicious_legacy.pth": "import pickle, sys\n"
                            "with open(sys.argv[1], 'rb') as f:\n"
                            "    for _ in range(4): pickle.load(f)\n",
    "malicious_zip.pth": "import pickle, sys, zipfile\n"
                         "pickle.loads(zipfile.ZipFile(sys.argv[1]).read('malicious_zip/data.pkl'))\n",
}


class ReadsBothLayoutsTest(unittest.TestCase):
    def setUp(self):
        with np.load(FIXTURES / "tiny_tensors.npz") as expected:
            self.expected = {key: expected[key] for key in expected.files}

    def assert_matches_torch(self, state_dict):
        self.assertEqual(list(state_dict), list(self.expected))
        for key, expected in self.expected.items():
            with self.subTest(key=key):
                self.assertEqual(state_dict[key].dtype, expected.dtype)
                self.assertEqual(state_dict[key].shape, expected.shape)
                np.testing.assert_array_equal(state_dict[key], expected)

    def test_legacy_layout(self):
        self.assert_matches_torch(load_state_dict(FIXTURES / "tiny_legacy.pth"))

    def test_zip_layout(self):
        self.assert_matches_torch(load_state_dict(FIXTURES / "tiny_zip.pth"))

    def test_state_dict_entry_is_used_and_module_prefix_stripped(self):
        self.assert_matches_torch(load_state_dict(FIXTURES / "tiny_wrapped_zip.pth"))

    def test_networks_saved_together_come_out_under_their_entries(self):
        state_dict = load_state_dict(FIXTURES / "tiny_two_networks_zip.pth")
        # nn.Sequential(conv, conv_bn) and nn.Sequential(depthwise, depthwise_bn); the epoch and the
        # optimizer's state are no state dicts and are left out.
        renamed = {"backbone.0": "conv", "backbone.1": "conv_bn", "head.0": "depthwise", "head.1": "depthwise_bn"}
        self.assertEqual(len(state_dict), 12)
        for key, array in state_dict.items():
            module, parameter = key.rsplit(".", 1)
            with self.subTest(key=key):
                np.testing.assert_array_equal(array, self.expected[f"{renamed[module]}.{parameter}"])

    def test_views_come_out_as_independent_c_ordered_arrays(self):
        state_dict = load_state_dict(FIXTURES / "tiny_legacy.pth")
        for key in ("layouts.transposed", "layouts.view_with_offset", "layouts.expanded"):
            self.assertTrue(state_dict[key].flags.c_contiguous, key)
            self.assertTrue(state_dict[key].flags.owndata, key)


class RefusesUnsafeOrDamagedFilesTest(unittest.TestCase):
    def setUp(self):
        temporary = tempfile.TemporaryDirectory()
        self.addCleanup(temporary.cleanup)
        self.directory = Path(temporary.name)
        self.marker = self.directory / "pickle-payload-ran"

    def assert_refused_without_side_effect(self, fixture, called):
        expected_message = (rf"refusing to load checkpoint .*{fixture}: pickle wants to call {called} "
                            r"\(only tensor / OrderedDict / storage types are allowed\)")
        with mock.patch.dict(os.environ, {MARKER_VARIABLE: str(self.marker)}), \
                self.assertRaisesRegex(CheckpointError, expected_message):
            load_state_dict(FIXTURES / fixture)
        self.assertFalse(self.marker.exists(), "the pickle's payload ran")

    def test_refuses_legacy_checkpoint_calling_os_system(self):
        self.assert_refused_without_side_effect("malicious_legacy.pth", r"os\.system")

    def test_refuses_zip_checkpoint_calling_builtins_eval(self):
        self.assert_refused_without_side_effect("malicious_zip.pth", r"builtins\.eval")

    def test_malicious_fixtures_do_run_their_payload_under_plain_pickle(self):
        """Without this, the refusal tests above could pass on a payload that never worked."""
        for fixture, script in PLAIN_UNPICKLING.items():
            with self.subTest(fixture=fixture):
                marker = self.directory / f"{fixture}.ran"
                subprocess.run([sys.executable, "-c", script, str(FIXTURES / fixture)],
                               env={**os.environ, MARKER_VARIABLE: str(marker)}, capture_output=True,
                               check=False)
                self.assertTrue(marker.exists())

    def test_refuses_truncated_legacy_checkpoint(self):
        truncated = self.directory / "truncated.pth"
        truncated.write_bytes((FIXTURES / "tiny_legacy.pth").read_bytes()[:-100])
        with self.assertRaisesRegex(CheckpointError, r"checkpoint .*truncated\.pth is truncated"):
            load_state_dict(truncated)

    def test_refuses_a_file_that_is_no_checkpoint(self):
        not_checkpoint = self.directory / "notes.txt"
        not_checkpoint.write_text("# not a checkpoint\n")
        with self.assertRaisesRegex(CheckpointError, r"notes\.txt is damaged or not a PyTorch checkpoint"):
            load_state_dict(not_checkpoint)


if __name__ == "__main__":
    unittest.main()
