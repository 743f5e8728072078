"""generators.detector_check: inserted objects scored by a detector (a fake one here; YOLO in integration)."""

import numpy as np
import pytest

from roadsynth.detectors.base import Prediction
from roadsynth.datasets.records import Box, Provenance
from roadsynth.generators.base import Insertion, Rejection
from roadsynth.generators.detector_check import DetectorCheck
from roadsynth.geometry.records import Placement


def ins(cat: str, box: Box) -> Insertion:
    p = Placement(cat, box, (box.x + box.w / 2, box.y2))
    return Insertion(p, box, np.ones((int(box.h), int(box.w)), bool), (int(box.x), int(box.y), int(box.x2), int(box.y2)),
                     Provenance(method="paste", source="test", seed=0), {"mean_change_in_mask": 40.0})


def test_scores_same_class_overlapping_detections_and_keeps_every_object():
    frames = [np.zeros((100, 200, 3), np.uint8), np.zeros((100, 200, 3), np.uint8)]
    calls = []

    def detect(images):
        calls.append(len(images))
        return [[Prediction(0, 1, Box(10, 10, 40, 40), 0.9, "deer"),  # right class, right place
                 Prediction(0, 2, Box(100, 10, 40, 40), 0.95, "cow"),  # wrong class where the second object is
                 Prediction(0, 1, Box(102, 12, 40, 40), 0.2, "deer")]]  # right class, low score

    check = DetectorCheck(detect, ["deer", "cow", "car"], ["deer", "Horse"], class_map={"Horse": "cow"}, min_score=0.25)
    results = [[ins("deer", Box(12, 12, 38, 38)), ins("deer", Box(100, 10, 40, 40)),
                Rejection(Placement("deer", Box(0, 0, 5, 5), (2, 5)), "too small")], []]
    [[a, b, rej], empty] = check.score(frames, results)
    assert calls == [1]  # frames without insertions are not sent to the detector
    assert a.scores["detector_found"] and a.scores["detector_score"] == 0.9 and a.scores["detector_iou"] > 0.8
    assert not b.scores["detector_found"] and b.scores["detector_score"] == 0.2  # the cow does not count for a deer
    assert a.scores["mean_change_in_mask"] == 40.0 and isinstance(rej, Rejection) and empty == []
    # class_map: an inserted horse is checked against the detector's `cow` class.
    [[h]] = check.score(frames[:1], [[ins("horse", Box(100, 10, 40, 40))]])
    assert h.scores["detector_class"] == "cow" and h.scores["detector_found"]


def test_a_category_the_detector_cannot_see_is_an_error_naming_the_weights():
    with pytest.raises(ValueError, match=r"best.pt: the detector has no class for \['deer'\]"):
        DetectorCheck(lambda ims: [], ["car", "truck"], ["deer"], source="best.pt")
    with pytest.raises(ValueError, match=r"`min_iou` must be in \[0, 1\], but got 1.5"):
        DetectorCheck(lambda ims: [], ["deer"], ["deer"], min_iou=1.5)
