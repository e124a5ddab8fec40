#!/usr/bin/env python3
"""The Python binding's call overhead: RetinaFace.detect on the 640x480 golden frame from Python
against the C++ benchmark BM_RetinaFace_VGA (facet-bench) on the same frame, model, options
(max_side 0, one thread) and instruction set. Alternates Python and C++ rounds so that both see
the same machine load; reports the time per call of each round and the overhead of the best
rounds (mean per call in both, as Google Benchmark reports). Then the GIL: frames per second of one Python thread, and of two threads with a detector
each (the GIL is released during inference, so two cores give up to twice the rate).

    PYTHONPATH=build/python python3 bench/python_overhead.py build/bin/facet-bench
"""
import argparse
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import facet

SOURCE = Path(__file__).resolve().parents[1]


def python_round(detector, frame, calls):
    """Mean milliseconds per detect() call."""
    start = time.perf_counter()
    for _ in range(calls):
        detector.detect(frame)
    return (time.perf_counter() - start) / calls * 1e3


def cpp_round(bench, isa, seconds):
    out = subprocess.run([bench, f"--benchmark_filter=^BM_RetinaFace_VGA/{isa}/real_time$", f"--benchmark_min_time={seconds}",
                          "--benchmark_format=json"], check=True, capture_output=True, text=True).stdout
    (result,) = json.loads(out)["benchmarks"]
    assert result["time_unit"] == "ms", result["time_unit"]
    return result["real_time"]


def threads_rate(detectors, frame, calls):
    """Frames per second of len(detectors) threads, each calling its own detector `calls` times."""
    threads = [threading.Thread(target=python_round, args=(d, frame, calls)) for d in detectors]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(detectors) * calls / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("facet_bench", help="path of facet-bench")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=100, help="Python calls per round")
    args = parser.parse_args()
    shared = Path(os.environ.get("FACET_SHARED", SOURCE.parent / "shared"))
    frame = facet.load_image(str(shared / "golden" / "crowd_640x480.png"))
    detector = facet.RetinaFace(str(SOURCE / "weights" / "retinaface_mnet025_official.facet"), max_side=0)
    detector.detect(frame)  # sizes the scratch memory, as the C++ benchmark's untimed first call
    isa = facet.isa()
    py_ms, cpp_ms = [], []
    for r in range(args.rounds):
        py_ms.append(python_round(detector, frame, args.calls))
        cpp_ms.append(cpp_round(args.facet_bench, isa, 1.0))
        print(f"round {r}: Python {py_ms[-1]:.3f} ms, C++ {cpp_ms[-1]:.3f} ms per frame ({isa})")
    best_py, best_cpp = min(py_ms), min(cpp_ms)
    print(f"best: Python {best_py:.3f} ms, C++ {best_cpp:.3f} ms: overhead {100 * (best_py / best_cpp - 1):+.2f}%")
    one, two = threads_rate([detector], frame, args.calls), threads_rate([detector, detector.clone()], frame, args.calls)
    print(f"one thread {one:.1f} frames/s, two threads with a detector each {two:.1f} frames/s: {two / one:.2f}x")


if __name__ == "__main__":
    main()
