"""Face records for many images on a Dask cluster.

A Dask bag of image paths goes in; one record per face comes out (image, face index, box, score,
five landmarks, and with a landmark model the dense landmarks and head pose), written as JSON
lines. A missing or corrupt image becomes an error record carrying facet's message, never a failed
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


def image_records(path: str, config: Config) -> List[dict]:
    """The records of one image: one per face, or one error record."""
    try:
        detector, landmarker = _models_for(config)
        image = facet.load_image(path)
        records = []
        for k, face in enumerate(detector.detect(image)):
            record = {"image": path, "face": k, "box": _rounded(face.box), "score": round(float(face.score), 5),
                      "landmarks": [_rounded(p) for p in face.landmarks]}
            if landmarker is not None:
                points = landmarker.landmarks(image, face.box)
                record[f"landmarks{len(points)}"] = [_rounded(p) for p in points]
                pose = facet.estimate_head_pose(points, image.shape[1], image.shape[0])
                record["head_pose"] = {"yaw": round(pose.yaw, 3), "pitch": round(pose.pitch, 3), "roll": round(pose.roll, 3)}
            records.append(record)
        return records
    except facet.Error as e:
        return [{"image": path, "error": str(e)}]


def records_bag(paths: Sequence[str], config: Config, partitions: Optional[int] = None):
    """A Dask bag of the records of every image in `paths`, in their order."""
    import dask.bag as db
    bag = db.from_sequence(list(paths), npartitions=partitions or min(len(paths), 64) or 1)
    return bag.map(image_records, config).flatten()


def write_json_lines(records, out) -> int:
    count = 0
    for record in records:
        out.write(json.dumps(record) + "\n")
        count += 1
    return count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m facet.batch", description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="+", help="image files (PNG or JPEG), readable on every worker")
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
        records = records_bag(args.images, config).compute()
    if args.out == "-":
        count = write_json_lines(records, sys.stdout)
    else:
        with open(args.out, "w") as out:
            count = write_json_lines(records, out)
    errors = sum("error" in r for r in records)
    print(f"facet.batch: {count - errors} faces, {errors} images with errors", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
