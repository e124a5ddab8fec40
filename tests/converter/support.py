"""Paths and helpers shared by the converter tests. Importing it makes converters/ importable."""

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONVERTERS = REPO_ROOT / "converters"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
PTH2FACET = CONVERTERS / "pth2facet.py"

sys.path.insert(0, str(CONVERTERS))


def upstream_dir():
    """The shared upstream checkpoints: $FACET_UPSTREAM, else ../shared/upstream beside the repo."""
    return Path(os.environ.get("FACET_UPSTREAM", REPO_ROOT.parent / "shared" / "upstream"))


def run_pth2facet(*arguments):
    """Run the converter as a user would; returns the CompletedProcess (text output)."""
    return subprocess.run([sys.executable, str(PTH2FACET), *map(str, arguments)],
                          capture_output=True, text=True, check=False)
