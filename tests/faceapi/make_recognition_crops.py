#!/usr/bin/env python3
"""Makes the face crops of tests/faceapi/recognition (committed; rerun only to change them) for the
face_recognition parity test (make_recognition_reference.mjs computes face-api's descriptors of them):

- NAME.png, 150x150: the square of the best face's box's longer side around its centre (black outside
  the image), resized by OpenCV's area filter: the network's input as it is;
- NAME_box.png: the box itself, floored to whole pixels (less its last column when that makes the
  difference of its sides odd, so that face-api's padding has a larger half, which it puts after the
  image), not resized: face-api pads it to a square and resizes it to 150x150 (bilinear) before the
  network, as facet::FaceRecognizer does.
Any face-like crop serves: the test feeds the same pixels to face-api and to facet.

    tests/faceapi/make_recognition_crops.py build/bin/facet-detect ../shared/upstream/images

Needs OpenCV's Python module (python3-opencv) to read the JPEGs and write the PNGs.
"""
import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

SIDE = 150
# (image, crop name, face index in facet-detect's order, whether to also write the unresized box)
CROPS = [
    ("portrait_angelina_jolie.jpg", "angelina_jolie", 0, False),
    ("portrait_kate_siegel.jpg", "kate_siegel", 0, True),
    ("portrait_paul_rudd.jpg", "paul_rudd", 0, False),
    ("multiface.jpg", "multiface_0", 0, False),
    ("selfie_group.jpg", "selfie_group_0", 0, False),
    ("selfie_group.jpg", "selfie_group_5", 5, True),  # a 55 px face: upscaled to 150
]


def main(detect, images):
    out = Path(__file__).resolve().parent / "recognition"
    out.mkdir(exist_ok=True)
    for image_name, name, face, with_box in CROPS:
        path = Path(images) / image_name
        x1, y1, x2, y2 = json.loads(subprocess.run([detect, str(path)], check=True, capture_output=True,
                                                   text=True).stdout)["faces"][face]["box"]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        side = round(max(x2 - x1, y2 - y1))
        x, y = round((x1 + x2 - side) / 2), round((y1 + y2 - side) / 2)
        padded = cv2.copyMakeBorder(image, side, side, side, side, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        square = padded[y + side:y + 2 * side, x + side:x + 2 * side]
        cv2.imwrite(str(out / f"{name}.png"), cv2.resize(square, (SIDE, SIDE), interpolation=cv2.INTER_AREA))
        if with_box:
            left, top, right, bottom = math.floor(max(x1, 0)), math.floor(max(y1, 0)), math.floor(x2), math.floor(y2)
            if (right - left - bottom + top) % 2 == 0:
                right -= 1
            cv2.imwrite(str(out / f"{name}_box.png"), np.ascontiguousarray(image[top:bottom, left:right]))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: make_recognition_crops.py FACET_DETECT IMAGES_DIR")
    main(sys.argv[1], sys.argv[2])
