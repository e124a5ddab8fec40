#!/usr/bin/env python3
"""Which box around a RetinaFace detection should facet's attribute nets crop, to give what face-api
gives from its own detector's box? (README, "Face attributes".)

    PYTHONPATH=build/python python3 tests/faceapi/measure_attribute_boxes.py [IMAGES...]

For each image (default: the three portraits, multiface and selfie_group of ../shared), facet decodes
it and writes it as PNG for node; face-api runs its whole pipeline on that PNG
(attribute_pipeline.mjs: SSD MobileNet v1, its crop of each box, both nets). Each face-api face is
matched to the default RetinaFace's face of largest IoU (at least 0.4), and facet's nets run on the
crop of several boxes: face-api's own (the crop rule alone), RetinaFace's grown by a margin of its
longer side on each side, and RetinaFace's with its top raised by a fraction of its height. Printed per box: the mean total variation distance of the expression
probabilities from face-api's, how often the top expression agrees, the mean age difference, and how
often the gender agrees.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

import facet

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parents[1]
IMAGES = SOURCE.parent / "shared" / "upstream" / "images"
DEFAULT_IMAGES = ["portrait_angelina_jolie.jpg", "portrait_kate_siegel.jpg", "portrait_paul_rudd.jpg", "multiface.jpg",
                  "selfie_group.jpg"]
MARGINS = [-0.05, 0.0, 0.02, 0.05, 0.1, 0.15, 0.2]
TOP_EXTENSIONS = [0.05, 0.1, 0.2]  # face-api's SSD boxes reach higher on the forehead


def write_png(path, rgb):
    """An 8-bit RGB PNG (filter 0 on every row), what attribute_pipeline.mjs reads."""
    height, width, _ = rgb.shape
    rows = b"".join(b"\0" + rgb[y].tobytes() for y in range(height))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                          + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b""))


def iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="*", type=Path, default=[IMAGES / name for name in DEFAULT_IMAGES])
    parser.add_argument("--package", type=Path, default=SOURCE / "weights" / ".cache" / "face-api" / "package")
    args = parser.parse_args()
    weights = SOURCE / "weights"
    detector = facet.RetinaFace(str(weights / "retinaface_mnet025_official.facet"))
    attributes = facet.FaceAttributes(str(weights / "age_gender.facet"), str(weights / "face_expression.facet"))
    with tempfile.TemporaryDirectory() as tmp:
        decoded = {}
        for path in args.images:
            decoded[f"{tmp}/{path.stem}.png"] = facet.load_image(str(path))
            write_png(f"{tmp}/{path.stem}.png", decoded[f"{tmp}/{path.stem}.png"])
        records = json.loads(subprocess.run(["node", str(HERE / "attribute_pipeline.mjs"), str(args.package), *decoded],
                                            check=True, capture_output=True, text=True).stdout)
    boxes = ["face-api's"] + [f"margin {m:+.2f}" for m in MARGINS] + [f"top {t:+.2f}" for t in TOP_EXTENSIONS]
    totals = {box: np.zeros(4) for box in boxes}
    faces = {}
    matched = 0
    for record in records:
        image = decoded[record["image"]]
        if record["image"] not in faces:
            faces[record["image"]] = detector.detect(image)
        best = max(faces[record["image"]], key=lambda f: iou(f.box, record["box"]), default=None)
        if best is None or iou(best.box, record["box"]) < 0.4:
            print(f"{Path(record['image']).name}: face-api's face at {np.round(record['box'])} has no RetinaFace match")
            continue
        matched += 1
        x1, y1, x2, y2 = best.box
        for box in boxes:
            kind, _, amount = box.partition(" ")
            if kind == "margin":
                grow = float(amount) * max(x2 - x1, y2 - y1)
                crop_box = [x1 - grow, y1 - grow, x2 + grow, y2 + grow]
            elif kind == "top":
                crop_box = [x1, y1 - float(amount) * (y2 - y1), x2, y2]
            else:
                crop_box = record["box"]
            face = facet.Face(crop_box, best.score, best.landmarks.tolist())
            expression = np.array(list(attributes.expression(image, face).values()))
            age, gender, _ = attributes.age_gender(image, face)
            want = np.array(record["expression"])
            totals[box] += [np.abs(expression - want).sum() / 2, expression.argmax() == want.argmax(),
                            abs(age - record["age"]), gender == record["gender"]]
    print(f"{matched} faces (face-api's {len(records)}, matched to RetinaFace's)")
    print("box                   expression TV   top agrees   |age difference|   gender agrees")
    for box in boxes:
        tv, top, age, gender = totals[box]
        print(f"{box:20}  {tv / matched:13.3g}   {top:4.0f}/{matched:<5}  {age / matched:16.3g}   {gender:4.0f}/{matched}")


if __name__ == "__main__":
    sys.exit(main())
