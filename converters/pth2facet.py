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

from facetfile import write_facet
from recipes import RECIPES, Checkpoint, RecipeError
from torchpickle import CheckpointError, load_state_dict

PROGRAM = "pth2facet"
USER_ERROR_STATUS = 2  # the status argparse uses for usage errors


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
converts without complaint and the engine then reports garbage detections, so check the
checkpoint's sha256 against where it came from (it is recorded in the output's metadata).
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


def _source_entry(path):
    return {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def convert(recipe, input_paths, out_path):
    """Convert `input_paths` with `recipe` and write the result to `out_path`; returns the
    number of tensors written."""
    checkpoints = [Checkpoint(str(path), load_state_dict(path)) for path in input_paths]
    model_metadata, tensors = recipe.convert(checkpoints)
    metadata = {
        "format": "facet",
        "recipe": recipe.name,
        "source": [_source_entry(path) for path in input_paths],
        **model_metadata,
    }
    write_facet(out_path, metadata, tensors)
    return len(tensors)


def _describe_os_error(error):
    return f"{error.filename}: {error.strerror}" if error.filename else str(error)


def main(argv=None):
    parser = _argument_parser()
    args = parser.parse_args(argv)
    recipe = RECIPES[args.recipe]
    if len(args.inputs) != len(recipe.inputs):
        parser.error(f"recipe {recipe.name} takes {len(recipe.inputs)} input(s): "
                     f"{' '.join(recipe.inputs)}; got {len(args.inputs)}")
    try:
        tensor_count = convert(recipe, args.inputs, args.out)
    except (CheckpointError, RecipeError) as error:
        return _report_error(str(error))
    except OSError as error:
        return _report_error(_describe_os_error(error))
    print(f"{PROGRAM}: wrote {args.out} ({recipe.name}, {tensor_count} tensors)")
    return 0


def _report_error(message):
    print(f"{PROGRAM}: error: {message}", file=sys.stderr)
    return USER_ERROR_STATUS


if __name__ == "__main__":
    sys.exit(main())
