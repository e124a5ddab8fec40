"""Hand-computed cases for detection_gate.compare (issue 19's accuracy gate).

    /usr/bin/python3 -m unittest bench/peers/test_detection_gate.py
"""

import sys
import unittest
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import detection_gate  # noqa: E402  (needs this directory on the path)

BOX = [0.0, 0.0, 100.0, 100.0]  # side 100: landmark errors read directly as percent
POINTS = [[30.0, 40.0], [70.0, 40.0], [50.0, 60.0], [35.0, 80.0], [65.0, 80.0]]


def faces(*entries):
    """(boxes, scores, landmarks) from (box, score, points) triples."""
    return (np.array([e[0] for e in entries]).reshape(-1, 4), np.array([e[1] for e in entries]),
            np.array([e[2] for e in entries]).reshape(-1, 5, 2))


def shifted(points, dx, dy):
    return [[x + dx, y + dy] for x, y in points]


class CompareTest(unittest.TestCase):
    def test_identical_faces_pass(self):
        result = detection_gate.compare(faces((BOX, 0.9, POINTS)), faces((BOX, 0.9, POINTS)))
        self.assertEqual((result["faces"], result["found"], result["missed"], result["extra"]), (1, 1, 0, 0))
        self.assertTrue(result["pass"])

    def test_iou_threshold(self):
        # Shifted right by 5: intersection 95 x 100, union 105 x 100, IoU 0.905 >= 0.9: found.
        near = detection_gate.compare(faces((BOX, 0.9, POINTS)), faces(([5, 0, 105, 100], 0.9, POINTS)))
        self.assertEqual(near["found"], 1)
        # Shifted by 10: IoU 90 / 110 = 0.818: missed (and not extra: it overlaps the fp32 face).
        far = detection_gate.compare(faces((BOX, 0.9, POINTS)), faces(([10, 0, 110, 100], 0.9, POINTS)))
        self.assertEqual((far["found"], far["missed"], far["extra"]), (0, 1, 0))
        self.assertFalse(far["pass"])

    def test_score_tolerance(self):
        within = detection_gate.compare(faces((BOX, 0.9, POINTS)), faces((BOX, 0.875, POINTS)))
        self.assertAlmostEqual(within["worst_score"], 0.025)
        self.assertTrue(within["pass"])
        beyond = detection_gate.compare(faces((BOX, 0.9, POINTS)), faces((BOX, 0.86, POINTS)))
        self.assertAlmostEqual(beyond["worst_score"], 0.04)
        self.assertEqual(beyond["found"], 1)
        self.assertFalse(beyond["pass"])

    def test_landmark_tolerance_is_euclidean_over_box_side(self):
        # One point off by (0.6, 0.8): 1.0 px of a 100 px box = 1%.
        within = detection_gate.compare(faces((BOX, 0.9, POINTS)),
                                        faces((BOX, 0.9, POINTS[:4] + shifted(POINTS[4:], 0.6, 0.8))))
        self.assertAlmostEqual(within["worst_landmark"], 0.01)
        self.assertTrue(within["pass"])
        # (1.2, 1.6): 2.0 px = 2% > 1.5%.
        beyond = detection_gate.compare(faces((BOX, 0.9, POINTS)),
                                        faces((BOX, 0.9, shifted(POINTS[:1], 1.2, 1.6) + POINTS[1:])))
        self.assertAlmostEqual(beyond["worst_landmark"], 0.02)
        self.assertFalse(beyond["pass"])

    def test_extra_faces_from_0_6_only(self):
        elsewhere = [300, 300, 400, 400]
        extra = detection_gate.compare(faces((BOX, 0.9, POINTS)), faces((BOX, 0.9, POINTS), (elsewhere, 0.65, POINTS)))
        self.assertEqual(extra["extra"], 1)
        self.assertFalse(extra["pass"])
        weak = detection_gate.compare(faces((BOX, 0.9, POINTS)), faces((BOX, 0.9, POINTS), (elsewhere, 0.55, POINTS)))
        self.assertEqual(weak["extra"], 0)
        self.assertTrue(weak["pass"])

    def test_reference_faces_below_0_5_are_not_required(self):
        result = detection_gate.compare(faces((BOX, 0.45, POINTS)), faces())
        self.assertEqual((result["faces"], result["missed"]), (0, 0))
        self.assertTrue(result["pass"])

    def test_each_candidate_matches_one_reference_face(self):
        # Two fp32 faces on the same spot, one candidate: one found, one missed.
        result = detection_gate.compare(faces((BOX, 0.9, POINTS), (BOX, 0.8, POINTS)), faces((BOX, 0.9, POINTS)))
        self.assertEqual((result["found"], result["missed"]), (1, 1))


if __name__ == "__main__":
    unittest.main()
