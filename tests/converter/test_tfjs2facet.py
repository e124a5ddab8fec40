#!/usr/bin/env python3
"""tfjs2facet: face-api's TF.js weights (landmarks, expression, age / gender, recognition) into a facet graph. What the graph and tensors are
(TF.js layouts transposed, uint8 dequantised as TF.js does), and every broken manifest refused by
name. The models are written here, with random bytes in face_landmark_68's shapes; the real one
(weights/.cache/face-api, made by scripts/fetch-weights.sh) is converted too when present."""

import copy
import json
import math
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np

from support import CONVERTERS, REPO_ROOT
from facetfile import read_facet
from tfjs2facet import ConversionError, convert, expected_shapes

TFJS2FACET = CONVERTERS / "tfjs2facet.py"
PACKAGE = REPO_ROOT / "weights" / ".cache" / "face-api" / "package" / "model"


def run_tfjs2facet(*arguments):
    return subprocess.run([sys.executable, str(TFJS2FACET), *map(str, arguments)], capture_output=True, text=True,
                          check=False)


def synthetic_manifest(seed=0, net="face_landmark_68"):
    """A manifest entry per tensor of `net`, uint8-quantised, and the shard's bytes."""
    rng = np.random.default_rng(seed)
    entries, chunks = [], []
    for name, shape in expected_shapes(net).items():
        entries.append({"name": name, "shape": shape, "dtype": "float32",
                        "quantization": {"dtype": "uint8", "scale": float(rng.uniform(0.001, 0.01)),
                                         "min": float(rng.uniform(-1, 0))}})
        chunks.append(rng.integers(0, 256, math.prod(shape), dtype=np.uint8).tobytes())
    return [{"paths": ["model.bin"], "weights": entries}], b"".join(chunks)


class ManifestTestCase(unittest.TestCase):
    """A synthetic model of the network `net` in a temporary folder, converted or refused."""
    net = "face_landmark_68"

    def setUp(self):
        self.directory = tempfile.TemporaryDirectory()
        self.root = Path(self.directory.name)
        self.manifest, self.data = synthetic_manifest(net=self.net)

    def tearDown(self):
        self.directory.cleanup()

    def write(self, manifest=None, data=None):
        path = self.root / "model-weights_manifest.json"
        path.write_text(json.dumps(self.manifest if manifest is None else manifest))
        (self.root / "model.bin").write_bytes(self.data if data is None else data)
        return path

    def convert(self, manifest=None, data=None, net=None, **options):
        """The model (default the synthetic one) converted with --net `net` (default the class's)."""
        out = self.root / "out.facet"
        convert(self.write(manifest, data), out, net=net or self.net, **options)
        return read_facet(out)

    def refused(self, message, manifest=None, data=None):
        with self.assertRaisesRegex(ConversionError, message):
            self.convert(manifest, data)

    def entry(self, manifest, name):
        return next(e for e in manifest[0]["weights"] if e["name"] == name)


class Tfjs2FacetTest(ManifestTestCase):

    def test_graph_and_tensors(self):
        metadata, tensors = self.convert(crop_margin=0.25)
        self.assertEqual(metadata["model"], "graph")
        self.assertEqual(metadata["converter"], "tfjs2facet")
        self.assertEqual(metadata["input"], {"color": "rgb", "mean": [122.782, 117.001, 104.298], "scale": [1 / 255] * 3})
        self.assertEqual(metadata["landmarks"], {"crop_margin": 0.25})
        self.assertEqual([s["file"] for s in metadata["source"]], ["model-weights_manifest.json", "model.bin"])
        graph = metadata["graph"]
        self.assertEqual(graph["input"], {"name": "input", "onnx_shape": [1, 3, 112, 112]})
        self.assertEqual(graph["outputs"], [{"name": "landmarks", "value": "landmarks", "onnx_shape": [1, 136], "order": "hwc"}])
        # The four blocks halve the map: 56, 28, 14, 7; the pool makes it one pixel.
        for block, (side, channels) in enumerate(zip([56, 28, 14, 7], [32, 64, 128, 256])):
            self.assertEqual(graph["values"][f"dense{block}.relu4"], [side, side, channels])
        self.assertEqual(graph["values"]["pool"], [1, 1, 256])
        ops = {op["name"]: op for op in graph["ops"]}
        # TensorFlow's "same" at stride 2 on an even map: 0 before, 1 after; at stride 1: 1 on each side.
        self.assertEqual(ops["dense0.conv0"]["pads"], [0, 0, 1, 1])
        self.assertEqual(ops["dense2.conv0.depthwise"]["pads"], [0, 0, 1, 1])
        self.assertEqual(ops["dense2.conv0.depthwise"]["groups"], 64)
        self.assertEqual(ops["dense2.conv1.depthwise"]["pads"], [1, 1, 1, 1])
        self.assertEqual(ops["dense2.conv0.pointwise"]["activation"], {"kind": "relu"})
        self.assertEqual(ops["dense2.conv1.pointwise"]["activation"], {"kind": "none"})
        self.assertEqual(ops["dense3.sum3"]["inputs"], ["dense3.sum2", "dense3.conv2.pointwise"])
        self.assertEqual(ops["dense3.conv3.depthwise"]["input"], "dense3.relu3")
        self.assertNotIn("bias", ops["dense3.conv3.depthwise"])  # separable convs add the bias after the pointwise

    def test_layouts_and_dequantisation(self):
        _, tensors = self.convert()
        raw = {}
        offset = 0
        for entry in self.manifest[0]["weights"]:
            count = math.prod(entry["shape"])
            q = np.frombuffer(self.data, np.uint8, count, offset).reshape(entry["shape"])
            raw[entry["name"]] = q.astype(np.float64) * entry["quantization"]["scale"] + entry["quantization"]["min"]
            offset += count
        filters = raw["dense0/conv0/filters"]  # [kh, kw, cin, cout]
        conv = tensors["dense0.conv0.weight"]   # [cout, cin, kh, kw]
        self.assertEqual(conv.shape, (32, 3, 3, 3))
        self.assertEqual(conv[5, 2, 0, 1], np.float32(filters[0, 1, 2, 5]))
        depthwise = tensors["dense1.conv2.depthwise.weight"]
        self.assertEqual(depthwise.shape, (64, 1, 3, 3))
        self.assertEqual(depthwise[40, 0, 2, 1], np.float32(raw["dense1/conv2/depthwise_filter"][2, 1, 40, 0]))
        pointwise = tensors["dense3.conv0.pointwise.weight"]
        self.assertEqual(pointwise.shape, (256, 128, 1, 1))
        self.assertEqual(pointwise[200, 100, 0, 0], np.float32(raw["dense3/conv0/pointwise_filter"][0, 0, 100, 200]))
        np.testing.assert_array_equal(tensors["dense3.conv0.pointwise.bias"], raw["dense3/conv0/bias"].astype(np.float32))
        np.testing.assert_array_equal(tensors["landmarks.weight"], raw["fc/weights"].T.astype(np.float32))

    def test_plain_float32_entries(self):
        manifest, data = copy.deepcopy(self.manifest), bytearray()
        offset = 0
        for entry in manifest[0]["weights"]:
            count = math.prod(entry["shape"])
            q = np.frombuffer(self.data, np.uint8, count, offset)
            data += (q * np.float32(0.01)).astype("<f4").tobytes()
            offset += count
            del entry["quantization"]
        _, tensors = self.convert(manifest, bytes(data))
        self.assertEqual(tensors["landmarks.bias"][3], np.float32(np.float32(0.01) * self.data[offset - 136 + 3]))

    def test_broken_manifests_are_refused_by_name(self):
        def changed(edit):
            manifest = copy.deepcopy(self.manifest)
            edit(manifest)
            return manifest

        self.refused("tensor dense1/conv2/bias has unsupported key\\(s\\) group",
                     changed(lambda m: self.entry(m, "dense1/conv2/bias").update(group="x")))
        self.refused("weights entry 48 has no name", changed(lambda m: self.entry(m, "fc/bias").pop("name")))
        self.refused("tensor fc/bias is quantised to 'float16'",
                     changed(lambda m: self.entry(m, "fc/bias")["quantization"].update(dtype="float16")))
        self.refused("tensor fc/bias: quantization has unsupported key\\(s\\) original_dtype",
                     changed(lambda m: self.entry(m, "fc/bias")["quantization"].update(original_dtype="float32")))
        self.refused("tensor fc/bias: quantization scale is None",
                     changed(lambda m: self.entry(m, "fc/bias")["quantization"].pop("scale")))
        self.refused("tensor fc/bias: quantization scale -1 is negative",
                     changed(lambda m: self.entry(m, "fc/bias")["quantization"].update(scale=-1)))
        self.refused("tensor dense0/conv0/bias has dtype 'int32'",
                     changed(lambda m: self.entry(m, "dense0/conv0/bias").update(dtype="int32")))
        self.refused("tensor dense0/conv0/bias has shape \\[32, 0\\]",
                     changed(lambda m: self.entry(m, "dense0/conv0/bias").update(shape=[32, 0])))
        self.refused("tensor dense0/conv0/filters has shape \\[3, 3, 3, 16\\], face_landmark_68 has \\[3, 3, 3, 32\\]",
                     changed(lambda m: self.entry(m, "dense0/conv0/filters").update(shape=[3, 3, 3, 16])),
                     self.data[:3 * 3 * 3 * 16] + self.data[3 * 3 * 3 * 32:])
        self.refused("tensor fc/bias is missing", changed(lambda m: m[0]["weights"].pop()), self.data[:-136])
        self.refused("tensor fc/extra is not one of face_landmark_68's",
                     changed(lambda m: m[0]["weights"].append({"name": "fc/extra", "shape": [1], "dtype": "float32"})),
                     self.data + bytes(4))
        self.refused("tensor fc/bias appears twice", changed(lambda m: m[0]["weights"].append(self.entry(m, "fc/bias"))),
                     self.data + bytes(136))
        self.refused("tensor fc/bias needs bytes \\[356704, 356840\\).*hold 356800: truncated", data=self.data[:-40])
        self.refused("hold 356841 bytes, its tensors take 356840: 1 bytes left over", data=self.data + b"\0")
        self.refused("weights group 0: path '../model.bin' is not a file name beside the manifest",
                     changed(lambda m: m[0].update(paths=["../model.bin"])))
        self.refused("weights group 0 has unsupported key\\(s\\) format", changed(lambda m: m[0].update(format="x")))
        self.refused("not a non-empty JSON array", [])
        with self.assertRaisesRegex(ConversionError, "not UTF-8 JSON"):
            path = self.write()
            path.write_text("{")
            convert(path, self.root / "out.facet")

    def test_command_line_errors_are_one_line(self):
        manifest = copy.deepcopy(self.manifest)
        manifest[0]["weights"].pop()
        result = run_tfjs2facet("--out", self.root / "out.facet", self.write(manifest, self.data[:-136]))
        self.assertEqual(result.returncode, 2)
        self.assertRegex(result.stderr, "^tfjs2facet: error: .*: tensor fc/bias is missing .*\n$")
        self.assertFalse((self.root / "out.facet").exists())
        result = run_tfjs2facet("--out", self.root / "out.facet", self.root / "absent.json")
        self.assertEqual(result.returncode, 2)
        self.assertRegex(result.stderr, "^tfjs2facet: error: .*absent.json: No such file or directory\n$")
        result = run_tfjs2facet("--out", self.root / "out.facet", "--crop-margin", "2", self.write())
        self.assertEqual(result.returncode, 2)
        self.assertIn("wants a number in [0, 1], got '2'", result.stderr)

    @unittest.skipUnless(PACKAGE.is_dir(), "face-api's npm package is not in weights/.cache (scripts/fetch-weights.sh)")
    def test_real_model(self):
        out = self.root / "face_landmark_68.facet"
        self.assertEqual(convert(PACKAGE / "face_landmark_68_model-weights_manifest.json", out), (57, 49))
        metadata, _ = read_facet(out)
        self.assertEqual(metadata["source"][1]["file"], "face_landmark_68_model.bin")
        # The tiny model (three blocks of three convs) is another architecture: refused, not misread.
        with self.assertRaisesRegex(ConversionError, "is missing .* is this face-api's face_landmark_68 model"):
            convert(PACKAGE / "face_landmark_68_tiny_model-weights_manifest.json", out)


class RecognitionTest(ManifestTestCase):
    """face_recognition: the ResNet's graph, its scale layers folded into the convs, and its own
    architecture checked by name."""
    net = "face_recognition"

    def dequantised(self, name):
        entry, offset = self.entry(self.manifest, name), 0
        for e in self.manifest[0]["weights"]:
            if e["name"] == name:
                break
            offset += math.prod(e["shape"])
        q = np.frombuffer(self.data[offset:offset + math.prod(entry["shape"])], dtype=np.uint8)
        return (q * entry["quantization"]["scale"] + entry["quantization"]["min"]).astype(np.float32).reshape(entry["shape"])

    def test_graph_and_folded_scale_layers(self):
        metadata, tensors = self.convert()
        self.assertEqual(metadata["input"], {"color": "rgb", "mean": [122.782, 117.001, 104.298], "scale": [1 / 255] * 3})
        self.assertNotIn("landmarks", metadata)
        graph = metadata["graph"]
        self.assertEqual(graph["input"], {"name": "input", "onnx_shape": [1, 3, 150, 150]})
        self.assertEqual(graph["outputs"], [{"name": "descriptor", "value": "descriptor", "onnx_shape": [1, 128], "order": "hwc"}])
        values = graph["values"]
        # 150 -> 7x7/2 valid 72 -> pool 3x3/2 35 -> 17 -> 8 -> 4 (the 3x3 branch is 3, padded) -> 2 -> the mean.
        self.assertEqual(values["conv32_down.pool"], [35, 35, 32])
        self.assertEqual(values["conv64_down.relu"], [17, 17, 64])
        self.assertEqual(values["conv256_down.conv2"], [3, 3, 256])
        self.assertEqual(values["conv256_down.conv2_rows"], [4, 4, 256])
        self.assertEqual(values["conv256_down_out.relu"], [2, 2, 256])
        self.assertEqual(values["mean"], [1, 1, 256])
        ops = {op["name"]: op for op in graph["ops"]}
        self.assertEqual(ops["conv64_down.pool_channels"]["op"], "pad")
        self.assertEqual(values["conv64_down.pool_channels"], [17, 17, 64])
        self.assertEqual((ops["conv64_down.conv1"]["stride"], ops["conv64_down.conv1"]["pads"]), ([2, 2], [0, 0, 0, 0]))
        self.assertEqual(ops["conv32_1.conv1"]["pads"], [1, 1, 1, 1])
        self.assertEqual(ops["mean"]["kernel"], [2, 2])
        self.assertNotIn("bias", ops["descriptor"])
        # conv + bias, then x * weights + biases: one conv of weight w * s and bias b * s + biases.
        scale = self.dequantised("conv32_down/scale/weights")
        np.testing.assert_allclose(tensors[ops["conv32_down"]["weight"]],
                                   self.dequantised("conv32_down/conv/filters").transpose(3, 2, 0, 1) * scale[:, None, None, None],
                                   rtol=1e-6)
        np.testing.assert_allclose(tensors[ops["conv32_down"]["bias"]],
                                   self.dequantised("conv32_down/conv/bias") * scale + self.dequantised("conv32_down/scale/biases"),
                                   rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(tensors[ops["descriptor"]["weight"]], self.dequantised("fc").T)

    def test_broken_manifests_are_refused_by_name(self):
        def changed(edit):
            manifest = copy.deepcopy(self.manifest)
            edit(manifest)
            return manifest
        self.refused("tensor fc is missing .* of face_recognition's",
                     changed(lambda m: m[0]["weights"].pop()), self.data[:-256 * 128])
        self.refused(r"tensor conv32_1/conv1/conv/filters has shape \[3, 3, 32, 16\], face_recognition has \[3, 3, 32, 32\]",
                     changed(lambda m: self.entry(m, "conv32_1/conv1/conv/filters").update(shape=[3, 3, 32, 16])),
                     self.data[:-3 * 3 * 32 * 16])
        extra = changed(lambda m: m[0]["weights"].append({"name": "fc/bias", "shape": [128], "dtype": "float32"}))
        self.refused("tensor fc/bias is not one of face_recognition's", extra, self.data + bytes(512))
        with self.assertRaisesRegex(ConversionError, "--crop-margin is for the landmark and attribute nets, not face_recognition"):
            self.convert(crop_margin=0.1)

    @unittest.skipUnless(PACKAGE.is_dir(), "face-api's npm package is not in weights/.cache (scripts/fetch-weights.sh)")
    def test_real_recognition_model(self):
        out = self.root / "face_recognition.facet"
        self.assertEqual(convert(PACKAGE / "face_recognition_model-weights_manifest.json", out, net="face_recognition"), (69, 59))
        metadata, _ = read_facet(out)
        self.assertEqual(metadata["source"][1]["file"], "face_recognition_model.bin")


class AttributeNetsTest(ManifestTestCase):
    """--net face_expression and age_gender: the graphs face-api's FaceExpressionNet and AgeGenderNet
    compute, their labels in face-api's order, and a manifest of another net refused by name."""

    def convert_net(self, net, manifest_net=None):
        """A synthetic model of `manifest_net` (default `net`) converted with --net `net`."""
        return self.convert(*synthetic_manifest(1, manifest_net or net), net=net)

    def test_expression_graph(self):
        metadata, tensors = self.convert_net("face_expression")
        self.assertEqual(metadata["input"], {"color": "rgb", "mean": [122.782, 117.001, 104.298], "scale": [1 / 255] * 3})
        self.assertEqual(metadata["attributes"], {"crop_margin": 0.0, "expression": {
            "labels": ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"]}})
        self.assertNotIn("landmarks", metadata)
        graph = metadata["graph"]
        self.assertEqual(graph["outputs"], [{"name": "expression", "value": "expression", "onnx_shape": [1, 7], "order": "hwc"}])
        ops = {op["name"]: op for op in graph["ops"]}
        # The landmark net's backbone, then fc and a softmax over the seven.
        self.assertEqual(graph["values"]["dense3.relu4"], [7, 7, 256])
        self.assertEqual(ops["fc"]["input"], "pool")
        self.assertEqual(ops["expression"], {"op": "softmax", "name": "expression", "output": "expression", "input": "fc"})
        self.assertEqual(tensors["fc.weight"].shape, (7, 256))

    def test_age_gender_graph(self):
        metadata, tensors = self.convert_net("age_gender")
        self.assertEqual(metadata["attributes"], {"crop_margin": 0.0, "age": {"unit": "years"},
                                                  "gender": {"labels": ["male", "female"]}})
        graph = metadata["graph"]
        self.assertEqual([o["name"] for o in graph["outputs"]], ["age", "gender"])
        self.assertEqual([o["onnx_shape"] for o in graph["outputs"]], [[1, 1], [1, 2]])
        values, ops = graph["values"], {op["name"]: op for op in graph["ops"]}
        # 112 -> 56 (conv_in) -> 28, 14 (entry reductions) -> 14, 14 (main blocks) -> 7 (exit) -> 1 (pool).
        self.assertEqual(values["entry_flow.conv_in"], [56, 56, 32])
        self.assertEqual(values["entry_flow.reduction_block_0.sum"], [28, 28, 64])
        self.assertEqual(values["entry_flow.reduction_block_1.sum"], [14, 14, 128])
        self.assertEqual(values["middle_flow.main_block_1.sum"], [14, 14, 128])
        self.assertEqual(values["exit_flow.reduction_block.sum"], [7, 7, 256])
        self.assertEqual(values["exit_flow.separable_conv.pointwise"], [7, 7, 512])
        self.assertEqual(values["pool"], [1, 1, 512])
        # The first reduction block reads conv_in's (already activated) output; the others relu first,
        # while the expansion conv reads the block's input as it is.
        self.assertEqual(ops["entry_flow.reduction_block_0.separable_conv0.depthwise"]["input"], "entry_flow.conv_in")
        self.assertEqual(ops["entry_flow.reduction_block_1.separable_conv0.depthwise"]["input"],
                         "entry_flow.reduction_block_1.relu0")
        self.assertEqual(ops["entry_flow.reduction_block_1.expansion_conv"]["input"], "entry_flow.reduction_block_0.sum")
        self.assertEqual(ops["entry_flow.reduction_block_1.expansion_conv"]["stride"], [2, 2])
        # tf.maxPool 3x3 / 2 "same" on an even map: 0 before, 1 after.
        pool = ops["entry_flow.reduction_block_1.pool"]
        self.assertEqual((pool["op"], pool["kernel"], pool["stride"], pool["pads"]), ("max_pool", [3, 3], [2, 2], [0, 0, 1, 1]))
        self.assertEqual(ops["middle_flow.main_block_0.sum"]["inputs"],
                         ["middle_flow.main_block_0.separable_conv2.pointwise", "entry_flow.reduction_block_1.sum"])
        self.assertEqual(ops["middle_flow.main_block_0.separable_conv1.pointwise"]["activation"], {"kind": "relu"})
        self.assertEqual(ops["middle_flow.main_block_0.separable_conv2.pointwise"]["activation"], {"kind": "none"})
        self.assertEqual(ops["exit_flow.separable_conv.pointwise"]["activation"], {"kind": "relu"})
        self.assertEqual((ops["age"]["op"], ops["age"]["input"]), ("dense", "pool"))
        self.assertEqual(ops["gender"], {"op": "softmax", "name": "gender", "output": "gender", "input": "fc.gender"})
        self.assertEqual(tensors["fc.gender.weight"].shape, (2, 512))

    def test_another_nets_manifest_is_refused_by_name(self):
        with self.assertRaisesRegex(ConversionError, "tensor fc/weights has shape \\[256, 136\\], face_expression has \\[256, 7\\]"):
            self.convert_net("face_expression", "face_landmark_68")
        with self.assertRaisesRegex(ConversionError, "tensor entry_flow/conv_in/filters is missing .* is this face-api's "
                                                     "age_gender model"):
            self.convert_net("age_gender", "face_expression")
        with self.assertRaisesRegex(ConversionError, "tensor dense0/conv0/filters is missing .* face_landmark_68 model"):
            self.convert_net("face_landmark_68", "age_gender")
        result = run_tfjs2facet("--net", "recognition", "--out", self.root / "out.facet", self.root / "absent.json")
        self.assertEqual(result.returncode, 2)
        self.assertIn("argument --net: invalid choice: 'recognition'", result.stderr)

    @unittest.skipUnless(PACKAGE.is_dir(), "face-api's npm package is not in weights/.cache (scripts/fetch-weights.sh)")
    def test_real_models(self):
        out = self.root / "out.facet"
        self.assertEqual(convert(PACKAGE / "face_expression_model-weights_manifest.json", out, net="face_expression"), (58, 49))
        self.assertEqual(convert(PACKAGE / "age_gender_model-weights_manifest.json", out, net="age_gender"), (46, 51))
        self.assertEqual(read_facet(out)[0]["source"][1]["file"], "age_gender_model.bin")


if __name__ == "__main__":
    unittest.main()
