"""COCO metrics against hand-computed cases, faster-coco-eval against pycocotools, per-image re-weighting."""

import math

import numpy as np
import pytest

from roadsynth.datasets.records import Annotation, Box, Category, Dataset, ImageRecord
from roadsynth.detectors.base import Prediction
from roadsynth.evaluation.coco_metrics import STAT_NAMES, PerImageEval, evaluate_detections, predictions_to_coco_results

CATS = (Category(1, "deer"), Category(4, "cow"), Category(9, "ambulance"))
BACKENDS = ["faster", "pycocotools"]


def gt(*anns: Annotation, n_images: int = 2) -> Dataset:
    images = tuple(ImageRecord(i, f"{i}.jpg", 200, 200) for i in range(1, n_images + 1))
    return Dataset(images, anns, CATS)


def det(image_id, cat, box, score):
    return {"image_id": image_id, "category_id": cat, "bbox": list(box), "score": score}


def synthetic(n_images: int, seed: int, quality: float) -> tuple[Dataset, list[dict]]:
    """GT boxes of all COCO sizes on 3 categories (non-contiguous ids 1, 3, 7; ~2 % iscrowd) and detections:
    jittered GT (localisation improves with `quality`), 10 % wrong class, 15 % missed, random false positives."""
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for i in range(1, n_images + 1):
        images.append(ImageRecord(i, f"{i}.jpg", 640, 480))
        for _ in range(int(rng.integers(1, 5))):
            cat = int(rng.choice([1, 3, 7]))
            x, y, w, h = rng.uniform(0, 500), rng.uniform(0, 380), rng.uniform(20, 140), rng.uniform(20, 100)
            anns.append(Annotation(len(anns) + 1, i, cat, Box(x, y, w, h), iscrowd=int(rng.random() < 0.02)))
            if rng.random() < 0.85:
                j = rng.normal(0, (1 - quality) * 0.25, 4) * [w, h, w, h]
                dcat = cat if rng.random() > 0.1 else int(rng.choice([1, 3, 7]))
                dets.append({"image_id": i, "category_id": dcat, "bbox": [x + j[0], y + j[1], w + j[2], h + j[3]],
                             "score": float(np.clip(rng.normal(0.3 + 0.5 * quality, 0.2), 0.01, 1))})
        for _ in range(int(rng.integers(0, 3))):  # false positives
            dets.append({"image_id": i, "category_id": int(rng.choice([1, 3, 7])),
                         "bbox": [rng.uniform(0, 500), rng.uniform(0, 380), 40, 40], "score": float(rng.uniform(0, 0.6))})
    return Dataset(tuple(images), tuple(anns), (Category(1, "a"), Category(3, "b"), Category(7, "c"))), dets


@pytest.mark.parametrize("backend", BACKENDS)
def test_perfect_detections_score_one_and_absent_things_are_nan(backend):
    # Both boxes are "medium" (32² <= area <= 96²): no small or large objects exist.
    g = gt(Annotation(1, 1, 1, Box(10, 10, 50, 40)), Annotation(2, 2, 4, Box(100, 100, 60, 60)))
    m = evaluate_detections(g, [det(1, 1, (10, 10, 50, 40), 0.9), det(2, 4, (100, 100, 60, 60), 0.8)], backend)
    for k in ("mAP50_95", "mAP50", "mAP75", "AP_medium", "AR1", "AR10", "AR100", "AR_medium"):
        assert m.stats[k] == pytest.approx(1.0), k
    for k in ("AP_small", "AP_large", "AR_small", "AR_large"):
        assert math.isnan(m.stats[k]), k
    assert m.per_class["deer"] == {"category_id": 1, "AP50_95": pytest.approx(1.0), "AP50": pytest.approx(1.0),
                                   "n_gt": 1}
    assert math.isnan(m.per_class["ambulance"]["AP50_95"]) and m.per_class["ambulance"]["n_gt"] == 0
    assert m.n_images == 2 and m.n_detections == 2 and m.note == ""


@pytest.mark.parametrize("backend", BACKENDS)
def test_iou_0_6_counts_at_three_of_ten_thresholds(backend):
    """GT 100x100 at the origin, detection = its top 100x60: IoU = 6000 / 10000 = 0.6.

    COCO counts a match when IoU >= t, for t in {0.50, 0.55, ..., 0.95}: true positive at 0.50, 0.55 and
    0.60 (AP 1 each), false positive (AP 0) at the other 7. AP50 = 1, AP75 = 0, AP50-95 = 3/10 = 0.3
    (not 0.1: the threshold equal to the IoU counts, and 0.6 == np.linspace(.5, .95, 10)[2] exactly).
    """
    g = gt(Annotation(1, 1, 1, Box(0, 0, 100, 100)))
    m = evaluate_detections(g, [det(1, 1, (0, 0, 100, 60), 0.9)], backend)
    assert m.stats["mAP50"] == pytest.approx(1.0)
    assert m.stats["mAP75"] == pytest.approx(0.0)
    assert m.stats["mAP50_95"] == pytest.approx(0.3)
    assert m.stats["AR100"] == pytest.approx(0.3)  # recall is 1 at 3 of 10 thresholds too


@pytest.mark.parametrize("backend", BACKENDS)
def test_false_positive_ranked_above_true_positive_in_two_categories(backend):
    """All true positives are exact boxes, all false positives far from any GT, so AP is the same at every IoU.

    deer: 2 GT; detections by score FP, TP, TP -> precision 0, 1/2, 2/3 at recall 0, 1/2, 1. The precision
      envelope (max precision at recall >= r) is 2/3 for every r in [0, 1] -> all 101 points 2/3, AP = 2/3.
    cow: 3 GT, one never detected; detections TP, FP, TP -> precision 1, 1/2, 2/3 at recall 1/3, 1/3, 2/3.
      Envelope: 1 for r <= 1/3 (r = 0.00..0.33: 34 points), 2/3 for 1/3 < r <= 2/3 (0.34..0.66: 33 points),
      0 above 2/3 (34 points). AP = (34 * 1 + 33 * 2/3) / 101 = 56 / 101.
    mAP = (2/3 + 56/101) / 2; ambulance has no GT and does not count.
    """
    g = gt(Annotation(1, 1, 1, Box(0, 0, 40, 40)), Annotation(2, 2, 1, Box(50, 50, 40, 40)),
           Annotation(3, 1, 4, Box(100, 0, 50, 50)), Annotation(4, 2, 4, Box(100, 100, 50, 50)),
           Annotation(5, 2, 4, Box(0, 150, 40, 40)))
    dets = [det(1, 1, (150, 150, 30, 30), 0.95), det(1, 1, (0, 0, 40, 40), 0.9), det(2, 1, (50, 50, 40, 40), 0.8),
            det(1, 4, (100, 0, 50, 50), 0.9), det(1, 4, (0, 100, 30, 30), 0.8), det(2, 4, (100, 100, 50, 50), 0.7)]
    m = evaluate_detections(g, dets, backend)
    assert m.per_class["deer"]["AP50_95"] == pytest.approx(2 / 3) and m.per_class["deer"]["AP50"] == pytest.approx(2 / 3)
    assert m.per_class["cow"]["AP50_95"] == pytest.approx(56 / 101) and m.per_class["cow"]["AP50"] == pytest.approx(56 / 101)
    assert m.stats["mAP50_95"] == pytest.approx((2 / 3 + 56 / 101) / 2)
    assert m.stats["mAP75"] == pytest.approx((2 / 3 + 56 / 101) / 2)
    assert m.stats["AR100"] == pytest.approx((1 + 2 / 3) / 2)


def test_empty_results_are_zero_where_ground_truth_exists_and_say_so():
    m = evaluate_detections(gt(Annotation(1, 1, 1, Box(0, 0, 40, 40))), [])  # one medium deer
    assert m.stats["mAP50_95"] == 0.0 and m.stats["AR100"] == 0.0 and m.stats["AP_medium"] == 0.0
    assert math.isnan(m.stats["AP_small"]) and math.isnan(m.stats["AR_large"])
    assert m.per_class["deer"]["AP50_95"] == 0.0 and math.isnan(m.per_class["cow"]["AP50_95"])
    assert "no detections" in m.note and m.summary()["note"] == m.note and m.n_detections == 0
    nothing = evaluate_detections(gt(), [])
    assert all(math.isnan(nothing.stats[k]) for k in STAT_NAMES)


@pytest.mark.parametrize("backend", BACKENDS)
def test_category_without_ground_truth_is_nan_and_not_averaged(backend):
    # Cow has no GT but gets a (necessarily false) detection; averaging it as 0 would give mAP 0.5.
    g = gt(Annotation(1, 1, 1, Box(0, 0, 40, 40)))
    m = evaluate_detections(g, [det(1, 1, (0, 0, 40, 40), 0.9), det(2, 4, (10, 10, 40, 40), 0.95)], backend)
    assert math.isnan(m.per_class["cow"]["AP50_95"]) and math.isnan(m.per_class["cow"]["AP50"])
    assert m.stats["mAP50_95"] == pytest.approx(1.0) and m.stats["mAP50"] == pytest.approx(1.0)


def test_predictions_and_result_dicts_score_the_same():
    g, dets = synthetic(30, 4, 0.6)
    preds = [Prediction(d["image_id"], d["category_id"], Box(*d["bbox"]), d["score"]) for d in dets]
    as_dicts = predictions_to_coco_results(preds)
    assert set(as_dicts[0]) == {"image_id", "category_id", "bbox", "score"} and isinstance(as_dicts[0]["bbox"], list)
    assert evaluate_detections(g, preds).stats == evaluate_detections(g, as_dicts).stats


@pytest.mark.parametrize("backend", BACKENDS)
def test_subset_of_image_ids_equals_evaluating_the_filtered_dataset(backend):
    g, dets = synthetic(80, 5, 0.5)
    keep = [im.id for im in g.images if im.id % 4 != 1]
    sub = Dataset(tuple(im for im in g.images if im.id in keep),
                  tuple(a for a in g.annotations if a.image_id in keep), g.categories)
    a = evaluate_detections(g, dets, backend, image_ids=keep)
    b = evaluate_detections(sub, [d for d in dets if d["image_id"] in keep], backend)
    assert a.stats == pytest.approx(b.stats, nan_ok=True) and a.n_images == len(keep) == b.n_images
    assert a.per_class == b.per_class


def test_bad_results_get_clear_errors():
    g = gt(Annotation(1, 1, 1, Box(0, 0, 40, 40)))
    with pytest.raises(ValueError, match=r"category ids \[5\]"):
        evaluate_detections(g, [det(1, 5, (0, 0, 4, 4), 0.5)])
    with pytest.raises(ValueError, match=r"image id.*'000001'"):
        evaluate_detections(g, [det("000001", 1, (0, 0, 4, 4), 0.5)])
    with pytest.raises(ValueError, match="bad bbox"):
        evaluate_detections(g, [det(1, 1, (0, 0, float("nan"), 4), 0.5)])
    with pytest.raises(ValueError, match="`backend`"):
        evaluate_detections(g, [det(1, 1, (0, 0, 4, 4), 0.5)], backend="detectron")


@pytest.mark.parametrize("backend", BACKENDS)
def test_evaluation_prints_nothing(backend, capsys):
    g, dets = synthetic(20, 6, 0.5)
    evaluate_detections(g, dets, backend)
    assert capsys.readouterr().out == ""


def test_faster_coco_eval_matches_pycocotools_exactly_on_a_synthetic_set():
    g, dets = synthetic(300, 5, 0.5)
    assert len(g.annotations) > 600 and len(dets) > 600
    a = evaluate_detections(g, dets, "faster")
    b = evaluate_detections(g, dets, "pycocotools")
    assert all(0 < a.stats[k] < 1 for k in STAT_NAMES)  # a non-trivial case: every stat defined
    for k in STAT_NAMES:
        assert a.stats[k] == pytest.approx(b.stats[k], abs=1e-12), k
    for c in a.per_class:
        for key in ("AP50_95", "AP50", "n_gt"):
            assert a.per_class[c][key] == pytest.approx(b.per_class[c][key], abs=1e-12), (c, key)


def test_per_image_eval_reproduces_cocoeval_exactly():
    g, dets = synthetic(150, 0, 0.6)
    coco = evaluate_detections(g, dets, backend="pycocotools")
    ev = PerImageEval(g, dets)
    mine = ev.ap()
    assert mine["mAP50_95"] == pytest.approx(coco.stats["mAP50_95"], abs=1e-12)
    assert mine["mAP50"] == pytest.approx(coco.stats["mAP50"], abs=1e-12)
    assert ev.pr_curve(3).mean() == pytest.approx(coco.per_class["b"]["AP50"], abs=1e-12)


def direct_ap(ev: PerImageEval, weights: np.ndarray, category_ids=None) -> dict[str, float]:
    """`PerImageEval.ap` straight from COCO's definition: per class and IoU threshold, weighted tp and fp counts
    cumulated over every score-sorted detection, the precision envelope, the left search at each of the 101
    recall thresholds (the reference for tests/benchmarks/coco_eval_speed.py)."""
    thr, per_t = np.linspace(0.0, 1.00, 101), []
    for cat, ce in ev.categories.items():
        n, w = float((ce.npig * weights).sum()), weights[ce.image_index]
        if (category_ids is not None and cat not in category_ids) or n == 0:
            continue
        row = []
        for tp, fp in zip(np.cumsum(ce.tp * w, axis=1), np.cumsum(ce.fp * w, axis=1)):
            rc, pr = tp / n, tp / np.maximum(tp + fp, np.spacing(1))
            pr = np.maximum.accumulate(pr[::-1])[::-1]
            row.append(np.array([pr[i] if i < pr.size else 0.0 for i in np.searchsorted(rc, thr, side="left")]).mean())
        per_t.append(row)
    if not per_t:
        return {"mAP50_95": math.nan, "mAP50": math.nan}
    arr = np.array(per_t)
    return {"mAP50_95": float(arr.mean()), "mAP50": float(arr[:, 0].mean())}


def test_weighted_ap_is_cocos_definition_exactly_under_bootstrap_multiplicities():
    g, dets = synthetic(100, 1, 0.6)
    ev = PerImageEval(g, dets)
    # Crowd boxes make some detections ignored in some classes, not in others: both ways of counting are used.
    assert {ce.all_counted for ce in ev.categories.values()} == {True, False}
    rng = np.random.default_rng(0)
    for _ in range(20):
        w = np.bincount(rng.integers(0, 100, 100), minlength=100).astype(float)
        assert ev.ap(w) == direct_ap(ev, w)
        assert ev.ap(w, [3]) == direct_ap(ev, w, [3])
    assert 0 < ev.ap()["mAP50_95"] < 1 and ev.ap() == direct_ap(ev, np.ones(100))
    empty = PerImageEval(g, [])  # no detections: AP 0, not a crash
    assert empty.ap(w) == direct_ap(empty, w) == {"mAP50_95": 0.0, "mAP50": 0.0}


def test_per_image_weights_match_a_dataset_with_copied_images():
    g, dets = synthetic(40, 1, 0.5)
    w = np.zeros(40)
    w[:10] = 2  # the first 10 images twice, the rest not at all
    images = list(g.images[:10]) + [ImageRecord(100 + im.id, im.file_name, im.width, im.height) for im in g.images[:10]]
    anns = [a for a in g.annotations if a.image_id <= 10]
    anns += [Annotation(1000 + a.id, 100 + a.image_id, a.category_id, a.bbox, iscrowd=a.iscrowd) for a in anns]
    d = [r for r in dets if r["image_id"] <= 10]
    d += [{**r, "image_id": 100 + r["image_id"]} for r in d]
    explicit = evaluate_detections(Dataset(tuple(images), tuple(anns), g.categories), d, "pycocotools")
    # Not exact: tied scores between an image and its copy are ordered differently (COCO sorts by image id).
    assert PerImageEval(g, dets).ap(w)["mAP50_95"] == pytest.approx(explicit.stats["mAP50_95"], abs=0.01)


def test_per_image_eval_without_detections_is_zero_not_a_crash():
    g = gt(Annotation(1, 1, 1, Box(0, 0, 40, 40)))
    ev = PerImageEval(g, [])
    assert ev.ap() == {"mAP50_95": 0.0, "mAP50": 0.0}
    assert math.isnan(ev.ap(np.array([0.0, 1.0]))["mAP50_95"])  # the sample drew no image with GT
    assert ev.pr_curve(4) is None and ev.pr_curve(1).sum() == 0
