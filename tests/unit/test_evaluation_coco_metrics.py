"""COCO metrics against hand-computed cases, and faster-coco-eval against pycocotools."""

import math

import pytest

from roadsynth.datasets.records import Annotation, Box, Category, Dataset, ImageRecord
from roadsynth.evaluation.coco_metrics import evaluate_detections
from tests.unit.test_evaluation_stats import synthetic

CATS = (Category(1, "deer"), Category(4, "cow"), Category(9, "ambulance"))


def gt(*anns: Annotation) -> Dataset:
    return Dataset((ImageRecord(1, "a.jpg", 200, 200), ImageRecord(2, "b.jpg", 200, 200)), anns, CATS)


def det(image_id, cat, box, score):
    return {"image_id": image_id, "category_id": cat, "bbox": list(box), "score": score}


@pytest.mark.parametrize("backend", ["faster", "pycocotools"])
def test_perfect_detections_score_one_and_absent_class_is_nan(backend):
    g = gt(Annotation(1, 1, 1, Box(10, 10, 50, 40)), Annotation(2, 2, 4, Box(100, 100, 60, 60)))
    m = evaluate_detections(g, [det(1, 1, (10, 10, 50, 40), 0.9), det(2, 4, (100, 100, 60, 60), 0.8)], backend)
    assert m.stats["mAP50_95"] == pytest.approx(1.0) and m.stats["mAP50"] == pytest.approx(1.0)
    assert math.isnan(m.per_class["ambulance"]["AP50_95"]) and m.per_class["ambulance"]["n_gt"] == 0


@pytest.mark.parametrize("backend", ["faster", "pycocotools"])
def test_iou_0_6_counts_at_three_of_ten_thresholds(backend):
    # Detection covers the top 60 % of the GT box: IoU = 0.6 -> true positive at IoU 0.50, 0.55, 0.60 only.
    g = gt(Annotation(1, 1, 1, Box(0, 0, 100, 100)))
    m = evaluate_detections(g, [det(1, 1, (0, 0, 100, 60), 0.9)], backend)
    assert m.stats["mAP50"] == pytest.approx(1.0)
    assert m.stats["mAP75"] == pytest.approx(0.0)
    assert m.stats["mAP50_95"] == pytest.approx(0.3)


@pytest.mark.parametrize("backend", ["faster", "pycocotools"])
def test_false_positive_ranked_first(backend):
    """Two GT deer; detections by score: FP, TP, TP. Precision at the two TPs is 1/2 and 2/3; the
    envelope is 2/3 for recall in (0, 1], so all 101 recall points get 2/3 -> AP = 2/3 at every IoU."""
    g = gt(Annotation(1, 1, 1, Box(0, 0, 40, 40)), Annotation(2, 2, 1, Box(50, 50, 40, 40)))
    dets = [det(1, 1, (150, 150, 30, 30), 0.95), det(1, 1, (0, 0, 40, 40), 0.9), det(2, 1, (50, 50, 40, 40), 0.8)]
    m = evaluate_detections(g, dets, backend)
    assert m.stats["mAP50_95"] == pytest.approx(2 / 3)
    assert m.per_class["deer"]["AP50"] == pytest.approx(2 / 3)


def test_empty_results_are_zero_not_a_crash():
    m = evaluate_detections(gt(Annotation(1, 1, 1, Box(0, 0, 40, 40))), [])
    assert m.stats["mAP50_95"] == 0.0 and m.per_class["deer"]["AP50_95"] == 0.0
    assert math.isnan(m.per_class["cow"]["AP50_95"])


def test_unknown_category_in_results_is_an_error():
    with pytest.raises(ValueError, match=r"category ids \[5\]"):
        evaluate_detections(gt(Annotation(1, 1, 1, Box(0, 0, 40, 40))), [det(1, 5, (0, 0, 4, 4), 0.5)])


def test_faster_coco_eval_matches_pycocotools_on_a_synthetic_set():
    g, dets = synthetic(300, 5, 0.5)
    a = evaluate_detections(g, dets, "faster")
    b = evaluate_detections(g, dets, "pycocotools")
    for k in a.stats:
        assert a.stats[k] == pytest.approx(b.stats[k], abs=1e-9, nan_ok=True), k
    for c in a.per_class:
        assert a.per_class[c]["AP50_95"] == pytest.approx(b.per_class[c]["AP50_95"], abs=1e-9)
