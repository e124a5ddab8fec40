#!/usr/bin/python3
"""The threads table of bench/README.md ("Threads beside a busy process"): each multi-thread model
case at 1 thread, 2 threads, and both beside a noisy neighbour (a process keeping one core busy,
bench/noisy_neighbour.hpp), as medians of --repetitions runs, for one or more facet-bench builds
(e.g. before and after a change, run alternately case by case so both see the same machine). Each
case runs in a process of its own.

usage: bench/threads_table.py [--repetitions N] [--min-time S] LABEL=FACET_BENCH [LABEL=FACET_BENCH ...]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

# (row name, the case's 1-thread name, its multi-thread name stem); the stems take
# "<threads>" and an optional "/neighbour".
CASES = [
    ("RetinaFace VGA", "BM_RetinaFace_VGA/avx512", "BM_RetinaFace_VGA/avx512/kernel_threads:{t}"),
    ("RetinaFace VGA int8", "BM_RetinaFace_VGA_Int8/avx512", "BM_RetinaFace_VGA_Int8/avx512/kernel_threads:{t}"),
    ("RetinaFace VGA bf16", "BM_RetinaFace_VGA_Bf16/avx512", "BM_RetinaFace_VGA_Bf16/avx512/kernel_threads:{t}"),
    ("RetinaFace 720p", "BM_RetinaFace_720p/avx512/kernel_threads:1", "BM_RetinaFace_720p/avx512/kernel_threads:{t}"),
    ("RetinaFace DCN VGA network", "BM_RetinaFace_DCN_VGA_Network/avx512", "BM_RetinaFace_DCN_VGA_Network/avx512/kernel_threads:{t}"),
    ("MTCNN VGA", "BM_MTCNN_VGA/avx512", "BM_MTCNN_VGA/avx512/threads:{t}"),
    ("PFLD-GhostOne network (graph)", "BM_PFLD_GhostOne_Network/avx512", "BM_PFLD_GhostOne_Network/avx512/threads:{t}"),
]
COLUMNS = [("1 thread", 1, False), ("2 threads", 2, False), ("1 thread, neighbour", 1, True), ("2 threads, neighbour", 2, True)]


def case_name(row, threads, neighbour):
    _, single, stem = row
    name = single if threads == 1 and not neighbour else stem.format(t=threads)
    return name + ("/neighbour" if neighbour else "")


def run(binary, names, repetitions, min_time):
    pattern = "^(" + "|".join(names) + ")/real_time$"
    out = subprocess.run([binary, "--benchmark_filter=" + pattern, f"--benchmark_repetitions={repetitions}",
                          f"--benchmark_min_time={min_time}", "--benchmark_format=json"],
                         check=True, capture_output=True, text=True, env=dict(os.environ)).stdout
    times = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("run_type") == "iteration":
            times.setdefault(b["run_name"].removesuffix("/real_time"), []).append(b["real_time"])
    return {name: statistics.median(t) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=0.5)
    parser.add_argument("builds", nargs="+", metavar="LABEL=FACET_BENCH")
    args = parser.parse_args()
    names = [case_name(row, t, n) for row in CASES for _, t, n in COLUMNS]
    builds = [b.split("=", 1) for b in args.builds]
    if any(len(b) != 2 for b in builds):
        sys.exit("threads_table.py: each build is LABEL=PATH_TO_FACET_BENCH")
    # Each case in a process of its own: the pool's back-off after a stall (core/parallel.hpp)
    # lives as long as the process, so a case run after the neighbour's would start with it.
    medians = {label: {} for label, _ in builds}
    for name in names:
        for label, path in builds:
            medians[label].update(run(path, [name], args.repetitions, args.min_time))
    print(f"| case | build | {' | '.join(c for c, _, _ in COLUMNS)} | 2 / 1 threads | 2 / 1, neighbour |")
    print("|---|---|" + "---:|" * (len(COLUMNS) + 2))
    for row in CASES:
        for label, _ in builds:
            ms = [medians[label].get(case_name(row, t, n)) for _, t, n in COLUMNS]
            cells = [f"{m:.2f} ms" if m is not None else "-" for m in ms]
            ratio = lambda a, b: f"{a / b:.2f}" if a and b else "-"
            print(f"| {row[0]} | {label} | {' | '.join(cells)} | {ratio(ms[1], ms[0])} | {ratio(ms[3], ms[2])} |")


if __name__ == "__main__":
    main()
