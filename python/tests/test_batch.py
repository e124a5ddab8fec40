"""facet.batch on a LocalCluster of 2 worker processes (one thread each): the records equal a
sequential run in this process, error records included, and each worker loads its models once."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import facet
from facet import batch

SOURCE = Path(os.environ.get("FACET_SOURCE_DIR", Path(__file__).resolve().parents[2]))
IMAGES = Path(os.environ.get("FACET_SHARED", SOURCE.parent / "shared")) / "upstream" / "images"
CONFIG = batch.Config(str(SOURCE / "weights" / "retinaface_mnet025_official.facet"),
                      landmark_model=str(SOURCE / "weights" / "pfld_ghostone.facet"))


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as c:
            yield c


def write_y4m(path, frames):
    """RGB frames as 8-bit 4:4:4 full-range BT.601 YUV4MPEG2 (what Y4mReader inverts)."""
    h, w, _ = frames[0].shape
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F25:1 Ip C444 XCOLORRANGE=FULL\n".encode())
        for rgb in frames:
            r, g, b = (rgb[..., k].astype(np.float64) for k in range(3))
            y = 0.299 * r + 0.587 * g + 0.114 * b
            planes = [y, (b - y) / 1.772 + 128, (r - y) / 1.402 + 128]
            f.write(b"FRAME\n" + b"".join(np.clip(np.rint(p), 0, 255).astype(np.uint8).tobytes() for p in planes))


def test_cluster_records_equal_a_sequential_run(client, tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    video = tmp_path / "clip.y4m"
    photo = facet.load_image(str(IMAGES / "multiface.jpg"))
    write_y4m(video, [photo, photo[:, ::-1], photo])
    truncated = tmp_path / "truncated.y4m"
    truncated.write_bytes(video.read_bytes()[:-1000])
    items = ([str(p) for p in sorted(IMAGES.glob("*.jpg"))] + [str(corrupt), str(tmp_path / "missing.png")]
             + batch.frame_ranges(str(video), 2) + [batch.FrameRange(str(truncated), 0, 3)])
    assert batch.frame_ranges(str(video), 2) == [batch.FrameRange(str(video), 0, 2), batch.FrameRange(str(video), 2, 3)]
    sequential = [r for item in items for r in batch.item_records(item, CONFIG)]
    distributed = batch.records_bag(items, CONFIG, partitions=4).compute()
    assert distributed == sequential
    errors = {r["image"]: r["error"] for r in distributed if "error" in r}
    assert set(errors) == {str(corrupt), str(tmp_path / "missing.png"), str(truncated)}
    assert all(Path(p).name in message for p, message in errors.items())
    assert "truncated frame" in errors[str(truncated)]
    faces = [r for r in distributed if "error" not in r]
    assert all("landmarks98" in r and "head_pose" in r for r in faces)
    # Each frame of the clip holds multiface.jpg's six faces; the truncated copy's first two frames too.
    assert [sum(r.get("frame") == n and r["image"] == str(video) for r in faces) for n in range(3)] == [6, 6, 6]
    assert sorted({r["frame"] for r in faces if r["image"] == str(truncated)}) == [0, 1]
    # One detector and one landmarker per worker, however many images it saw.
    loads = client.run(lambda: __import__("facet.batch").batch.model_loads)
    assert sorted(loads.values()) == [2, 2]


def test_json_lines_round_trip(tmp_path):
    records = batch.item_records(str(IMAGES / "multiface.jpg"), CONFIG)
    out = tmp_path / "faces.jsonl"
    with open(out, "w") as f:
        assert batch.write_json_lines(records, f) == len(records) == 6
    assert [json.loads(line) for line in out.read_text().splitlines()] == records


def test_command_line_writes_json_lines(tmp_path):
    out = tmp_path / "faces.jsonl"
    missing = str(tmp_path / "missing.png")
    subprocess.run([sys.executable, "-m", "facet.batch", "--workers", "1", "--model", CONFIG.model, "--out", str(out),
                    str(IMAGES / "multiface.jpg"), missing], check=True, capture_output=True)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records == [r for p in (str(IMAGES / "multiface.jpg"), missing)
                       for r in batch.item_records(p, batch.Config(CONFIG.model))]
    assert len(records) == 7 and records[-1]["error"] == f"{missing}: cannot open image (No such file or directory)"
