"""Face records for many images on a Dask cluster.

A Dask bag of image paths (or of frame ranges of YUV4MPEG2 videos) goes in; one record per face
comes out (image, frame for a video, face index, box, score, five landmarks, and with a landmark
model the dense landmarks and head pose), written as JSON lines. A missing or corrupt image becomes an error record carrying facet's message, never a failed
job. Each worker process (thread, if it runs several) loads each model once, on its first image.

    python3 -m facet.batch --scheduler tcp://scheduler:8786 --out faces.jsonl photos/*.jpg

Without --scheduler a local cluster of --workers processes (one thread each) is started.
"""
import argparse
import json
import sys
import threading
from dataclasses import dataclass
from typing import List, Optional, Sequence

import facet


@dataclass(frozen=True)
class Config:
    """What to run on each image. Model paths must be readable on every worker."""
    model: str
    detector: str = "retinaface"            # or "mtcnn"
    landmark_model: Optional[str] = None    # a 98- or 68-point landmark model: dense landmarks + head pose


_models = threading.local()  # per worker thread: {Config: (detector, landmarker)}
model_loads = 0              # models loaded by this process, for the tests' "once per worker" check


def _models_for(config: Config):
    global model_loads
    cache = getattr(_models, "cache", None)
    if cache is None:
        cache = _models.cache = {}
    if config not in cache:
        detector = facet.Mtcnn(config.model) if config.detector == "mtcnn" else facet.RetinaFace(config.model)
        landmarker = facet.FaceLandmarker(config.landmark_model) if config.landmark_model else None
        model_loads += 1 + (landmarker is not None)
        cache[config] = (detector, landmarker)
    return cache[config]


def _rounded(values) -> list:
    return [round(float(v), 3) for v in values]


def _face_records(image, source: dict, detector, landmarker) -> List[dict]:
    records = []
    for k, face in enumerate(detector.detect(image)):
        record = {**source, "face": k, "box": _rounded(face.box), "score": round(float(face.score), 5),
                  "landmarks": [_rounded(p) for p in face.landmarks]}
        if landmarker is not None:
            points = landmarker.landmarks(image, face.box)
            record[f"landmarks{len(points)}"] = [_rounded(p) for p in points]
            pose = facet.estimate_head_pose(points, image.shape[1], image.shape[0])
            record["head_pose"] = {"yaw": round(pose.yaw, 3), "pitch": round(pose.pitch, 3), "roll": round(pose.roll, 3)}
        records.append(record)
    return records


@dataclass(frozen=True)
class FrameRange:
    """Frames [first, stop) of a YUV4MPEG2 video: one task's share of it."""
    video: str
    first: int
    stop: int


def frame_ranges(video: str, frames_per_task: int = 50) -> List[FrameRange]:
    """A video split into tasks of frames_per_task frames (its frames are counted by reading it once)."""
    frames = sum(1 for _ in facet.Y4mReader(video))
    return [FrameRange(video, first, min(first + frames_per_task, frames)) for first in range(0, frames, frames_per_task)]


def item_records(item, config: Config) -> List[dict]:
    """The records of an image path or a FrameRange: one per face, and an error record for an image
    (or the rest of a frame range) facet cannot read."""
    source = {"image": item if isinstance(item, str) else item.video}
    records = []
    try:
        detector, landmarker = _models_for(config)
        if isinstance(item, str):
            return _face_records(facet.load_image(item), source, detector, landmarker)
        video = facet.Y4mReader(item.video)
        for n in range(item.stop):
            source = {"image": item.video, "frame": n}
            frame = video.read()
            if frame is None:
                raise facet.Error(f"{item.video}: ends before frame {n}")
            if n >= item.first:  # earlier frames are decoded only to reach this range
                records += _face_records(frame, source, detector, landmarker)
        return records
    except facet.Error as e:
        return records + [{**source, "error": str(e)}]


def records_bag(items: Sequence, config: Config, partitions: Optional[int] = None):
    """A Dask bag of the records of every image path or FrameRange in `items`, in their order."""
    import dask.bag as db
    bag = db.from_sequence(list(items), npartitions=partitions or min(len(items), 64) or 1)
    return bag.map(item_records, config).flatten()


def write_json_lines(records, out) -> int:
    count = 0
    for record in records:
        out.write(json.dumps(record) + "\n")
        count += 1
    return count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m facet.batch", description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="+", help="image files (PNG or JPEG) or .y4m videos, readable on every worker")
    parser.add_argument("--frames-per-task", type=int, default=50, help="a video's frames per task")
    parser.add_argument("--out", required=True, help="JSON lines file to write (- for stdout)")
    parser.add_argument("--model", default="weights/retinaface_mnet025_official.facet")
    parser.add_argument("--detector", choices=("retinaface", "mtcnn"), default="retinaface")
    parser.add_argument("--landmark-model", help="98- or 68-point landmark model: adds dense landmarks and head pose")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler (tcp://HOST:8786)")
    parser.add_argument("--workers", type=int, default=2, help="local worker processes without --scheduler")
    args = parser.parse_args(argv)
    from dask.distributed import Client, LocalCluster

    config = Config(args.model, args.detector, args.landmark_model)
    with (Client(args.scheduler) if args.scheduler
          else Client(LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True))):
        items = [r for path in args.images
                 for r in (frame_ranges(path, args.frames_per_task) if path.endswith(".y4m") else [path])]
        records = records_bag(items, config).compute()
    if args.out == "-":
        count = write_json_lines(records, sys.stdout)
    else:
        with open(args.out, "w") as out:
            count = write_json_lines(records, out)
    errors = sum("error" in r for r in records)
    print(f"facet.batch: {count - errors} faces, {errors} error records", file=sys.stderr)
    return 0


if __name__ == "__main__":
    # Run as facet.batch, not __main__: the workers unpickle the tasks' functions by module name.
    from facet.batch import main as module_main
    sys.exit(module_main())
