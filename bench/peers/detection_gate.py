"""Issue 19's accuracy gate for a quantised detector against its fp32 reference, on one image.

Every fp32 face with score >= 0.5 must be found: a face of the candidate with IoU >= 0.9, score
within 0.03 and each of the five landmarks within 1.5% of the box side (the mean of the fp32 box's
width and height). No candidate face >= 0.6 may lie where fp32 has no face (IoU < 0.5 with every
fp32 face >= 0.5). Faces are (boxes [F, 4] x1 y1 x2 y2, scores [F], landmarks [F, 5, 2]) in the
same pixels. The candidate should be decoded at CANDIDATE_THRESHOLD, so that a face whose score
moved down by less than the tolerance still counts as found.
"""

import numpy as np

REFERENCE_THRESHOLD = 0.5
SCORE_TOLERANCE = 0.03
CANDIDATE_THRESHOLD = REFERENCE_THRESHOLD - SCORE_TOLERANCE
MATCH_IOU = 0.9
LANDMARK_TOLERANCE = 0.015  # of the box side
EXTRA_SCORE = 0.6
EXTRA_IOU = 0.5  # below this with every fp32 face, a candidate face is where fp32 has none


def iou(box, boxes):
    """IoU of one box with each of boxes (continuous pixel coordinates, no "+1")."""
    top_left = np.maximum(box[:2], boxes[:, :2])
    bottom_right = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / (area + areas - inter)


def compare(reference, candidate):
    """{"faces", "found", "missed", "extra", "worst_score", "worst_landmark", "pass"} for one image.

    found: fp32 faces matched at IoU >= 0.9 (greedy, best fp32 face first, each candidate face used
    once); missed: the rest. worst_score / worst_landmark: the largest score difference and landmark
    distance (fraction of the box side) over the found faces. pass: nothing missed, nothing extra,
    and both worst figures within tolerance.
    """
    ref_boxes, ref_scores, ref_points = (np.asarray(a, dtype=np.float64) for a in reference)
    boxes, scores, points = (np.asarray(a, dtype=np.float64) for a in candidate)
    keep = ref_scores >= REFERENCE_THRESHOLD
    ref_boxes, ref_scores, ref_points = ref_boxes[keep], ref_scores[keep], ref_points[keep]
    unused = np.ones(len(scores), dtype=bool)
    found, worst_score, worst_landmark = 0, 0.0, 0.0
    for box, score, landmarks in zip(ref_boxes, ref_scores, ref_points):
        if not unused.any():
            break
        overlaps = np.where(unused, iou(box, boxes), -1.0)
        best = int(np.argmax(overlaps))
        if overlaps[best] < MATCH_IOU:
            continue
        unused[best] = False
        found += 1
        side = np.mean(box[2:] - box[:2])
        worst_score = max(worst_score, abs(scores[best] - score))
        worst_landmark = max(worst_landmark, np.linalg.norm(points[best] - landmarks, axis=1).max() / side)
    extra = sum(1 for box, score in zip(boxes, scores)
                if score >= EXTRA_SCORE and (len(ref_boxes) == 0 or iou(box, ref_boxes).max() < EXTRA_IOU))
    missed = len(ref_scores) - found
    return {"faces": len(ref_scores), "found": found, "missed": missed, "extra": extra,
            "worst_score": float(worst_score), "worst_landmark": float(worst_landmark),
            "pass": missed == 0 and extra == 0 and worst_score <= SCORE_TOLERANCE and worst_landmark <= LANDMARK_TOLERANCE}
