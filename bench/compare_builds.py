#!/usr/bin/python3
"""Times the same facet-bench cases in two or more builds, run alternately round by round, and prints
each case's median per build and its ratio to the first build's.

This VM's timings move by 5-20% within minutes (the host is shared), so two builds timed one after
the other say little; alternated, each round sees both on the same machine. The order flips every
round so neither build always runs first. A build may run with environment variables of its own,
e.g. FACET_WEIGHTS_DIR to time another weight file with the same binary.

usage: bench/compare_builds.py --filter REGEX [--rounds N] [--min-time S] LABEL=[VAR=VALUE,...:]FACET_BENCH ...
example: bench/compare_builds.py --filter '^BM_MTCNN_VGA(_Int8)?/avx512/real_time$' --rounds 8 \\
             before=/tmp/before/bin/facet-bench after=build/bin/facet-bench
"""
import argparse
import json
import os
import statistics
import subprocess
import sys


def parse_build(spec):
    label, sep, rest = spec.partition("=")
    if not sep or not label or not rest:
        raise argparse.ArgumentTypeError(f"{spec!r}: expected LABEL=[VAR=VALUE,...:]FACET_BENCH")
    env = {}
    if ":" in rest:
        assignments, rest = rest.split(":", 1)
        for assignment in assignments.split(","):
            name, sep, value = assignment.partition("=")
            if not sep or not name:
                raise argparse.ArgumentTypeError(f"{spec!r}: {assignment!r} is not VAR=VALUE")
            env[name] = value
    if not os.access(rest, os.X_OK):
        raise argparse.ArgumentTypeError(f"{rest}: not an executable")
    return label, rest, env


def run(binary, env, pattern, min_time):
    out = subprocess.run([binary, "--benchmark_filter=" + pattern, f"--benchmark_min_time={min_time}", "--benchmark_format=json"],
                         capture_output=True, text=True, env={**os.environ, **env})
    if out.returncode != 0:
        sys.exit(f"{binary} failed ({out.returncode}): {out.stderr.strip()}")
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
    # A case that skipped itself (e.g. its weight file is not in FACET_WEIGHTS_DIR) has no time.
    return {b["name"]: b["real_time"] * scale[b["time_unit"]] for b in json.loads(out.stdout)["benchmarks"]
            if not b.get("error_occurred")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--filter", required=True, help="facet-bench --benchmark_filter")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--min-time", type=float, default=0.5, help="--benchmark_min_time of each run, seconds")
    parser.add_argument("builds", nargs="+", type=parse_build, metavar="LABEL=[VAR=VALUE,...:]FACET_BENCH")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    times = {label: {} for label, _, _ in args.builds}
    for r in range(args.rounds):
        for label, binary, env in (args.builds if r % 2 == 0 else list(reversed(args.builds))):
            for name, ms in run(binary, env, args.filter, args.min_time).items():
                times[label].setdefault(name, []).append(ms)
    first = args.builds[0][0]
    if not any(times.values()):
        sys.exit(f"no case matched {args.filter!r}")
    names = list(dict.fromkeys(name for label, _, _ in args.builds for name in times[label]))
    width = max(len(name) for name in names)
    print(f"{'case':{width}}  " + "  ".join(f"{label:>12}" for label, _, _ in args.builds) + f"   (medians of {args.rounds} rounds, ms; x: {first} / build; nan: no time)")
    for name in names:
        medians = [statistics.median(times[label].get(name, [float("nan")])) for label, _, _ in args.builds]
        ratios = "  ".join(f"x{medians[0] / m:.3f}" for m in medians[1:])
        print(f"{name:{width}}  " + "  ".join(f"{m:12.3f}" for m in medians) + "   " + ratios)


if __name__ == "__main__":
    main()
