#!/usr/bin/env python3
"""facet.batch throughput on a LocalCluster: images per second for 1 and 2 worker processes (one
thread each) over a folder of 200 VGA frames (the 640x480 golden frame, shifted and mirrored so
that no two are alike), RetinaFace only. Times the bag's compute, model loading included (once per
worker), cluster start-up excluded.

    PYTHONPATH=build/python python3 bench/dask_throughput.py
"""
import argparse
import os
import tempfile
import struct
import time
import zlib
from pathlib import Path

import numpy as np
from dask.distributed import Client, LocalCluster

import facet
from facet import batch

SOURCE = Path(__file__).resolve().parents[1]


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png(path, rgb):
    """An 8-bit RGB PNG (Pillow is not among facet's packages)."""
    h, w, _ = rgb.shape
    rows = b"".join(b"\0" + rgb[y].tobytes() for y in range(h))
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                           + png_chunk(b"IDAT", zlib.compress(rows, 1)) + png_chunk(b"IEND", b""))


def write_frames(folder, count):
    shared = Path(os.environ.get("FACET_SHARED", SOURCE.parent / "shared"))
    frame = facet.load_image(str(shared / "golden" / "crowd_640x480.png"))
    paths = []
    for k in range(count):
        shifted = np.roll(frame, 3 * k, axis=1)
        path = Path(folder) / f"frame_{k:03d}.png"
        write_png(path, np.ascontiguousarray(shifted[:, ::-1] if k % 2 else shifted))
        paths.append(str(path))
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    config = batch.Config(str(SOURCE / "weights" / "retinaface_mnet025_official.facet"))
    with tempfile.TemporaryDirectory() as folder:
        paths = write_frames(folder, args.frames)
        rates = {}
        for workers in args.workers:
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
                with Client(cluster):
                    start = time.perf_counter()
                    records = batch.records_bag(paths, config, partitions=8 * workers).compute()
                    seconds = time.perf_counter() - start
            assert not any("error" in r for r in records)
            rates[workers] = len(paths) / seconds
            print(f"{workers} worker(s): {len(paths)} frames, {len(records)} faces in {seconds:.2f} s: "
                  f"{rates[workers]:.1f} images/s")
        if len(rates) > 1:
            low, high = min(rates), max(rates)
            print(f"scaling {low} -> {high} workers: {rates[high] / rates[low]:.2f}x")


if __name__ == "__main__":
    main()
