#!/usr/bin/env python3
"""Convert PyTorch checkpoints to facet weight files (weights/FORMAT.md), without PyTorch.

    pth2facet.py --recipe NAME --out OUT.facet INPUT...

Exit status: 0 on success, 2 for anything wrong with the command line or the inputs, reported
on one line as "pth2facet: error: ..." with no traceback.
"""

import argparse
import hashlib
import sys
import textwrap
from pathlib import Path

from cli import read_regular_file, run_converter
from facetfile import write_facet
from recipes import RECIPES, Checkpoint, RecipeError
from torchpickle import load_state_dict

PROGRAM = "pth2facet"


def _describe_recipe(name, recipe):
    details = textwrap.fill(f"{' '.join(recipe.inputs)}: {recipe.summary}", width=92,
                            initial_indent="      ", subsequent_indent="      ")
    return f"  {name}\n{details}"


def _epilog():
    recipes = "\n".join(_describe_recipe(name, recipe) for name, recipe in RECIPES.items())
    return f"""recipes (--recipe NAME, then its inputs):
{recipes}

The 2019 (retinaface-mnet025) and official (retinaface-mnet025-official) checkpoints have
identical keys and shapes: only your choice of recipe tells them apart. A wrong pairing
of an unknown checkpoint converts without complaint and the engine then reports garbage
detections; the upstream files (weights/manifest) are recognised by their sha256 and a wrong
recipe for them is refused. The sha256 of every input is recorded in the output's metadata.
"""


def _argument_parser():
    parser = argparse.ArgumentParser(
        prog=PROGRAM, description="Convert PyTorch checkpoints to a facet weight file.",
        epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", required=True, choices=RECIPES,
                        help="what the checkpoints are (see below)")
    parser.add_argument("--out", required=True, type=Path, help="the facet file to write")
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                        help="checkpoint(s), legacy or zip layout, in the order the recipe lists")
    return parser


# Upstream checkpoints that are indistinguishable by their keys and shapes (weights/manifest):
# their sha256 tells which recipe they need, so a wrong pairing is caught before it converts.
KNOWN_CHECKPOINTS = {
    "78b0533ceea681a290e98efca85e3a2815b22310f1fe7e287788e7f55f0743a9": "retinaface-mnet025",
    "5f88f7957d9eaef82b49b9e0202bc56e97292e2aede2999209accd34442cc4df": "retinaface-mnet025-official",
    "ed6fa7d45a5179f03cb5ce82c73b0c6711372968e53782e88395acee88d319e1": "retinaface-mnet025-1mb",
}


def check_known_pairing(recipe, sources):
    """Raise RecipeError when an input is a known upstream checkpoint of another recipe."""
    for source in sources:
        expected = KNOWN_CHECKPOINTS.get(source["sha256"])
        if expected is not None and expected != recipe.name:
            raise RecipeError(f"{source['file']} is the upstream checkpoint for recipe {expected}, not "
                              f"{recipe.name} (its activations or anchors differ: the detections would be wrong)")


def convert(recipe, input_paths, out_path):
    """Convert `input_paths` with `recipe` and write the result to `out_path`; returns the
    number of tensors written."""
    contents = [read_regular_file(path, what="checkpoint") for path in input_paths]
    sources = [{"file": path.name, "sha256": hashlib.sha256(data).hexdigest()}
               for path, data in zip(input_paths, contents)]
    check_known_pairing(recipe, sources)
    checkpoints = [Checkpoint(str(path), load_state_dict(path, data)) for path, data in zip(input_paths, contents)]
    model_metadata, tensors = recipe.convert(checkpoints)
    metadata = {
        "format": "facet",
        "recipe": recipe.name,
        "source": sources,
        **model_metadata,
    }
    write_facet(out_path, metadata, tensors)
    return len(tensors)


def main(argv=None):
    parser = _argument_parser()
    args = parser.parse_args(argv)
    recipe = RECIPES[args.recipe]
    if len(args.inputs) != len(recipe.inputs):
        parser.error(f"recipe {recipe.name} takes {len(recipe.inputs)} input(s): "
                     f"{' '.join(recipe.inputs)}; got {len(args.inputs)}")
    return run_converter(PROGRAM, args.inputs, args.out,
                         lambda: f"{recipe.name}, {convert(recipe, args.inputs, args.out)} tensors")


if __name__ == "__main__":
    sys.exit(main())
