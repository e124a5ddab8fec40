#!/usr/bin/python3
"""facet against face-api itself for a face descriptor, one thread, per face, in one run.

    /usr/bin/python3 bench/peers/recognition.py [--runs N] [--warmup N]

Both compute the descriptor of the same face crop, tests/faceapi/recognition/kate_siegel_box.png
(218 x 304: RetinaFace's box of portrait_kate_siegel.jpg, cut out): padded to a square, resized
bilinearly to 150 x 150, face-api's FaceRecognitionNet.
- face-api 1.7.15 on its bundled TensorFlow.js CPU backend in node (faceapi_recognition.mjs): plain
  JavaScript, one thread; computeFaceDescriptor on the crop's tensor.
- facet: facet-bench's BM_FaceRecognizer/<isa> (bench/bench_graph_models.cpp), one thread, on every
  instruction set this CPU runs.
The two descriptors are compared first (within 1e-4 per entry, as the parity test asks), so the two
time the same computation. Prints a Markdown table: milliseconds per face (median) and the ratio.

Needs node, the unpacked face-api package (scripts/fetch-weights.sh leaves it in
weights/.cache/face-api/package), weights/face_recognition.facet and build/bin/facet-bench.
"""

import argparse
import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
PACKAGE = REPO_ROOT / "weights/.cache/face-api/package"
CROP = REPO_ROOT / "tests/faceapi/recognition/kate_siegel_box.png"
REFERENCE = REPO_ROOT / "tests/faceapi/recognition/reference.json"
FACET_BENCH = REPO_ROOT / "build/bin/facet-bench"


def run(cmd):
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"recognition.py: {' '.join(map(str, cmd[:2]))} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def time_faceapi(warmup, runs):
    result = json.loads(run(["node", str(HERE / "faceapi_recognition.mjs"), str(PACKAGE), str(CROP), str(warmup), str(runs)]))
    expected = next(c["descriptor"] for c in json.loads(REFERENCE.read_text())["crops"] if c["image"] == CROP.name)
    worst = max(abs(a - b) for a, b in zip(result["descriptor"], expected))
    if worst > 1e-4:
        sys.exit(f"recognition.py: face-api's descriptor differs from the parity reference by {worst}")
    return result


def time_facet(runs):
    out = json.loads(run([str(FACET_BENCH), "--benchmark_filter=^BM_FaceRecognizer/", "--benchmark_format=json",
                          f"--benchmark_repetitions={runs}", "--benchmark_report_aggregates_only=true"]))
    return {b["run_name"].split("/")[1]: b for b in out["benchmarks"] if b.get("aggregate_name") == "median"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed face-api runs first (default 2)")
    args = parser.parse_args()
    for path in (PACKAGE, FACET_BENCH, REPO_ROOT / "weights/face_recognition.facet"):
        if not path.exists():
            sys.exit(f"recognition.py: {path} is missing (./setup.sh makes it)")
    faceapi = time_faceapi(args.warmup, args.runs)
    facet = time_facet(args.runs)
    faceapi_ms = statistics.median(faceapi["ms"])
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"CPU: {cpu}; one thread; crop {faceapi['crop'][0]}x{faceapi['crop'][1]} -> 150x150; median of {args.runs} runs\n")
    print("| implementation | ms per face | GFLOP/s | facet faster by |")
    print("|---|---|---|---|")
    print(f"| face-api {faceapi['face_api']}, TF.js {faceapi['tfjs']} {faceapi['backend']} backend (node {run(['node', '--version']).strip()}) "
          f"| {faceapi_ms:.1f} | | 1.0x |")
    for isa, b in facet.items():
        ms = b["real_time"] if b["time_unit"] == "ms" else b["real_time"] / 1000
        print(f"| facet BM_FaceRecognizer/{isa} | {ms:.2f} | {b['FLOPS'] / 1e9:.1f} | {faceapi_ms / ms:.0f}x |")


if __name__ == "__main__":
    main()
