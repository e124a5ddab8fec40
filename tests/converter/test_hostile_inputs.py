#!/usr/bin/env python3
"""The three converters on hostile inputs (issue 21, items 8-11; issue 18, item 4), run as a user
runs them: each refusal is one line "<program>: error: <file>: <reason>", exit status 2, no traceback
and no output file. Every input is built here, small; the converters run under a 1 GiB address-space
limit, so a converter that would allocate gigabytes for a tiny file fails the test at once instead of
filling the machine, and under a timeout, so one that would hang fails too.

They import from converters/ only names that older converters had too, so they run unchanged against
one to show what it did."""

import copy
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np

import onnx_writer as w
from support import CONVERTERS  # first: it makes converters/ importable
from recipes import MTCNN_EXPECTED_SHAPES
from test_tfjs2facet import synthetic_manifest
from torch_writer import TensorSpec, write_inflating_checkpoint, write_zip_checkpoint

ADDRESS_SPACE_LIMIT = 1 << 30  # a converter starts in ~60 MB of address space
TIMEOUT_SECONDS = 60


def _limit_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


def run_limited(script, *arguments):
    # One BLAS thread: on a many-core machine each idle thread's stack alone would count against the limit.
    environment = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(CONVERTERS / script), *map(str, arguments)], capture_output=True,
                          text=True, check=False, timeout=TIMEOUT_SECONDS, preexec_fn=_limit_address_space,
                          env=environment)


class HostileInputTest(unittest.TestCase):
    program = None

    def setUp(self):
        temporary = tempfile.TemporaryDirectory()
        self.addCleanup(temporary.cleanup)
        self.root = Path(temporary.name)
        self.out = self.root / "out.facet"

    def assert_refused(self, result, pattern):
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        self.assertEqual(len(result.stderr.splitlines()), 1, result.stderr)
        self.assertRegex(result.stderr, f"^{self.program}: error: {pattern}")
        self.assertFalse(self.out.exists())


class TfjsTest(HostileInputTest):
    program = "tfjs2facet"

    def setUp(self):
        super().setUp()
        self.model = self.root / "model"
        self.model.mkdir()
        self.manifest, self.data = synthetic_manifest()

    def convert(self, manifest=None, shard=None):
        """Convert with `manifest`, its shard model.bin made by `shard(path)` (default: the right bytes)."""
        path = self.model / "manifest.json"
        path.write_text(manifest if isinstance(manifest, str) else json.dumps(manifest or self.manifest))
        (shard or (lambda p: p.write_bytes(self.data)))(self.model / "model.bin")
        return run_limited("tfjs2facet.py", "--out", self.out, path)

    def test_shard_linked_out_of_the_folder(self):
        outside = self.root / "secret.bin"
        outside.write_bytes(self.data)  # the manifest's byte count exactly: it would convert
        self.assert_refused(self.convert(shard=lambda p: p.symlink_to(outside)),
                            r".*manifest\.json: weights group 0: shard model\.bin is a link to .*secret\.bin, "
                            r"outside the model's folder")
        self.assert_refused(self.convert(shard=lambda p: (p.unlink(), p.symlink_to("/dev/zero"))),
                            r".*shard model\.bin is a link to /dev/zero, outside the model's folder")

    def test_link_inside_the_folder_converts(self):
        (self.model / "real.bin").write_bytes(self.data)
        result = self.convert(shard=lambda p: p.symlink_to("real.bin"))
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_fifo_shard(self):
        self.assert_refused(self.convert(shard=os.mkfifo), r".*model\.bin: the shard is a FIFO; only regular files are read")

    def test_shard_listed_many_times(self):
        manifest = copy.deepcopy(self.manifest)
        manifest[0]["paths"] = ["model.bin"] * 3000
        self.assert_refused(self.convert(manifest), r".*weights group 0: shard model\.bin is listed twice")

    def test_deeply_nested_manifest(self):
        self.assert_refused(self.convert("[" * 100_000 + "]" * 100_000), r".*manifest's JSON nests too deeply")

    def test_nul_in_shard_name(self):
        manifest = copy.deepcopy(self.manifest)
        manifest[0]["paths"] = ["model\0.bin"]
        self.assert_refused(self.convert(manifest), r".*path 'model\\x00\.bin' is not a file name beside the manifest")

    def test_huge_shape(self):
        manifest = copy.deepcopy(self.manifest)
        manifest[0]["weights"][0]["shape"] = [2 ** 70]
        self.assert_refused(self.convert(manifest), r".*tensor dense0/conv0/filters has shape \[1180591620717411303424\], "
                                                    r"expected a list of whole numbers in \[1, 1073741824\]")


class CheckpointTest(HostileInputTest):
    program = "pth2facet"

    def convert(self, *checkpoints, recipe="mtcnn"):
        return run_limited("pth2facet.py", "--recipe", recipe, "--out", self.out, *checkpoints)

    def test_zero_stride_tensor(self):
        path = self.root / "zero_stride.pth"  # ~500 bytes: one float repeated 30000 x 30000 times
        write_zip_checkpoint(path, {"w": TensorSpec("0", 1, (30000, 30000), (0, 0))}, {"0": bytes(4)})
        self.assert_refused(self.convert(path, path, path),
                            r".*zero_stride\.pth: its tensors hold 3600000000 bytes, more than the 2147483648 a "
                            r"facet file can")

    def test_size_of_2_to_the_70(self):
        path = self.root / "huge.pth"
        write_zip_checkpoint(path, {"w": TensorSpec("0", 1, (2 ** 70,), (0,))}, {"0": bytes(4)})
        self.assert_refused(self.convert(path, path, path), r".*huge\.pth: tensor w has size \(1180591620717411303424,\), "
                                                            r"a dim over facet's limit of 1073741824")

    def test_record_inflating_past_its_storage(self):
        path = self.root / "bomb.pth"  # 1.5 MB: a 1.5 GiB record for a storage of 4 floats
        write_inflating_checkpoint(path, {"w": TensorSpec("0", 4, (4,), (1,))}, "0", 1536 << 20)
        self.assert_refused(self.convert(path, path, path),
                            r".*bomb\.pth is damaged: record archive/data/0 declares 1610612736 bytes, at most 16 "
                            r"expected")

    def test_storage_larger_than_a_facet_file(self):
        path = self.root / "big_storage.pth"  # 3 MB: a 3 GiB storage, its record all zeros
        write_inflating_checkpoint(path, {"w": TensorSpec("0", 3 << 28, (4,), (1,))}, "0", 3 << 30)
        self.assert_refused(self.convert(path, path, path),
                            r".*big_storage\.pth: its tensors' storages hold 3221225472 bytes, more than the "
                            r"2147483648 a facet file can")

    def test_device_as_checkpoint(self):
        self.assert_refused(self.convert("/dev/zero", "/dev/zero", "/dev/zero"),
                            r"/dev/zero: the checkpoint is a device; only regular files are read")

    def write_mtcnn(self, nan_at=None):
        """The three MTCNN nets with random weights; `nan_at` (net, key, index) makes one weight NaN."""
        rng = np.random.default_rng(0)
        paths = []
        for net, shapes in MTCNN_EXPECTED_SHAPES.items():
            arrays = {key: rng.standard_normal(shape).astype(np.float32) for key, shape in shapes.items()}
            if nan_at and nan_at[0] == net:
                arrays[nan_at[1]][nan_at[2]] = np.nan
            specs = {key: TensorSpec(str(i), a.size, a.shape, tuple(math.prod(a.shape[d + 1:]) for d in range(a.ndim)))
                     for i, (key, a) in enumerate(arrays.items())}
            paths.append(self.root / f"{net}.pt")
            write_zip_checkpoint(paths[-1], specs, {str(i): a.tobytes() for i, a in enumerate(arrays.values())})
        return paths

    def test_nan_weight_is_not_written(self):
        result = self.convert(*self.write_mtcnn())
        self.assertEqual(result.returncode, 0, result.stderr)
        self.out.unlink()
        self.assert_refused(self.convert(*self.write_mtcnn(nan_at=("rnet", "conv2.weight", (1, 2, 0, 1)))),
                            r".*pnet\.pt .*rnet\.pt .*onet\.pt: tensor rnet\.conv2\.weight holds NaN or infinity, which "
                            r"facet refuses to load")


class OnnxTest(HostileInputTest):
    program = "onnx2facet"

    def convert(self, nodes, initializers=None, options=("--raw-pixels",), output_shape=(1, 4, 6, 6),
                input_shape=(1, 3, 6, 6)):
        """x `input_shape` -> Conv 3x3 pad 1 (4 channels) -> `nodes` -> y."""
        rng = np.random.default_rng(0)
        initializers = {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32), **(initializers or {})}
        path = self.root / "model.onnx"
        path.write_bytes(w.model([w.node("Conv", ["x", "w"], ["c"], "conv", pads=[1, 1, 1, 1]), *nodes], initializers,
                                 [("x", list(input_shape))], [("y", list(output_shape))]))
        return run_limited("onnx2facet.py", *options, "--out", self.out, path)

    def test_unused_huge_constant(self):
        result = self.convert([w.node("ConstantOfShape", ["shape"], ["big"], "fill"), w.node("Relu", ["c"], ["y"])],
                              {"shape": np.array([30000, 30000], np.int64)})
        self.assert_refused(result, r".*model\.onnx: ConstantOfShape node 'fill' would compute a constant of shape "
                                    r"\[30000, 30000\] \(900000000 elements\); facet evaluates constants of at most "
                                    r"16777216 elements")

    def test_attributes_of_the_wrong_kind(self):
        cases = [(w.node("MaxPool", ["c"], ["y"], "pool", kernel_shape=2), {},
                  "MaxPool node 'pool': attribute 'kernel_shape' is 2, expected a list of integers"),
                 (w.node("Transpose", ["c"], ["y"], "t", perm=3), {},
                  "Transpose node 't': attribute 'perm' is 3, expected a list of integers"),
                 (w.node("Resize", ["c", "", "scales"], ["y"], "up", mode=1), {"scales": np.ones(4, np.float32)},
                  "Resize node 'up': attribute 'mode' is 1, expected an ASCII string")]
        for node, initializers, message in cases:
            with self.subTest(message=message):
                self.assert_refused(self.convert([node], initializers), r".*model\.onnx: " + message.replace("(", r"\("))

    def test_values_beyond_the_engines_limits(self):
        resize = w.node("Resize", ["c", "", "scales"], ["y"], "up")
        self.assert_refused(self.convert([resize], {"scales": np.array([1, 1, 1, 1 << 22], np.float32)}),
                            r".*value y has shape \[6, 25165824, 4\]; facet's graphs hold maps \[h, w, c\] of 1 \.\. "
                            r"16777216 each")
        self.assert_refused(self.convert([resize], {"scales": np.array([1, 1, 3000, 3000], np.float32)}),
                            r".*value y of shape \[18000, 18000, 4\] needs \d+ bytes, more than facet's limit of 1 GiB "
                            r"a map")
        self.assert_refused(self.convert([w.node("Relu", ["c"], ["y"])], options=("--raw-pixels", "--input-shape",
                                                                                  "1,3,20000,20000"),
                                         input_shape=(1, 3, "h", "w")),
                            r".*value x of shape \[20000, 20000, 3\] needs \d+ bytes, more than facet's limit of 1 GiB")

    def test_preprocessing_must_be_given(self):
        relu = [w.node("Relu", ["c"], ["y"])]
        self.assert_refused(self.convert(relu, options=()),
                            r".*model\.onnx: no --color, --mean, --scale: an ONNX file does not say how its input is "
                            r"prepared.* PFLD-GhostOne, for example: --color rgb --mean 127\.5,127\.5,127\.5 --scale "
                            r"0\.00784313725490196,0\.00784313725490196,0\.00784313725490196$")
        self.assert_refused(self.convert(relu, options=("--color", "bgr", "--mean", "1,2,3")), r".*no --scale:")
        self.assert_refused(self.convert(relu, options=("--raw-pixels", "--scale", "1,1,1")),
                            r".*--raw-pixels means RGB, mean 0 and scale 1: it cannot go with --scale")
        result = self.convert(relu)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(b'"input":{"color":"rgb","mean":[0.0,0.0,0.0],"scale":[1.0,1.0,1.0]}', self.out.read_bytes())


if __name__ == "__main__":
    unittest.main()
