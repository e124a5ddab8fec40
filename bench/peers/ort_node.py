"""ONNX Runtime through node (the npm package onnxruntime-node): installing it, and running a model.

run.py times with ort_bench.js; make_qdq.py calibrates and run.py checks detections with
ort_run.js, which this module drives. The npm package bundles the CPU library; --ignore-scripts skips
its install script, which only fetches GPU libraries.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ORT_PACKAGE = "onnxruntime-node@1.20"
NODE_CACHE = HERE / ".node_modules-cache"
NPM_TIMEOUT_S = 600


def install():
    """The npm package in NODE_CACHE (installed once); returns its node_modules dir or raises RuntimeError."""
    modules = NODE_CACHE / "node_modules"
    if (modules / "onnxruntime-node" / "package.json").exists():
        return modules
    for tool in ("node", "npm"):
        if not shutil.which(tool):
            raise RuntimeError(f"{tool} not found (apt-get install nodejs npm)")
    NODE_CACHE.mkdir(exist_ok=True)
    print(f"[peers] npm install {ORT_PACKAGE} into {NODE_CACHE}", flush=True)
    cmd = ["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund", "--prefix", str(NODE_CACHE), ORT_PACKAGE]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"npm install timed out after {NPM_TIMEOUT_S} s") from None
    if done.returncode != 0:
        last_line = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"npm install failed: {last_line}")
    return modules


def node(script, *args):
    """stdout of `node HERE/script args...` with the package on NODE_PATH; raises RuntimeError on failure."""
    env = {**os.environ, "NODE_PATH": str(install())}
    if not shutil.which("node"):
        raise RuntimeError("node not found (apt-get install nodejs)")
    done = subprocess.run(["node", str(HERE / script), *map(str, args)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{script} failed: {done.stderr.strip()}")
    return done.stdout


def run_model(model_path, inputs, workdir, optimization="all"):
    """Every output of model_path for each NCHW float input: [{name: array with the reported dims}].

    optimization is ORT's graph optimisation level: "disabled" (as ORT's calibrators run the
    augmented model) or "all" (as the timing runs it).
    """
    jobs = []
    for k, x in enumerate(inputs):
        out_dir = Path(workdir) / f"run{k}"
        out_dir.mkdir(parents=True, exist_ok=True)
        x.astype("<f4").tofile(out_dir / "input.f32")
        jobs.append({"file": str(out_dir / "input.f32"), "shape": list(x.shape), "out_dir": str(out_dir)})
    job_path = Path(workdir) / "job.json"
    job_path.write_text(json.dumps({"model": str(model_path), "optimization": optimization, "inputs": jobs}))
    node("ort_run.js", job_path)
    results = []
    for job in jobs:
        out_dir = Path(job["out_dir"])
        listing = json.loads((out_dir / "outputs.json").read_text())
        results.append({entry["name"]: np.fromfile(out_dir / entry["file"], dtype="<f4").reshape(entry["dims"])
                        for entry in listing})
        for path in out_dir.iterdir():
            path.unlink()  # the activations of a calibration run fill tens of MB per image
        out_dir.rmdir()
    return results
