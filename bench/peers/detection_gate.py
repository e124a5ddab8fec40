"""Issue 19's accuracy gate for a quantised detector against its fp32 reference, on one image.

Every fp32 face with score >= 0.5 must be found: a face of the candidate with IoU >= 0.9, score
within 0.03 and each of the five landmarks within 1.5% of the box side (the fp32 box's longer
side, as tests/detection_gate.hpp reads "the box side": one definition for both gates). No candidate face >= 0.6 may lie where fp32 has no face (IoU < 0.5 with every
fp32 face >= 0.5). Faces are (boxes [F, 4] x1 y1 x2 y2, scores [F], landmarks [F, 5, 2]) in the
same pixels. The candidate should be decoded at CANDIDATE_THRESHOLD, so that a face whose score
moved down by less than the tolerance still counts as found.

Ties, as in tests/detection_gate.hpp: where fp32 itself has two overlapping candidates for one face
(NMS keeps one) whose scores differ by less than the score tolerance, a detector allowed to move
scores by that much may keep the other, whose box and landmarks are as valid but up to several
percent of the box away (sample.jpg has such a pair: 0.84779 and 0.84724, noses 1.9 px apart on a
43 px wide face, which facet's bf16 file on AVX-512 flips). So an fp32 face not met within every
limit also counts as found when a candidate face meets the limits against such a tied fp32
candidate: one of the fp32 faces before NMS (decoded with an NMS IoU of 1) scoring within the
tolerance of the kept face and overlapping it with IoU >= 0.5.
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


def match(box, score, landmarks, candidate, unused):
    """(index, score difference, landmark distance over the box side) of the unused candidate face
    overlapping the fp32 face most, if at IoU >= 0.9; else None."""
    boxes, scores, points = candidate
    overlaps = np.where(unused, iou(box, boxes), -1.0)
    best = int(np.argmax(overlaps))
    if overlaps[best] < MATCH_IOU:
        return None
    side = np.max(box[2:] - box[:2])
    return best, abs(scores[best] - score), np.linalg.norm(points[best] - landmarks, axis=1).max() / side


def within(found):
    return found is not None and found[1] <= SCORE_TOLERANCE and found[2] <= LANDMARK_TOLERANCE


def compare(reference, candidate, reference_candidates=None):
    """{"faces", "found", "tied", "missed", "extra", "worst_score", "worst_landmark", "pass"} for one image.

    found: fp32 faces matched at IoU >= 0.9 (greedy, best fp32 face first, each candidate face used
    once), or through a tie (module docstring) when reference_candidates, the fp32 faces before NMS,
    are given; tied: how many of them through a tie; missed: the rest. worst_score / worst_landmark:
    the largest score difference and landmark distance (fraction of the box side) over the found
    faces. pass: nothing missed, nothing extra, and both worst figures within tolerance.
    """
    ref_boxes, ref_scores, ref_points = (np.asarray(a, dtype=np.float64) for a in reference)
    candidate = tuple(np.asarray(a, dtype=np.float64) for a in candidate)
    boxes, scores, _ = candidate
    ties = tuple(np.asarray(a, dtype=np.float64) for a in reference_candidates) if reference_candidates else None
    keep = ref_scores >= REFERENCE_THRESHOLD
    ref_boxes, ref_scores, ref_points = ref_boxes[keep], ref_scores[keep], ref_points[keep]
    unused = np.ones(len(scores), dtype=bool)
    found, tied, worst_score, worst_landmark = 0, 0, 0.0, 0.0
    for box, score, landmarks in zip(ref_boxes, ref_scores, ref_points):
        if not unused.any():
            break
        best = match(box, score, landmarks, candidate, unused)
        if not within(best) and ties is not None:
            tie_boxes, tie_scores, tie_points = ties
            for tie in np.flatnonzero((np.abs(tie_scores - score) < SCORE_TOLERANCE) & (iou(box, tie_boxes) >= EXTRA_IOU)):
                through_tie = match(tie_boxes[tie], tie_scores[tie], tie_points[tie], candidate, unused)
                if within(through_tie):
                    best = through_tie
                    tied += 1
                    break
        if best is None:
            continue
        unused[best[0]] = False
        found += 1
        worst_score = max(worst_score, best[1])
        worst_landmark = max(worst_landmark, best[2])
    extra = sum(1 for box, score in zip(boxes, scores)
                if score >= EXTRA_SCORE and (len(ref_boxes) == 0 or iou(box, ref_boxes).max() < EXTRA_IOU))
    missed = len(ref_scores) - found
    return {"faces": len(ref_scores), "found": found, "tied": tied, "missed": missed, "extra": extra,
            "worst_score": float(worst_score), "worst_landmark": float(worst_landmark),
            "pass": missed == 0 and extra == 0 and worst_score <= SCORE_TOLERANCE and worst_landmark <= LANDMARK_TOLERANCE}
