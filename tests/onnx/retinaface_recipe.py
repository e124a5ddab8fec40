#!/usr/bin/python3
"""The hand-built RetinaFace's weight file for the weights of tests/onnx/retinaface_random.onnx.

    retinaface_recipe.py MODEL.onnx OUT.facet

That ONNX file was exported in PRESERVE mode (gen_fixtures.py), so its initializers are the
PyTorch state dict, keys and all: this converts them with pth2facet's retinaface-mnet025-official
recipe, as a checkpoint would be. The graph-model test then runs the same weights as a graph
(onnx2facet) and as the hand-built network, and compares them.
"""

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "converters"))
from facetfile import write_facet  # noqa: E402
from onnxproto import load_model  # noqa: E402
from recipes import RECIPES, Checkpoint  # noqa: E402


def main(onnx_path, out_path):
    model = load_model(onnx_path)
    recipe = RECIPES["retinaface-mnet025-official"]
    metadata, tensors = recipe.convert([Checkpoint(onnx_path, model.initializers)])
    source = {"file": Path(onnx_path).name, "sha256": hashlib.sha256(Path(onnx_path).read_bytes()).hexdigest()}
    write_facet(out_path, {"format": "facet", "recipe": recipe.name, "source": [source], **metadata}, tensors)


if __name__ == "__main__":
    main(*sys.argv[1:])
