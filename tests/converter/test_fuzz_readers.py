#!/usr/bin/env python3
"""A small, seeded mutation fuzz of the converters' readers (atheris is not in Debian): valid inputs
(a zip and a legacy checkpoint, ONNX models, a TF.js manifest and shard) are mutated byte by byte, or
value by value (JSON; a parsed ONNX graph's attributes, constants and wiring), and each mutant is
converted. Whatever the mutant, the converter must either
convert it or refuse it with a ConverterError: any other exception is a check the converter lacks
(run_converter would print its safety-net line). The address space is limited to 2 GiB meanwhile,
so a mutant that makes a converter allocate gigabytes fails as a MemoryError. A few seconds in all;
FACET_FUZZ_ITERATIONS=N runs N mutants per target instead, FACET_FUZZ_SEED=S other ones."""

import copy
import io
import json
import os
import random
import resource
import tempfile
import unittest
import zipfile
from pathlib import Path

import numpy as np

import onnx_writer as w
from support import FIXTURES, REPO_ROOT
from cli import ConverterError
from facetgraph import write_graph_file
from onnx2facet import RAW_PIXELS, Converter
from onnxproto import parse_model
from test_tfjs2facet import synthetic_manifest
from tfjs2facet import build_graph, check_architecture, read_tfjs_weights
from torchpickle import load_state_dict
from torch_writer import TensorSpec, write_zip_checkpoint

ITERATIONS = int(os.environ.get("FACET_FUZZ_ITERATIONS", "300"))
SEED = int(os.environ.get("FACET_FUZZ_SEED", "0"))
ADDRESS_SPACE_LIMIT = 2 << 30


def mutate_bytes(data, rng):
    """`data` with one to four random edits: bytes overwritten (random, 0x00 or 0xff), a run deleted,
    duplicated or inserted, or the end cut off."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        position = rng.randrange(len(data) + 1)
        length = rng.randint(1, 16)
        kind = rng.randrange(6)
        if kind == 0:
            data[position:position + length] = bytes(rng.randrange(256) for _ in range(length))
        elif kind == 1:
            data[position:position + length] = bytes([rng.choice((0, 0xFF))]) * length
        elif kind == 2:
            del data[position:position + length]
        elif kind == 3:
            data[position:position] = data[position:position + length] * rng.randint(1, 4)
        elif kind == 4:
            data[position:position] = bytes(rng.randrange(256) for _ in range(length))
        else:
            del data[position:]
    return bytes(data)


INTERESTING_VALUES = [0, -1, 1, 2 ** 31, 2 ** 63, 2 ** 70, -2 ** 70, 1e308, -0.0, 0.5, "", "x", "..", "a/b", "\0",
                      None, True, [], {}, [0], [[[[]]]], {"name": "x"}]


def mutate_json(value, rng):
    """A copy of the JSON value with one random node replaced, deleted or duplicated."""
    value = copy.deepcopy(value)
    containers = []

    def walk(node):
        if isinstance(node, (list, dict)):
            containers.append(node)
            for child in (node if isinstance(node, list) else node.values()):
                walk(child)
    walk(value)
    container = rng.choice(containers)
    keys = list(range(len(container))) if isinstance(container, list) else list(container)
    if not keys:
        return value
    key = rng.choice(keys)
    kind = rng.randrange(3)
    if kind == 0:
        container[key] = copy.deepcopy(rng.choice(INTERESTING_VALUES))
    elif kind == 1:
        del container[key]
    elif isinstance(container, list):
        container.insert(key, copy.deepcopy(container[key]))
    else:
        container[key + "_"] = copy.deepcopy(container[key])
    return value


INTERESTING_INTS = [0, -1, 1, 2, 3, 7, 30000, 2 ** 24, 2 ** 24 + 1, 2 ** 31, 2 ** 62, -2 ** 62]
INTERESTING_FLOATS = [0.0, -1.0, 0.5, 1e30, float("inf"), float("nan")]


def interesting_attribute(rng):
    kind = rng.randrange(6)
    if kind == 0:
        return rng.choice(INTERESTING_INTS)
    if kind == 1:
        return rng.choice(INTERESTING_FLOATS)
    if kind == 2:
        return [rng.choice(INTERESTING_INTS) for _ in range(rng.randint(0, 5))]
    if kind == 3:
        return [np.float32(rng.choice(INTERESTING_FLOATS)) for _ in range(rng.randint(0, 4))]
    if kind == 4:
        return rng.choice([b"", b"nearest", b"linear", b"SAME_UPPER", b"VALID", b"\xff"])
    return interesting_array(rng)


def interesting_array(rng):
    shape = [rng.choice([0, 1, 2, 4]) for _ in range(rng.randint(0, 3))]
    values = [rng.choice(INTERESTING_INTS) for _ in range(int(np.prod(shape)))]
    if rng.random() < 0.5:
        return np.array(values, np.int64).reshape(shape)
    return np.array([rng.choice(INTERESTING_FLOATS) for _ in values], np.float32).reshape(shape)


def mutate_model(model, rng):
    """A copy of the parsed ONNX model with one attribute, initializer, node input or graph input dim changed."""
    model = copy.deepcopy(model)
    node = rng.choice(model.nodes)
    kind = rng.randrange(5)
    if kind == 4:
        model.inputs[0].shape[rng.randrange(4)] = rng.choice(INTERESTING_INTS + ["h"])
    elif kind == 0 and node.attributes:
        node.attributes[rng.choice(list(node.attributes))] = interesting_attribute(rng)
    elif kind == 1 and node.inputs:
        index = rng.randrange(len(node.inputs))
        node.inputs[index] = rng.choice([n for other in model.nodes for n in other.outputs] + list(model.initializers))
    elif kind == 2:
        model.initializers[rng.choice(list(model.initializers))] = interesting_array(rng)
    else:
        node.attributes[rng.choice(["axis", "value", "perm", "to", "group", "mode", "pads"])] = interesting_attribute(rng)
    return model


class FuzzTest(unittest.TestCase):
    def setUp(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT if hard == resource.RLIM_INFINITY
                                                else min(ADDRESS_SPACE_LIMIT, hard), hard))
        self.addCleanup(resource.setrlimit, resource.RLIMIT_AS, (soft, hard))
        temporary = tempfile.TemporaryDirectory()
        self.addCleanup(temporary.cleanup)
        self.root = Path(temporary.name)

    def fuzz(self, seed, mutants, convert):
        """Convert every mutant: it converts, or ConverterError refuses it."""
        rng = random.Random(seed + 1000 * SEED)
        for iteration in range(ITERATIONS):
            mutant = mutants(rng)
            try:
                convert(mutant)
            except ConverterError:
                pass
            except Exception as error:  # pylint: disable=broad-except
                self.fail(f"seed {seed}, mutant {iteration}: {type(error).__name__}: {error} (mutant {mutant!r:.300})")

    def test_checkpoints(self):
        legacy = (FIXTURES / "tiny_legacy.pth").read_bytes()
        archive = zipfile.ZipFile(FIXTURES / "tiny_zip.pth")
        records = {name: archive.read(name) for name in archive.namelist()}
        pickle_name = next(name for name in records if name.endswith("/data.pkl"))

        tensor = TensorSpec("0", 6, (2, 3), (3, 1))

        def mutants(rng):
            kind = rng.randrange(3)
            if kind == 0:
                return mutate_bytes(legacy, rng)
            buffer = io.BytesIO()
            if kind == 1:  # the pickle inside the zip: mutating the zip itself mostly meets its CRCs
                with zipfile.ZipFile(buffer, "w") as out:
                    for name, data in records.items():
                        out.writestr(name, mutate_bytes(data, rng) if name == pickle_name else data)
            else:  # a tensor's storage size, offset, size or stride
                field = rng.choice(["numel", "offset", "size", "stride"])
                value = (tuple(rng.choice(INTERESTING_INTS) for _ in range(rng.randint(0, 3)))
                         if field in ("size", "stride") else rng.choice(INTERESTING_INTS))
                write_zip_checkpoint(buffer, {"w": tensor._replace(**{field: value})}, {"0": bytes(24)})
            return buffer.getvalue()
        self.fuzz(1, mutants, lambda data: load_state_dict("mutant.pth", data))

    def test_onnx(self):
        rng = np.random.default_rng(0)
        small = w.model([w.node("Conv", ["x", "w", "b"], ["c"], "conv", pads=[1, 1, 1, 1]),
                         w.node("Reshape", ["c", "shape"], ["y"], "flat")],
                        {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
                         "b": rng.standard_normal(4).astype(np.float32), "shape": np.array([1, -1], np.int64)},
                        [("x", [1, 3, 6, 6])], [("y", [1, 144])])
        zoo = (REPO_ROOT / "tests" / "onnx" / "ops_zoo.onnx").read_bytes()
        out = self.root / "out.facet"

        def convert(data):
            converter = Converter(parse_model(data, "mutant.onnx"))
            graph = converter.run()
            write_graph_file(out, "fuzz", [], RAW_PIXELS, graph, converter.tensors)
        self.fuzz(2, lambda rng: mutate_bytes(rng.choice((small, zoo)), rng), convert)

    def test_onnx_graph(self):
        zoo = parse_model((REPO_ROOT / "tests" / "onnx" / "ops_zoo.onnx").read_bytes(), "ops_zoo.onnx")
        out = self.root / "out.facet"

        def convert(model):
            converter = Converter(model)
            graph = converter.run()
            write_graph_file(out, "fuzz", [], RAW_PIXELS, graph, converter.tensors)
        self.fuzz(4, lambda rng: mutate_model(zoo, rng), convert)

    def test_tfjs(self):
        manifest, data = synthetic_manifest()
        path = self.root / "manifest.json"
        shard = self.root / "model.bin"

        def mutants(rng):
            if rng.random() < 0.7:
                return json.dumps(mutate_json(manifest, rng)).encode(), data
            return json.dumps(manifest).encode(), mutate_bytes(data, rng)

        def convert(mutant):
            path.write_bytes(mutant[0])
            shard.write_bytes(mutant[1])
            tensors, _ = read_tfjs_weights(path)
            check_architecture(tensors)
            build_graph(tensors)
        self.fuzz(3, mutants, convert)


if __name__ == "__main__":
    unittest.main()
