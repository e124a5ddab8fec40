#!/usr/bin/python3
"""facet against ONNX Runtime, OpenCV DNN and PyTorch on one 640x480 frame, one thread, in one run.

    /usr/bin/python3 bench/peers/run.py [--runs N] [--warmup N] [--markdown PATH]

Steps (bench/peers/README.md says why each is fair):
1. Build RetinaFace-mnet0.25 in PyTorch (retinaface_torch.py) and check it before timing anything:
   the 2019 checkpoint must reproduce the golden raw outputs on the golden frame, and the official
   checkpoint (the one timed, as facet's benchmark uses it) the golden detections on crowd.jpg.
2. Export the official network to ONNX (fixed 1x3x480x640 input) in a temporary directory.
3. Time the network alone in PyTorch, OpenCV DNN and ONNX Runtime (node package
   onnxruntime-node), each on one thread, after checking each one's outputs against PyTorch's.
4. Run facet's Google Benchmark model cases and print one table with the ratios.

Debian's /usr/bin/python3 with python3-torch and python3-opencv; node and npm for ONNX Runtime (if
npm cannot install it, ONNX Runtime is reported as unavailable and the rest still runs). torch and
cv2 are used here only, never by the product.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    import cv2
    import numpy as np
    import torch
except ImportError as missing:
    sys.exit(f"run.py: {missing}. Run it with Debian's /usr/bin/python3 and "
             "`apt-get install python3-torch python3-opencv python3-numpy`.")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import retinaface_post  # noqa: E402  (needs HERE on the path)
import retinaface_torch  # noqa: E402

REPO_ROOT = HERE.parent.parent

# Inputs. FACET_UPSTREAM and FACET_SHARED override the two shared directories (facet-bench reads
# the same frame through FACET_SHARED).
UPSTREAM_DIR = Path(os.environ.get("FACET_UPSTREAM") or REPO_ROOT / "../shared/upstream")
GOLDEN_DIR = Path(os.environ.get("FACET_SHARED") or REPO_ROOT / "../shared") / "golden"
TIMED_CHECKPOINT = "retinaface/official/mobilenet0.25_Final.pth"  # what facet's benchmark loads
GOLDEN_RAW_CHECKPOINT = "retinaface/mobilenet0.25_Final.pth"  # the 2019 release the raw .npy come from
FRAME = "crowd_640x480.png"
FRAME_WIDTH, FRAME_HEIGHT = 640, 480
GOLDEN_RAW = "retinaface_mnet_crowd_640x480_{}.npy"
GOLDEN_DETECTIONS = "retinaface_mnetv2_crowd.json"  # the official checkpoint on upstream/images/crowd.jpg
BGR_MEAN = np.array([104, 117, 123], dtype=np.float32)
OUTPUTS = ("loc", "conf", "landms")

# Largest absolute difference allowed, per output, from PyTorch's golden files (for PyTorch here) or
# from PyTorch's outputs on this machine (for the other runtimes). Differences come only from float
# rounding (runtimes fold BN and reorder sums): about 2e-5 on the box / landmark deltas, whose
# magnitude reaches 10, and 2e-6 on the probabilities. A wrong layer is off by far more.
OUTPUT_ATOL = {"loc": 1e-3, "conf": 1e-4, "landms": 1e-3}
GOLDEN_PIXEL_TOL = 0.01  # the JSON rounds to 0.001 px
GOLDEN_SCORE_TOL = 1e-4  # and scores to 5 digits
USER_THRESHOLD = 0.5  # facet-bench's detect() threshold, for the face-count cross-check

ONNX_OPSET = 11

# ONNX Runtime through node: the npm package bundles the CPU library; --ignore-scripts skips its
# install script, which only fetches GPU libraries.
ORT_PACKAGE = "onnxruntime-node@1.20"
NODE_CACHE = HERE / ".node_modules-cache"
NPM_TIMEOUT_S = 600

# facet: the model cases of facet-bench (bench/bench_models.cpp).
FACET_BENCH = REPO_ROOT / "build/bin/facet-bench"
FACET_FILTER = "BM_RetinaFace_VGA"
FACET_MIN_TIME_S = 1
ISA_PREFERENCE = ("avx512", "avx2", "sse41")  # the order facet picks at run time
ISA_LABEL = {"avx512": "AVX-512", "avx2": "AVX2", "sse41": "SSE4.1"}


def log(message):
    print(f"[peers] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# Inputs and the reference network


def load_frame(path):
    """The network input: BGR float minus the mean, NCHW, as upstream feeds it (MODELS.md section 1)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # BGR
    if image is None:
        sys.exit(f"run.py: cannot read {path}")
    chw = (image.astype(np.float32) - BGR_MEAN).transpose(2, 0, 1)
    return np.ascontiguousarray(chw[None])


def torch_outputs(model, x):
    """{name: array without the batch axis} for one NCHW input."""
    with torch.no_grad():
        return {name: out[0].numpy() for name, out in zip(OUTPUTS, model(torch.from_numpy(x)))}


def max_errors(actual, expected):
    return {name: float(np.abs(actual[name].reshape(expected[name].shape) - expected[name]).max()) for name in OUTPUTS}


def require_close(what, actual, expected, atol):
    """Exits unless every output is within its tolerance; returns the errors for the report."""
    errors = max_errors(actual, expected)
    worst = ", ".join(f"{name} {err:.1e}" for name, err in errors.items())
    if any(errors[name] > atol[name] for name in OUTPUTS):
        sys.exit(f"run.py: {what} differs from the reference (max abs error: {worst}); refusing to time it")
    log(f"{what}: matches (max abs error: {worst})")
    return errors


def check_golden_raw(frame):
    """The 2019 checkpoint read with ReLU must give the golden raw outputs: the architecture is upstream's."""
    model = retinaface_torch.build(UPSTREAM_DIR / GOLDEN_RAW_CHECKPOINT, retinaface_torch.RELU_SLOPE)
    golden = {name: np.load(GOLDEN_DIR / GOLDEN_RAW.format(name)) for name in OUTPUTS}
    require_close("PyTorch, 2019 checkpoint vs golden raw outputs", torch_outputs(model, frame), golden, OUTPUT_ATOL)


def check_golden_detections(model):
    """The timed (official, LeakyReLU) model must give the golden detections at original size.

    There are no golden raw outputs for this checkpoint; its detections on crowd.jpg with the upstream
    evaluation settings are the check that the activation sits where upstream puts it.
    """
    golden = json.loads((GOLDEN_DIR / GOLDEN_DETECTIONS).read_text())
    image_path = UPSTREAM_DIR / "images" / golden["image"]
    x = load_frame(image_path)
    height, width = x.shape[2:]
    out = torch_outputs(model, x)
    boxes, scores, points = retinaface_post.detect(out["loc"], out["conf"], out["landms"], height, width)
    faces = golden["faces"]
    what = f"PyTorch, official checkpoint vs {GOLDEN_DETECTIONS}"
    if len(faces) != len(scores):
        sys.exit(f"run.py: {what}: {len(scores)} faces, golden {len(faces)}; refusing to time it")
    pixel_error = max(np.abs(boxes - [f["box"] for f in faces]).max(),
                      np.abs(points - [f["landmarks"] for f in faces]).max())
    score_error = np.abs(scores - [f["score"] for f in faces]).max()
    if pixel_error > GOLDEN_PIXEL_TOL or score_error > GOLDEN_SCORE_TOL:
        sys.exit(f"run.py: {what}: boxes / landmarks off by {pixel_error:.4f} px, scores by {score_error:.1e}")
    log(f"{what}: {len(faces)} faces match (within {pixel_error:.4f} px, scores within {score_error:.1e})")


def count_faces(outputs, threshold):
    """Faces a user would get: facet's detect() defaults (NMS 0.4, top 5000, at most 750)."""
    _, scores, _ = retinaface_post.detect(outputs["loc"], outputs["conf"], outputs["landms"], FRAME_HEIGHT,
                                          FRAME_WIDTH, threshold=threshold)
    return len(scores)


# ----------------------------------------------------------------------------------------------
# Timing


def time_calls(call, warmup, runs):
    """Milliseconds of each of `runs` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def summary(times_ms):
    p10, median, p90 = np.percentile(times_ms, [10, 50, 90])
    return {"ms": float(median), "p10": float(p10), "p90": float(p90)}


def time_pytorch(model, frame, warmup, runs):
    x = torch.from_numpy(frame)
    with torch.no_grad():
        times = time_calls(lambda: model(x), warmup, runs)
    return {"name": f"PyTorch {torch.__version__}", "timed": "network (eval, no_grad)", **summary(times)}


def time_opencv(onnx_path, frame, reference, warmup, runs):
    net = cv2.dnn.readNetFromONNX(str(onnx_path))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    names = list(OUTPUTS)
    net.setInput(frame)
    outputs = dict(zip(names, (o[0] for o in net.forward(names))))
    errors = require_close("OpenCV DNN vs PyTorch", outputs, reference, OUTPUT_ATOL)

    def forward():
        # setInput only stores the blob; the time is net.forward, as for the other runtimes.
        net.setInput(frame)
        start = time.perf_counter()
        net.forward(names)
        return (time.perf_counter() - start) * 1e3

    for _ in range(warmup):
        forward()
    times = [forward() for _ in range(runs)]
    return {"name": f"OpenCV DNN {cv2.__version__}", "timed": "network (readNetFromONNX, CPU)",
            "errors": errors, **summary(times)}


def install_onnxruntime_node():
    """The npm package in NODE_CACHE (installed once); returns its node_modules dir or raises RuntimeError."""
    modules = NODE_CACHE / "node_modules"
    if (modules / "onnxruntime-node" / "package.json").exists():
        return modules
    for tool in ("node", "npm"):
        if not shutil.which(tool):
            raise RuntimeError(f"{tool} not found (apt-get install nodejs npm)")
    NODE_CACHE.mkdir(exist_ok=True)
    log(f"npm install {ORT_PACKAGE} into {NODE_CACHE}")
    cmd = ["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund", "--prefix", str(NODE_CACHE), ORT_PACKAGE]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"npm install timed out after {NPM_TIMEOUT_S} s") from None
    if done.returncode != 0:
        last_line = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"npm install failed: {last_line}")
    return modules


def time_onnxruntime(onnx_path, frame, reference, workdir, warmup, runs):
    """ONNX Runtime through ort_bench.js; raises RuntimeError when it cannot run here."""
    modules = install_onnxruntime_node()
    input_path = workdir / "input.f32"
    frame.astype("<f4").tofile(input_path)
    cmd = ["node", str(HERE / "ort_bench.js"), str(onnx_path), str(input_path), str(warmup), str(runs), str(workdir)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "NODE_PATH": str(modules)})
    if done.returncode != 0:
        raise RuntimeError(f"ort_bench.js failed: {done.stderr.strip()}")
    result = json.loads(done.stdout)
    outputs = {name: np.fromfile(workdir / f"{name}.f32", dtype="<f4") for name in OUTPUTS}
    errors = require_close("ONNX Runtime vs PyTorch", outputs, reference, OUTPUT_ATOL)
    return {"name": f"ONNX Runtime {result['version']} (onnxruntime-node)", "timed": "network (CPU EP, opt. level all)",
            "errors": errors, **summary(result["times_ms"])}


def export_onnx(model, path):
    """Fixed 1x3x480x640 input: every runtime sees the same static graph."""
    x = torch.zeros(1, 3, FRAME_HEIGHT, FRAME_WIDTH)
    torch.onnx.export(model, x, str(path), opset_version=ONNX_OPSET, input_names=["input"], output_names=list(OUTPUTS),
                      do_constant_folding=True)


# ----------------------------------------------------------------------------------------------
# facet


def build_facet_bench():
    log("building facet-bench (build/, Release)")
    for cmd in (["cmake", "-S", str(REPO_ROOT), "-B", str(REPO_ROOT / "build"), "-DFACET_BUILD_BENCHMARKS=ON"],
                ["cmake", "--build", str(REPO_ROOT / "build"), "-j2", "--target", "facet-bench"]):
        if subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode != 0:
            sys.exit(f"run.py: {' '.join(cmd)} failed")


def run_facet_bench(bench_path):
    """{(case, isa): {"ms", "faces"}} from facet-bench's JSON, one thread only.

    Google Benchmark reports the mean time per iteration over at least FACET_MIN_TIME_S seconds
    (after one untimed call), not a median; p10 / p90 are not available from it.
    """
    if not bench_path.exists():
        if bench_path != FACET_BENCH:
            sys.exit(f"run.py: {bench_path} not found")
        build_facet_bench()
    cmd = [str(bench_path), f"--benchmark_filter={FACET_FILTER}", "--benchmark_format=json",
           f"--benchmark_min_time={FACET_MIN_TIME_S}"]
    # The same frame file as the peers, and this repository's weights, wherever the binary was built.
    env = {**os.environ, "FACET_SHARED": str(GOLDEN_DIR.parent),
           "FACET_WEIGHTS_DIR": os.environ.get("FACET_WEIGHTS_DIR") or str(REPO_ROOT / "weights")}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"run.py: facet-bench failed: {done.stderr.strip()}")
    cases = {}
    for bench in json.loads(done.stdout)["benchmarks"]:
        if bench.get("error_occurred"):
            sys.exit(f"run.py: {bench['name']}: {bench.get('error_message')}")
        case, isa, *rest = bench["name"].split("/")
        if any(part.startswith("kernel_threads") for part in rest):
            continue  # the 2-thread case: this table is one thread only
        assert bench["time_unit"] == "ms", bench["time_unit"]
        cases[(case, isa)] = {"ms": bench["real_time"], "faces": bench.get("faces")}
    return cases


def facet_rows(cases):
    """Table rows for facet, default ISA first; returns (rows, end-to-end ms, network ms) of the default ISA.

    cases is run_facet_bench's result, with "others" (load during the whole facet-bench run) added.
    """
    others = cases.pop("others")
    isas = [isa for isa in ISA_PREFERENCE if (FACET_FILTER, isa) in cases]
    if not isas or (FACET_FILTER + "_Network", isas[0]) not in cases:
        sys.exit("run.py: facet-bench reported no end-to-end and network case for one ISA")
    rows = []
    for rank, isa in enumerate(isas):
        label = f"facet, {ISA_LABEL[isa]}" + (" (default)" if rank == 0 else " (forced)")
        for case, timed in ((FACET_FILTER, "end to end: detect()"), (FACET_FILTER + "_Network", "network: forward_raw()")):
            if (case, isa) in cases:
                rows.append({"name": label, "timed": timed, "mean_only": True, "others": others, **cases[(case, isa)]})
    best = isas[0]
    return rows, cases[(FACET_FILTER, best)], cases[(FACET_FILTER + "_Network", best)]


# ----------------------------------------------------------------------------------------------
# Machine and load


def cpu_model():
    """"model name (family F model M)" of the first CPU in /proc/cpuinfo (a VM may show only the name)."""
    info = {}
    for line in Path("/proc/cpuinfo").read_text().split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    name = info.get("model name") or platform.processor() or "unknown CPU"
    return f"{name} (family {info.get('cpu family', '?')} model {info.get('model', '?')})"


def cpu_busy_seconds():
    """CPU time all processes have used since boot: user, nice, system, irq and softirq in /proc/stat.

    Idle, iowait and steal are not work done here; guest time is already inside user and nice.
    """
    user, nice, system, _idle, _iowait, irq, softirq = map(int, Path("/proc/stat").read_text().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds():
    """CPU time of this process and of the children it has waited for (node, facet-bench)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class LoadMeter:
    """How many CPUs other processes kept busy while we timed: the whole machine's busy time minus ours."""

    def __enter__(self):
        self.start = (cpu_busy_seconds(), own_cpu_seconds(), time.monotonic())
        return self

    def __exit__(self, *exc):
        busy0, own0, wall0 = self.start
        busy1, own1, wall1 = cpu_busy_seconds(), own_cpu_seconds(), time.monotonic()
        self.others_cpus = max(0.0, ((busy1 - busy0) - (own1 - own0)) / (wall1 - wall0))
        return False


def under_load_meter(what, call):
    """call()'s result (a dict) with "others": the CPUs other processes kept busy meanwhile."""
    log(f"timing {what}")
    with LoadMeter() as load:
        result = call()
    result["others"] = load.others_cpus
    return result


def node_version():
    if not shutil.which("node"):
        return "not installed"
    return subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()


def facet_description(bench_path):
    if bench_path == FACET_BENCH:
        return f"facet {git_revision()} (build/bin/facet-bench)"
    return f"facet from {bench_path}"


def git_revision():
    def git(*args):
        return subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True).stdout.strip()
    revision = git("rev-parse", "--short", "HEAD") or "unknown"
    return revision + (" (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else "")


# ----------------------------------------------------------------------------------------------
# Report


def format_table(rows, facet_e2e, facet_net):
    """One markdown table, columns padded so it also reads in a terminal."""
    header = ["implementation", "timed", "median ms", "p10 ms", "p90 ms", "x facet end to end", "x facet network",
              "others' CPUs"]
    lines = [header]
    for row in rows:
        if "unavailable" in row:
            lines.append([row["name"], f"unavailable: {row['unavailable']}", "-", "-", "-", "-", "-", "-"])
            continue
        mean_only = row.get("mean_only")
        lines.append([
            row["name"], row["timed"],
            f"{row['ms']:.2f}" + (" (mean)" if mean_only else ""),
            "-" if mean_only else f"{row['p10']:.2f}",
            "-" if mean_only else f"{row['p90']:.2f}",
            f"{row['ms'] / facet_e2e['ms']:.2f}",
            f"{row['ms'] / facet_net['ms']:.2f}",
            f"{row['others']:.2f}",
        ])
    numeric = range(2, len(header))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]

    def render(cells):
        return "| " + " | ".join(c.rjust(w) if i in numeric else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i in numeric else ("-" * (w + 2))
                          for i, w in enumerate(widths)) + "|"
    return "\n".join([render(lines[0]), rule] + [render(line) for line in lines[1:]])


def format_report(table, context):
    notes = [
        f"- Machine: {context['cpu']}, {context['cpus']} logical CPUs; {context['os']}.",
        f"- Date: {context['date']}. {context['facet']}; {context['versions']}.",
        f"- Frame: golden/{FRAME} (640x480), one thread everywhere; weights: the official RetinaFace-mnet0.25 "
        f"checkpoint in every runtime ({context['faces']} faces at threshold {USER_THRESHOLD} in PyTorch and facet).",
        f"- Peers: median and p10 / p90 of {context['runs']} runs after {context['warmup']} warm-up runs. "
        f"facet: Google Benchmark's mean per iteration over >= {FACET_MIN_TIME_S} s.",
        "- Ratios are time / facet's time on its default ISA: above 1 is slower than facet.",
        f"- Checked before timing: {context['checks']}.",
        f"- Load: other processes kept {context['others_cpus']:.2f} of {context['cpus']} CPUs busy on average "
        f"while this ran (1-min load average {context['loadavg']} at the start); the last column is the same "
        "figure for each line's own measurement (one for all facet lines: one facet-bench run).",
    ]
    return table + "\n\n" + "\n".join(notes) + "\n"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100, help="timed runs per peer (default 100)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed runs before them (default 10)")
    parser.add_argument("--markdown", type=Path, help="also write the table and notes to this file")
    parser.add_argument("--facet-bench", type=Path, default=FACET_BENCH,
                        help="facet's benchmark program (default build/bin/facet-bench, built if missing)")
    return parser.parse_args()


def main():
    args = parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    loadavg = Path("/proc/loadavg").read_text().split()[0]

    frame = load_frame(GOLDEN_DIR / FRAME)
    if frame.shape != (1, 3, FRAME_HEIGHT, FRAME_WIDTH):
        sys.exit(f"run.py: {FRAME} is not {FRAME_WIDTH}x{FRAME_HEIGHT}")
    check_golden_raw(frame)
    model = retinaface_torch.build(UPSTREAM_DIR / TIMED_CHECKPOINT, retinaface_torch.OFFICIAL_LEAKY_SLOPE)
    check_golden_detections(model)
    reference = torch_outputs(model, frame)
    faces = count_faces(reference, USER_THRESHOLD)

    with tempfile.TemporaryDirectory(prefix="facet-peers-") as tmp, LoadMeter() as load:
        workdir = Path(tmp)
        onnx_path = workdir / "retinaface_mnet025_official.onnx"
        export_onnx(model, onnx_path)

        def onnxruntime():
            try:
                return time_onnxruntime(onnx_path, frame, reference, workdir, args.warmup, args.runs)
            except RuntimeError as why:
                log(f"ONNX Runtime unavailable: {why}")
                return {"name": "ONNX Runtime", "timed": "network", "unavailable": str(why)}

        ort = under_load_meter("ONNX Runtime", onnxruntime)
        opencv = under_load_meter("OpenCV DNN", lambda: time_opencv(onnx_path, frame, reference, args.warmup, args.runs))
        pytorch = under_load_meter("PyTorch", lambda: time_pytorch(model, frame, args.warmup, args.runs))
        facet_cases = under_load_meter("facet (facet-bench)", lambda: run_facet_bench(args.facet_bench))

    rows, facet_e2e, facet_net = facet_rows(facet_cases)
    if facet_e2e.get("faces") is not None and int(facet_e2e["faces"]) != faces:
        sys.exit(f"run.py: facet found {int(facet_e2e['faces'])} faces on the frame, PyTorch {faces}: "
                 "they do not compute the same thing")
    table = format_table(rows + [ort, opencv, pytorch], facet_e2e, facet_net)
    versions = "; ".join([ort["name"] if "unavailable" not in ort else "ONNX Runtime unavailable",
                          f"node {node_version()}", opencv["name"], pytorch["name"],
                          f"Python {platform.python_version()}"])
    peers_checked = [row for row in (ort, opencv) if "errors" in row]
    checks = ("PyTorch reproduces the golden raw outputs (2019 checkpoint) and detections (official); " +
              ", ".join(f"{row['name'].split(' (')[0]} within {max(row['errors'].values()):.0e}" for row in peers_checked) +
              " of PyTorch's outputs (max abs)")
    report = format_report(table, {
        "checks": checks, "cpu": cpu_model(), "cpus": os.cpu_count(), "os": platform.platform(terse=True),
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "facet": facet_description(args.facet_bench), "versions": versions, "faces": faces, "runs": args.runs,
        "warmup": args.warmup, "others_cpus": load.others_cpus, "loadavg": loadavg,
    })
    print(report)
    if args.markdown:
        args.markdown.write_text(report)
        log(f"wrote {args.markdown}")


if __name__ == "__main__":
    main()
