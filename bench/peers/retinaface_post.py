"""RetinaFace input, priors, decoding and NMS in NumPy, as the upstream evaluation does (MODELS.md section 1).

run.py uses it for checks, not for timing: that the official checkpoint, read by
retinaface_torch.py, reproduces the golden detections (golden/retinaface_mnetv2_crowd.json), that
PyTorch and facet find the same number of faces on the benchmark frame, and the detections of the
quantised models against fp32. make_qdq.py feeds its calibration images through network_input.
"""

import math

import cv2
import numpy as np

BGR_MEAN = np.array([104, 117, 123], dtype=np.float32)

STEPS = (8, 16, 32)
MIN_SIZES = ((16, 32), (64, 128), (256, 512))  # the 2019 and official mnet0.25 checkpoints
VARIANCES = (0.1, 0.2)

# The upstream evaluation's post-processing (the golden JSON files were made with it).
EVAL_THRESHOLD = 0.02
EVAL_TOP_K = 5000
EVAL_NMS_IOU = 0.4
EVAL_KEEP = 750


def network_input(path, max_side=0):
    """The network input for an image file: BGR float minus the mean, NCHW (MODELS.md section 1).

    With max_side > 0 the image is first shrunk so its longer side is at most max_side, as
    facet-detect does by default (--max-side 640): the same rounding of the size, and bilinear
    resampling with half-pixel centres on the float image (cv2.INTER_LINEAR, which matches facet's
    resize_bilinear).
    """
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # BGR
    if image is None:
        raise FileNotFoundError(f"cannot read {path}")
    image = image.astype(np.float32)
    height, width = image.shape[:2]
    shrink = min(1.0, max_side / max(width, height)) if max_side > 0 else 1.0
    size = (max(1, int(width * shrink + 0.5)), max(1, int(height * shrink + 0.5)))  # std::lround
    if size != (width, height):
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    chw = (image - BGR_MEAN).transpose(2, 0, 1)
    return np.ascontiguousarray(chw[None])


def priors(height, width):
    """[P, 4] (cx, cy, w, h) relative to the image, in the network's output order."""
    rows = []
    for step, sizes in zip(STEPS, MIN_SIZES):
        for i in range(math.ceil(height / step)):
            for j in range(math.ceil(width / step)):
                for m in sizes:
                    rows.append(((j + 0.5) * step / width, (i + 0.5) * step / height, m / width, m / height))
    return np.array(rows, dtype=np.float32)


def decode(loc, landms, prior, height, width):
    """Boxes [P, 4] (x1, y1, x2, y2) and landmarks [P, 5, 2] in pixels."""
    centre = prior[:, :2] + loc[:, :2] * VARIANCES[0] * prior[:, 2:]
    size = prior[:, 2:] * np.exp(loc[:, 2:] * VARIANCES[1])
    scale = np.array([width, height], dtype=np.float32)
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1) * np.tile(scale, 2)
    points = prior[:, None, :2] + landms.reshape(-1, 5, 2) * VARIANCES[0] * prior[:, None, 2:]
    return boxes, points * scale


def nms(boxes, iou_threshold):
    """Indices kept by greedy NMS of boxes already sorted best first; areas use the "+1" convention."""
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    order = np.arange(len(boxes))
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        top_left = np.maximum(boxes[best, :2], boxes[rest, :2])
        bottom_right = np.minimum(boxes[best, 2:], boxes[rest, 2:])
        inter = np.prod(np.maximum(0, bottom_right - top_left + 1), axis=1)
        order = rest[inter / (area[best] + area[rest] - inter) <= iou_threshold]
    return np.array(keep, dtype=np.int64)


def detect(loc, conf, landms, height, width, threshold=EVAL_THRESHOLD, top_k=EVAL_TOP_K, iou=EVAL_NMS_IOU,
           keep=EVAL_KEEP):
    """Faces from one image's raw outputs: (boxes [F, 4], scores [F], landmarks [F, 5, 2]), best first."""
    boxes, points = decode(loc, landms, priors(height, width), height, width)
    candidates = np.where(conf > threshold)[0]
    candidates = candidates[np.argsort(-conf[candidates], kind="stable")][:top_k]
    kept = candidates[nms(boxes[candidates], iou)][:keep]
    return boxes[kept], conf[kept], points[kept]
