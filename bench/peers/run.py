#!/usr/bin/python3
"""facet against ONNX Runtime, OpenCV DNN and PyTorch on one 640x480 frame, one thread, in one run.

    /usr/bin/python3 bench/peers/run.py [--runs N] [--warmup N] [--repetitions N] [--markdown PATH]
    /usr/bin/python3 bench/peers/run.py --accuracy-only   # step 6 for facet's weight files alone

Steps (bench/peers/README.md says why each is fair):
1. Build RetinaFace-mnet0.25 in PyTorch (retinaface_torch.py) and check it before timing anything:
   the 2019 checkpoint must reproduce the golden raw outputs on the golden frame, and the official
   checkpoint (the one timed, as facet's benchmark uses it) the golden detections on crowd.jpg.
2. Export the official network to ONNX (fixed 1x3x480x640 input) in a temporary directory.
3. Time the network alone in PyTorch, OpenCV DNN and ONNX Runtime (node package
   onnxruntime-node), each on one thread, after checking each one's outputs against PyTorch's.
4. The same for ONNX Runtime with the network quantised to int8 (make_qdq.py: a QDQ model, min/max
   and percentile calibration), and for facet's int8 / bf16 weight files when weights/ has them.
5. Run facet's Google Benchmark model cases and print one table with the ratios.
6. Accuracy: each fp32, int8 and bf16 line's detections on the seven shared images against
   PyTorch fp32, by issue 19's gate (detection_gate.py), in a second table.

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
    import onnx
    import torch
except ImportError as missing:
    sys.exit(f"run.py: {missing}. Run it with Debian's /usr/bin/python3 and "
             "`apt-get install python3-torch python3-opencv python3-numpy python3-onnx`.")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import detection_gate  # noqa: E402  (needs HERE on the path)
import make_qdq  # noqa: E402
import ort_node  # noqa: E402
import retinaface_post  # noqa: E402
import retinaface_torch  # noqa: E402

REPO_ROOT = HERE.parent.parent

# Inputs. FACET_UPSTREAM and FACET_SHARED override the two shared directories (facet-bench reads
# the same frame through FACET_SHARED).
UPSTREAM_DIR = Path(os.environ.get("FACET_UPSTREAM") or REPO_ROOT / "../shared/upstream")
GOLDEN_DIR = Path(os.environ.get("FACET_SHARED") or REPO_ROOT / "../shared") / "golden"
TIMED_CHECKPOINT = make_qdq.CHECKPOINT  # the official checkpoint: what facet's benchmark loads
GOLDEN_RAW_CHECKPOINT = "retinaface/mobilenet0.25_Final.pth"  # the 2019 release the raw .npy come from
FRAME = "crowd_640x480.png"
FRAME_WIDTH, FRAME_HEIGHT = 640, 480
GOLDEN_RAW = "retinaface_mnet_crowd_640x480_{}.npy"
GOLDEN_DETECTIONS = "retinaface_mnetv2_crowd.json"  # the official checkpoint on upstream/images/crowd.jpg
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

# ONNX Runtime int8: the QDQ model of make_qdq.py, one line per calibration method.
ORT_INT8_CALIBRATIONS = (("minmax", "min/max"), ("percentile", f"percentile {make_qdq.PERCENTILE_DEFAULT}"))

# facet: the model cases of facet-bench (bench/bench_models.cpp), and facet-detect for the accuracy.
FACET_BENCH = REPO_ROOT / "build/bin/facet-bench"
FACET_DETECT = REPO_ROOT / "build/bin/facet-detect"
FACET_FILTER = "BM_RetinaFace_VGA"
FACET_FP32_WEIGHTS = "retinaface_mnet025_official.facet"
# facet's quantised weight files (made by setup.sh where the branch has facet-quantize) and their
# facet-bench cases, FACET_FILTER + suffix.
FACET_QUANTISED = (("int8", "_Int8", "retinaface_mnet025_official_int8.facet"),
                   ("bf16", "_Bf16", "retinaface_mnet025_official_bf16.facet"))

# Accuracy: every shared image, shrunk to facet-detect's default longer side.
ACCURACY_IMAGES = ("crowd.jpg", "multiface.jpg", "sample.jpg", "selfie_group.jpg", "portrait_angelina_jolie.jpg",
                   "portrait_kate_siegel.jpg", "portrait_paul_rudd.jpg")
ACCURACY_MAX_SIDE = 640
FACET_MIN_TIME_S = 1
ISA_PREFERENCE = ("avx512", "avx2", "sse41")  # the order facet picks at run time
ISA_LABEL = {"avx512": "AVX-512", "avx2": "AVX2", "sse41": "SSE4.1"}


def log(message):
    print(f"[peers] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# Inputs and the reference network


def load_frame(path, max_side=0):
    """The network input: BGR float minus the mean, NCHW, as upstream feeds it (MODELS.md section 1)."""
    try:
        return retinaface_post.network_input(path, max_side)
    except FileNotFoundError as why:
        sys.exit(f"run.py: {why}")


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
# Accuracy (issue 19's gate, detection_gate.py)


def accuracy_inputs():
    """[(image path, (width, height), network input)] for ACCURACY_IMAGES, shrunk as facet-detect does."""
    inputs = []
    for name in ACCURACY_IMAGES:
        path = UPSTREAM_DIR / "images" / name
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            sys.exit(f"run.py: cannot read {path}")
        inputs.append((path, (image.shape[1], image.shape[0]), load_frame(path, ACCURACY_MAX_SIDE)))
    return inputs


def faces_in_image(outputs, x, size, threshold, nms_iou=retinaface_post.EVAL_NMS_IOU):
    """Decoded faces (facet's defaults but the threshold and the NMS IoU) in the pixels of the
    image the input x was shrunk from."""
    height, width = x.shape[2:]
    boxes, scores, points = retinaface_post.detect(outputs["loc"].reshape(-1, 4), outputs["conf"].reshape(-1),
                                                   outputs["landms"].reshape(-1, 10), height, width, threshold=threshold,
                                                   iou=nms_iou)
    scale = np.array(size, dtype=np.float32) / [width, height]
    return boxes * np.tile(scale, 2), scores, points * scale


def pytorch_reference(model, inputs):
    """The fp32 faces every line is held against, per image: (faces, faces before NMS). The second
    are the tied candidates of the gate's tie rule (detection_gate.py), decoded with NMS IoU 1 (no
    suppression) at the candidates' threshold: a tie scores within the tolerance of a face >= 0.5."""
    references = []
    for _, size, x in inputs:
        outputs = torch_outputs(model, x)
        references.append((faces_in_image(outputs, x, size, detection_gate.REFERENCE_THRESHOLD),
                           faces_in_image(outputs, x, size, detection_gate.CANDIDATE_THRESHOLD, nms_iou=1.0)))
    return references


def ort_accuracy(onnx_path, inputs, reference, workdir):
    """The gate per image for an ONNX model run in ONNX Runtime (as timed: optimisation level all)."""
    runs = ort_node.run_model(onnx_path, [x for _, _, x in inputs], workdir, optimization="all")
    return [detection_gate.compare(ref, faces_in_image(out, x, size, detection_gate.CANDIDATE_THRESHOLD), before_nms)
            for (ref, before_nms), out, (_, size, x) in zip(reference, runs, inputs)]


def facet_accuracy(detect_path, weights, inputs, reference):
    faces = facet_detections(detect_path, weights, [path for path, _, _ in inputs])
    return [detection_gate.compare(ref, found, before_nms) for (ref, before_nms), found in zip(reference, faces)]


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
    return {"ms": float(median), "p10": float(p10), "p90": float(p90), "times": list(times_ms)}


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


def time_onnxruntime(onnx_path, frame, workdir, warmup, runs):
    """ONNX Runtime through ort_bench.js: the timing, and the outputs of the last run for the caller to check.

    Raises RuntimeError when it cannot run here.
    """
    input_path = workdir / "input.f32"
    frame.astype("<f4").tofile(input_path)
    result = json.loads(ort_node.node("ort_bench.js", onnx_path, input_path, warmup, runs, workdir))
    outputs = {name: np.fromfile(workdir / f"{name}.f32", dtype="<f4") for name in OUTPUTS}
    return {"name": f"ONNX Runtime {result['version']} (onnxruntime-node)", "timed": "network (CPU EP, opt. level all)",
            "outputs": outputs, **summary(result["times_ms"])}


def ort_row(timer, name_suffix=""):
    """timer()'s row with name_suffix added, or an "unavailable" row when ONNX Runtime cannot run here."""
    try:
        row = timer()
    except RuntimeError as why:
        log(f"ONNX Runtime unavailable: {why}")
        return {"name": "ONNX Runtime" + name_suffix, "timed": "network", "unavailable": str(why)}
    row["name"] += name_suffix
    return row


def export_onnx(model, path):
    """Fixed 1x3x480x640 input: every runtime sees the same static graph."""
    x = torch.zeros(1, 3, FRAME_HEIGHT, FRAME_WIDTH)
    torch.onnx.export(model, x, str(path), opset_version=ONNX_OPSET, input_names=["input"], output_names=list(OUTPUTS),
                      do_constant_folding=True)


# ----------------------------------------------------------------------------------------------
# facet


def facet_program(path, default, target):
    """path, built first (build/, Release) when it is the default and missing."""
    if path.exists():
        return path
    if path != default:
        sys.exit(f"run.py: {path} not found")
    log(f"building {target} (build/, Release)")
    for cmd in (["cmake", "-S", str(REPO_ROOT), "-B", str(REPO_ROOT / "build"), "-DFACET_BUILD_BENCHMARKS=ON"],
                ["cmake", "--build", str(REPO_ROOT / "build"), "-j2", "--target", target]):
        if subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode != 0:
            sys.exit(f"run.py: {' '.join(cmd)} failed")
    return path


def weights_dir():
    return Path(os.environ.get("FACET_WEIGHTS_DIR") or REPO_ROOT / "weights")


def quantised_facet_files():
    """[(label, case suffix, path)] of facet's quantised weight files present; logs the absent ones."""
    present = []
    for label, suffix, name in FACET_QUANTISED:
        path = weights_dir() / name
        if path.exists():
            present.append((label, suffix, path))
        else:
            log(f"no {path}: facet {label} is left out (setup.sh makes it on a branch with facet-quantize)")
    return present


def run_facet_bench(bench_path, quantised):
    """{(case, isa): {"ms", "faces"}} from facet-bench's JSON, one thread only; quantised is
    quantised_facet_files(): their cases are run too.

    Google Benchmark reports the mean time per iteration over at least FACET_MIN_TIME_S seconds
    (after one untimed call), not a median; p10 / p90 are not available from it.
    """
    suffixes = ["_Network"] + [suffix for _, suffix, _ in quantised]
    cmd = [str(bench_path), f"--benchmark_filter=^{FACET_FILTER}({'|'.join(suffixes)})?/", "--benchmark_format=json",
           f"--benchmark_min_time={FACET_MIN_TIME_S}"]
    # The same frame file as the peers, and this repository's weights, wherever the binary was built.
    env = {**os.environ, "FACET_SHARED": str(GOLDEN_DIR.parent), "FACET_WEIGHTS_DIR": str(weights_dir())}
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
    """Table rows for facet: fp32 end to end and network per ISA, default ISA first (so rows[0] and
    rows[1] are the references of the ratio columns), then the quantised files' end-to-end cases.

    cases is run_facet_bench's result, with "others" (load during the whole facet-bench run) added.
    """
    others = cases.pop("others")
    isas = [isa for isa in ISA_PREFERENCE if (FACET_FILTER, isa) in cases]
    if not isas or (FACET_FILTER + "_Network", isas[0]) not in cases:
        sys.exit("run.py: facet-bench reported no end-to-end and network case for one ISA")
    rows = []
    kinds = [("fp32", "", (("", "end to end: detect()"), ("_Network", "network: forward_raw()")))]
    kinds += [(label, " " + label, ((suffix, "end to end: detect()"),)) for label, suffix, _ in FACET_QUANTISED]
    for precision, label_suffix, cases_timed in kinds:
        for rank, isa in enumerate(isas):
            label = f"facet{label_suffix}, {ISA_LABEL[isa]}" + (" (default)" if rank == 0 else " (forced)")
            for suffix, timed in cases_timed:
                if (FACET_FILTER + suffix, isa) in cases:
                    rows.append({"name": label, "timed": timed, "mean_only": True, "others": others,
                                 "precision": precision, "default_isa": rank == 0, **cases[(FACET_FILTER + suffix, isa)]})
    return rows


def facet_detections(detect_path, weights, images):
    """facet-detect's faces on each image (default --max-side, threshold low enough for the gate)."""
    cmd = [str(detect_path), "--model", str(weights), "--threshold", str(detection_gate.CANDIDATE_THRESHOLD),
           "--json", "-", *map(str, images)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"run.py: {' '.join(cmd)} failed: {done.stderr.strip()}")
    results = json.loads(done.stdout)
    return [(np.array([f["box"] for f in r["faces"]]).reshape(-1, 4), np.array([f["score"] for f in r["faces"]]),
             np.array([f["landmarks"] for f in r["faces"]]).reshape(-1, 5, 2)) for r in results]


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


def render_table(lines, numeric):
    """Markdown with columns padded so it also reads in a terminal; numeric columns right-aligned."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]

    def render(cells):
        return "| " + " | ".join(c.rjust(w) if i in numeric else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i in numeric else ("-" * (w + 2))
                          for i, w in enumerate(widths)) + "|"
    return "\n".join([render(lines[0]), rule] + [render(line) for line in lines[1:]])


def accuracy_summary(row):
    """The timing table's accuracy cell: faces found over the seven images, extra faces, the gate."""
    if "accuracy" not in row:
        return row.get("accuracy_note", "-")
    results = row["accuracy"]
    found, faces = sum(r["found"] for r in results), sum(r["faces"] for r in results)
    extra, tied = sum(r["extra"] for r in results), sum(r["tied"] for r in results)
    return (f"{found}/{faces} found" + (f" ({tied} through a tie)" if tied else "") + f", {extra} extra: "
            + ("pass" if all(r["pass"] for r in results) else "fail"))


def format_table(rows, facet_e2e, facet_net):
    header = ["implementation", "timed", "median ms", "p10 ms", "p90 ms", "x facet end to end", "x facet network",
              "others' CPUs", "vs PyTorch fp32, 7 images"]
    lines = [header]
    for row in rows:
        if "unavailable" in row:
            lines.append([row["name"], f"unavailable: {row['unavailable']}", "-", "-", "-", "-", "-", "-", "-"])
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
            accuracy_summary(row),
        ])
    return render_table(lines, range(2, len(header) - 1))


def format_accuracy_table(rows):
    """Per image: fp32 faces found / fp32 faces (+ extra faces, and how many found through a tie);
    then the worst score and landmark errors."""
    calibration = set(make_qdq.CALIBRATION_IMAGES)
    header = (["implementation"] + [Path(name).stem + (" (cal.)" if name in calibration else "") for name in ACCURACY_IMAGES]
              + ["worst score error", "worst landmark error", "gate"])
    lines = [header]
    for row in rows:
        if "accuracy" not in row:
            continue
        results = row["accuracy"]
        lines.append([row["name"]] + [f"{r['found']}/{r['faces']} +{r['extra']}" + (f" ({r['tied']} tied)" if r["tied"] else "")
                                      for r in results] + [
            f"{max(r['worst_score'] for r in results):.3f}",
            f"{100 * max(r['worst_landmark'] for r in results):.2f}%",
            "pass" if all(r["pass"] for r in results) else "fail"])
    return render_table(lines, range(1, len(header) - 1))


def format_report(table, accuracy_table, context):
    notes = [
        f"- Machine: {context['cpu']}, {context['cpus']} logical CPUs; {context['os']}.",
        f"- Date: {context['date']}. {context['facet']}; {context['versions']}.",
        f"- Frame: golden/{FRAME} (640x480), one thread everywhere; weights: the official RetinaFace-mnet0.25 "
        f"checkpoint in every runtime ({context['faces']} faces at threshold {USER_THRESHOLD} in PyTorch and facet).",
        f"- Peers: median of {context['runs']} runs after {context['warmup']} warm-up runs; p10 / p90 over all runs. "
        f"facet: Google Benchmark's mean per iteration over >= {FACET_MIN_TIME_S} s. "
        f"Each line was timed {context['repetitions']} time(s), in turn with the others; the table gives the "
        "median of those.",
        "- Ratios are time / facet's fp32 time on its default ISA: above 1 is slower than facet.",
        f"- ONNX Runtime int8: make_qdq.py's QDQ model (ORT quantize_static's rules: int8 per-channel weights, uint8 "
        f"activations) calibrated on {', '.join(make_qdq.CALIBRATION_IMAGES)}; {context['ort_int8_speed']}.",
        f"- Checked before timing: {context['checks']}.",
        f"- Load: other processes kept {context['others_cpus']:.2f} of {context['cpus']} CPUs busy on average "
        f"while this ran (1-min load average {context['loadavg']} at the start); the others' CPUs column is the "
        "same figure for each line's own measurement (one for all facet lines: one facet-bench run).",
    ]
    gate = (f"Accuracy against PyTorch fp32 on the shared images, each shrunk to a longer side of {ACCURACY_MAX_SIDE} "
            f"as facet-detect does (cal.: calibration image of the int8 lines; the others are held out). A cell is "
            f"fp32 faces (score >= {detection_gate.REFERENCE_THRESHOLD}) found with IoU >= {detection_gate.MATCH_IOU} "
            f"/ fp32 faces, + faces >= {detection_gate.EXTRA_SCORE} where fp32 has none. The gate (issue 19) also "
            f"needs scores within {detection_gate.SCORE_TOLERANCE} and landmarks within "
            f"{100 * detection_gate.LANDMARK_TOLERANCE}% of the box side on the found faces; (N tied): found through "
            "a tie, a suppressed fp32 candidate within the score tolerance of the kept one (detection_gate.py). "
            "facet lines: facet-detect on its default ISA.")
    return table + "\n\n" + "\n".join(notes) + "\n\n" + gate + "\n\n" + accuracy_table + "\n"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100, help="timed runs per peer (default 100)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed runs before them (default 10)")
    parser.add_argument("--repetitions", type=int, default=1,
                        help="time every line this many times, in turn, and report the median (default 1)")
    parser.add_argument("--markdown", type=Path, help="also write the table and notes to this file")
    parser.add_argument("--facet-bench", type=Path, default=FACET_BENCH,
                        help="facet's benchmark program (default build/bin/facet-bench, built if missing)")
    parser.add_argument("--facet-detect", type=Path, default=FACET_DETECT,
                        help="facet's detector program, for the accuracy (default build/bin/facet-detect, built if missing)")
    parser.add_argument("--accuracy-only", action="store_true",
                        help="only the accuracy of facet's weight files against PyTorch fp32 (no timing, no peers)")
    args = parser.parse_args()
    for option in ("runs", "warmup", "repetitions"):
        if getattr(args, option) < (0 if option == "warmup" else 1):
            parser.error(f"--{option} {getattr(args, option)}: must be at least {0 if option == 'warmup' else 1}")
    return args


def merge_repetitions(rows):
    """One line from its repetitions: the median of their times, p10 / p90 over every run, the mean load."""
    merged = dict(rows[0])
    if "unavailable" in merged:
        return merged
    merged["ms"] = float(np.median([row["ms"] for row in rows]))
    if "times" in merged:
        merged["p10"], merged["p90"] = np.percentile([t for row in rows for t in row["times"]], [10, 90])
    merged["others"] = float(np.mean([row["others"] for row in rows]))
    return merged


def ort_int8_speed(ort, ort_int8_rows):
    if "unavailable" in ort:
        return "ONNX Runtime unavailable"
    return ", ".join(f"{row['name'].split(', ')[-1]} {ort['ms'] / row['ms']:.2f}x ONNX Runtime fp32's speed"
                     for row in ort_int8_rows if "unavailable" not in row)


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
    quantised = quantised_facet_files()
    detect_path = facet_program(args.facet_detect, FACET_DETECT, "facet-detect")
    inputs = accuracy_inputs()
    fp32_faces = pytorch_reference(model, inputs)
    if args.accuracy_only:
        files = [("fp32", weights_dir() / FACET_FP32_WEIGHTS)] + [(label, path) for label, _, path in quantised]
        print(format_accuracy_table([{"name": f"facet {label}", "accuracy": facet_accuracy(detect_path, path, inputs, fp32_faces)}
                                     for label, path in files]))
        return
    bench_path = facet_program(args.facet_bench, FACET_BENCH, "facet-bench")

    with tempfile.TemporaryDirectory(prefix="facet-peers-") as tmp, LoadMeter() as load:
        workdir = Path(tmp)
        onnx_path = workdir / "retinaface_mnet025_official.onnx"
        export_onnx(model, onnx_path)
        # ONNX Runtime's models besides the timed fp32 one: the opset-13 fp32 export (for the accuracy) and
        # its QDQ model per calibration method, with a copy pinned to the frame for timing.
        ort_models, calibration_failure = {}, None
        try:
            fp32_model, activations = make_qdq.calibrate(UPSTREAM_DIR, workdir, log=log)
            ort_models["fp32"] = workdir / "fp32.onnx"
            for method, label in ORT_INT8_CALIBRATIONS:
                qdq = make_qdq.quantise(fp32_model, activations, method)
                ort_models[method] = workdir / f"int8_{method}.onnx"
                onnx.save(qdq, str(ort_models[method]))
                onnx.save(make_qdq.pin_input(qdq, FRAME_HEIGHT, FRAME_WIDTH), str(workdir / f"int8_{method}_vga.onnx"))
        except RuntimeError as why:
            calibration_failure = f"no int8 model: {why}"
            log(f"ONNX Runtime unavailable: {why}")

        def time_ort_fp32():
            row = time_onnxruntime(onnx_path, frame, workdir, args.warmup, args.runs)
            row["errors"] = require_close("ONNX Runtime vs PyTorch", row.pop("outputs"), reference, OUTPUT_ATOL)
            return row

        def time_ort_int8(method):
            if method not in ort_models:
                raise RuntimeError(calibration_failure)
            row = time_onnxruntime(workdir / f"int8_{method}_vga.onnx", frame, workdir, args.warmup, args.runs)
            del row["outputs"]  # checked by the accuracy gate, not against PyTorch's outputs
            return row

        timers = [("ONNX Runtime", lambda: ort_row(time_ort_fp32))]
        timers += [(f"ONNX Runtime int8 ({label})", lambda m=method, l=label: ort_row(lambda: time_ort_int8(m), f", int8 QDQ, {l}"))
                   for method, label in ORT_INT8_CALIBRATIONS]
        timers += [("OpenCV DNN", lambda: time_opencv(onnx_path, frame, reference, args.warmup, args.runs)),
                   ("PyTorch", lambda: time_pytorch(model, frame, args.warmup, args.runs)),
                   ("facet (facet-bench)", lambda: run_facet_bench(bench_path, quantised))]
        repetitions = {what: [] for what, _ in timers}
        for rep in range(args.repetitions):
            for what, timer in timers:
                result = under_load_meter(f"{what}, repetition {rep + 1} of {args.repetitions}", timer)
                repetitions[what].append(facet_rows(result) if what.startswith("facet") else [result])
        # Each timer gives the same lines in the same order every repetition.
        lines = {what: [merge_repetitions(list(same)) for same in zip(*reps)] for what, reps in repetitions.items()}

        log("accuracy on the shared images")
        ort, *ort_int8_rows = [lines[what][0] for what, _ in timers[:1 + len(ORT_INT8_CALIBRATIONS)]]
        for row, key in zip([ort, *ort_int8_rows], ["fp32"] + [method for method, _ in ORT_INT8_CALIBRATIONS]):
            if "unavailable" not in row and key in ort_models:
                row["accuracy"] = ort_accuracy(ort_models[key], inputs, fp32_faces, workdir)
    opencv, pytorch = lines["OpenCV DNN"][0], lines["PyTorch"][0]
    pytorch["accuracy_note"] = "the reference"
    opencv["accuracy_note"] = "fp32, outputs checked on the frame"
    facet_lines = lines["facet (facet-bench)"]
    present = {label: path for label, _, path in quantised}
    for label in present:
        if not any(row["precision"] == label for row in facet_lines):
            log(f"{bench_path} has no {FACET_FILTER} case for the {label} file: facet {label} is not timed")
    for row in facet_lines:
        if row["default_isa"] and row["timed"].startswith("end to end"):
            weights = weights_dir() / FACET_FP32_WEIGHTS if row["precision"] == "fp32" else present[row["precision"]]
            row["accuracy"] = facet_accuracy(detect_path, weights, inputs, fp32_faces)

    facet_e2e, facet_net = facet_lines[0], facet_lines[1]
    if facet_e2e.get("faces") is not None and int(facet_e2e["faces"]) != faces:
        sys.exit(f"run.py: facet found {int(facet_e2e['faces'])} faces on the frame, PyTorch {faces}: "
                 "they do not compute the same thing")
    rows = facet_lines + [ort, *ort_int8_rows, opencv, pytorch]
    table = format_table(rows, facet_e2e, facet_net)
    versions = "; ".join([ort["name"] if "unavailable" not in ort else "ONNX Runtime unavailable",
                          f"node {node_version()}", opencv["name"], pytorch["name"],
                          f"Python {platform.python_version()}"])
    peers_checked = [row for row in (ort, opencv) if "errors" in row]
    checks = ("PyTorch reproduces the golden raw outputs (2019 checkpoint) and detections (official); " +
              ", ".join(f"{row['name'].split(' (')[0]} within {max(row['errors'].values()):.0e}" for row in peers_checked) +
              " of PyTorch's outputs (max abs)")
    report = format_report(table, format_accuracy_table(rows), {
        "checks": checks, "cpu": cpu_model(), "cpus": os.cpu_count(), "os": platform.platform(terse=True),
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "facet": facet_description(args.facet_bench), "versions": versions, "faces": faces, "runs": args.runs,
        "warmup": args.warmup, "repetitions": args.repetitions, "others_cpus": load.others_cpus, "loadavg": loadavg,
        "ort_int8_speed": ort_int8_speed(ort, ort_int8_rows),
    })
    print(report)
    if args.markdown:
        args.markdown.write_text(report)
        log(f"wrote {args.markdown}")


if __name__ == "__main__":
    main()
