"""COCO box metrics with pycocotools semantics; faster-coco-eval is the fast path (identical numbers).

The ground truth is built in memory from a `Dataset`. A category without ground truth in the test split
gets AP = NaN (absent, not zero) and is left out of the means, as COCO does.
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np

from roadsynth.datasets.coco import dataset_to_coco_dict
from roadsynth.datasets.records import Dataset

STAT_NAMES = ("mAP50_95", "mAP50", "mAP75", "AP_small", "AP_medium", "AP_large",
              "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large")


@dataclass(frozen=True)
class Metrics:
    stats: dict[str, float]
    per_class: dict[str, dict[str, float | int]] = field(default_factory=dict)
    n_images: int = 0
    n_detections: int = 0

    def summary(self) -> dict[str, Any]:
        return {**self.stats, "per_class": self.per_class, "n_test_images": self.n_images,
                "n_detections": self.n_detections}


def predictions_to_coco_results(preds: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"image_id": p.image_id, "category_id": p.category_id,
             "bbox": [round(v, 2) for v in p.box.xywh()], "score": round(float(p.score), 5)} for p in preds]


def _coco_classes(backend: str):
    if backend == "faster":
        from faster_coco_eval import COCO, COCOeval_faster

        return COCO, COCOeval_faster
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        return COCO, COCOeval
    raise ValueError(f"`backend` must be 'faster' or 'pycocotools', but got {backend!r}")


def build_eval(gt: Dataset, results: list[dict[str, Any]], backend: str = "faster",
               image_ids: Sequence[int] | None = None):
    """A COCOeval object after evaluate() + accumulate() (None when there are no detections)."""
    COCO, COCOeval = _coco_classes(backend)
    gt_dict = dataset_to_coco_dict(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt_dict
        coco_gt.createIndex()
        if not results:
            return coco_gt, None
        coco_dt = coco_gt.loadRes([dict(r) for r in results])
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        if image_ids is not None:
            ev.params.imgIds = list(image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return coco_gt, ev


def _ap(precision: np.ndarray, iou_index: int | None = None) -> float:
    p = precision if iou_index is None else precision[iou_index]
    p = p[p > -1]
    return float(p.mean()) if p.size else float("nan")


def evaluate_detections(gt: Dataset, results: Sequence[dict[str, Any]],
                        backend: Literal["faster", "pycocotools"] = "faster") -> Metrics:
    results = list(results)
    known = {c.id for c in gt.categories}
    bad = sorted({r["category_id"] for r in results} - known)
    if bad:
        raise ValueError(f"results use category ids {bad} that the ground truth does not have ({sorted(known)})")
    n_gt = {c.id: 0 for c in gt.categories}
    for a in gt.annotations:
        if not a.iscrowd:
            n_gt[a.category_id] += 1
    _, ev = build_eval(gt, results, backend)
    if ev is None:  # COCO's loadRes cannot take an empty list: no detections means every AP is 0
        stats = {k: 0.0 for k in STAT_NAMES}
        per_class = {c.name: {"AP50_95": 0.0 if n_gt[c.id] else math.nan, "AP50": 0.0 if n_gt[c.id] else math.nan,
                              "n_gt": n_gt[c.id]} for c in gt.categories}
        return Metrics(stats, per_class, len(gt.images), 0)
    stats = {k: float(v) for k, v in zip(STAT_NAMES, ev.stats)}
    stats = {k: (math.nan if v < 0 else v) for k, v in stats.items()}  # COCO's -1 means "no such objects"
    precision = ev.eval["precision"]  # (T iou, R recall, K cat, A area, M maxdet)
    cat_ids = list(ev.params.catIds)
    per_class = {}
    for c in gt.categories:
        k = cat_ids.index(c.id)
        pk = precision[:, :, k, 0, -1]
        per_class[c.name] = {"AP50_95": _ap(pk), "AP50": _ap(pk, 0), "n_gt": n_gt[c.id]}
    return Metrics(stats, per_class, len(gt.images), len(results))
