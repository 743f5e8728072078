"""COCO box metrics with pycocotools semantics; faster-coco-eval is the fast path (identical numbers).

The ground truth is built in memory from a `Dataset` (its own category ids, xywh boxes, area, iscrowd).
Conventions the report relies on:
- a category (or an area range) without ground truth has AP = NaN: absent, not zero, and left out of
  the means, as COCO does (its -1);
- no detections at all is a valid outcome scoring 0, not a crash (COCO's `loadRes` fails on an empty list),
  and `Metrics.note` says that this happened;
- `PerImageEval` keeps COCO's per-image matching so a bootstrap can re-weight test images without
  re-running COCOeval (see evaluation/stats.py).
No torch here; pycocotools / faster-coco-eval are imported when used.
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np

from roadsynth.datasets.coco import polygon_area
from roadsynth.datasets.records import Dataset

STAT_NAMES = ("mAP50_95", "mAP50", "mAP75", "AP_small", "AP_medium", "AP_large",
              "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large")
# COCO's area ranges (pixels²) for the small/medium/large stats, bounds inclusive as in COCOeval.
AREA_RANGES = {"small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e10)}
REC_THRS = np.linspace(0.0, 1.00, 101)
Backend = Literal["faster", "pycocotools"]


@dataclass(frozen=True)
class Metrics:
    stats: dict[str, float]  # STAT_NAMES -> value in [0, 1] or NaN
    per_class: dict[str, dict[str, float | int]] = field(default_factory=dict)  # name -> AP50_95, AP50, n_gt, id
    n_images: int = 0
    n_detections: int = 0
    note: str = ""

    def summary(self) -> dict[str, Any]:
        out = {**self.stats, "per_class": self.per_class, "n_test_images": self.n_images,
               "n_detections": self.n_detections}
        return out | ({"note": self.note} if self.note else {})


def predictions_to_coco_results(preds: Sequence[Any]) -> list[dict[str, Any]]:
    """`Prediction`s -> COCO result dicts (image_id, category_id, bbox xywh, score)."""
    return [{"image_id": int(p.image_id), "category_id": int(p.category_id),
             "bbox": [round(float(v), 2) for v in p.box.xywh()], "score": round(float(p.score), 5)} for p in preds]


def _as_results(gt: Dataset, results: Sequence[Any]) -> list[dict[str, Any]]:
    """Copies (loadRes mutates its input) checked against the ground truth, with errors COCO tools don't give."""
    out = [dict(r) if isinstance(r, dict) else predictions_to_coco_results([r])[0] for r in results]
    cats, images = {c.id for c in gt.categories}, {im.id for im in gt.images}
    bad_cats = sorted({r["category_id"] for r in out} - cats)
    if bad_cats:  # pycocotools would silently score them 0
        raise ValueError(f"results use category ids {bad_cats} that the ground truth does not have ({sorted(cats)})")
    bad_images = {r["image_id"] for r in out} - images
    if bad_images:  # loadRes: "Results do not correspond to current coco set"
        raise ValueError(f"results use {len(bad_images)} image id(s) the ground truth does not have, "
                         f"e.g. {sorted(bad_images, key=str)[:3]} (string ids from file stems are a classic cause)")
    for r in out:
        if len(r["bbox"]) != 4 or not all(math.isfinite(v) for v in (*r["bbox"], r["score"])):
            raise ValueError(f"result for image {r['image_id']} has a bad bbox/score: {r['bbox']}, {r['score']}")
    return out


def _gt_dict(gt: Dataset) -> dict[str, Any]:
    """A lean COCO dict: boxes only (bbox eval never reads segmentations, provenance or attributes)."""
    images = [{"id": im.id, "file_name": im.file_name, "width": im.width, "height": im.height} for im in gt.images]
    anns = [{"id": a.id, "image_id": a.image_id, "category_id": a.category_id, "bbox": list(a.bbox.xywh()),
             "area": float(a.area if a.area is not None else (polygon_area(a.segmentation) or a.bbox.area)),
             "iscrowd": int(a.iscrowd)} for a in gt.annotations]
    cats = [{"id": c.id, "name": c.name} for c in sorted(gt.categories, key=lambda c: c.id)]
    return {"images": images, "annotations": anns, "categories": cats}


def _coco_classes(backend: str):
    if backend == "faster":
        from faster_coco_eval import COCO, COCOeval_faster

        return COCO, COCOeval_faster
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        return COCO, COCOeval
    raise ValueError(f"`backend` must be 'faster' or 'pycocotools', but got {backend!r}")


def _coco_gt(COCO, gt_dict: dict[str, Any]):
    coco_gt = COCO()
    coco_gt.dataset = gt_dict
    coco_gt.createIndex()
    return coco_gt


def run_cocoeval(gt: Dataset, results: list[dict[str, Any]], backend: Backend = "faster",
                 image_ids: Sequence[int] | None = None):
    """A COCOeval object after evaluate/accumulate/summarize (its printing swallowed); None without results."""
    COCO, COCOeval = _coco_classes(backend)
    if not results:
        return None
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = _coco_gt(COCO, _gt_dict(gt))
        ev = COCOeval(coco_gt, coco_gt.loadRes(results), "bbox")
        if image_ids is not None:
            ev.params.imgIds = sorted(set(image_ids))
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _mean_valid(p: np.ndarray) -> float:
    p = p[p > -1]
    return float(p.mean()) if p.size else math.nan


def evaluate_detections(gt: Dataset, results: Sequence[Any], backend: Backend = "faster",
                        image_ids: Sequence[int] | None = None) -> Metrics:
    """COCO bbox metrics of `results` (COCO dicts or `Prediction`s) on `gt`, optionally on a subset of images."""
    results = _as_results(gt, results)
    keep = {im.id for im in gt.images} if image_ids is None else set(image_ids)
    if image_ids is not None:
        unknown = keep - {im.id for im in gt.images}
        if unknown:
            raise ValueError(f"`image_ids` must be ids of ground-truth images, but got unknown ids {sorted(unknown)[:3]}")
        results = [r for r in results if r["image_id"] in keep]
    counted = [a for a in gt.annotations if not a.iscrowd and a.image_id in keep]
    n_gt = {c.id: 0 for c in gt.categories}
    for a in counted:
        n_gt[a.category_id] += 1
    ev = run_cocoeval(gt, results, backend, image_ids)
    if ev is None:
        return Metrics(_stats_without_detections(counted), _per_class_without_detections(gt, n_gt), len(keep), 0,
                       note="no detections: AP/AR are 0 where ground truth exists, NaN where it does not "
                            "(COCOeval was not run: its loadRes cannot take an empty list)")
    stats = {k: (math.nan if v < 0 else float(v)) for k, v in zip(STAT_NAMES, ev.stats)}  # -1 = no such objects
    precision = ev.eval["precision"]  # (T iou, R recall, K cat, A area, M maxdet)
    cat_index = {c: k for k, c in enumerate(ev.params.catIds)}
    per_class = {}
    for c in gt.categories:
        pk = precision[:, :, cat_index[c.id], 0, -1]  # area "all", maxDets 100
        per_class[c.name] = {"category_id": c.id, "AP50_95": _mean_valid(pk), "AP50": _mean_valid(pk[0]),
                             "n_gt": n_gt[c.id]}
    return Metrics(stats, per_class, len(keep), len(results))


def _stats_without_detections(counted: list) -> dict[str, float]:
    def zero_if(present: bool) -> float:
        return 0.0 if present else math.nan

    any_gt = bool(counted)
    areas = [a.area if a.area is not None else (polygon_area(a.segmentation) or a.bbox.area) for a in counted]
    has = {name: any(lo <= x <= hi for x in areas) for name, (lo, hi) in AREA_RANGES.items()}
    stats = {k: zero_if(any_gt) for k in ("mAP50_95", "mAP50", "mAP75", "AR1", "AR10", "AR100")}
    for name in AREA_RANGES:
        stats[f"AP_{name}"] = stats[f"AR_{name}"] = zero_if(has[name])
    return {k: stats[k] for k in STAT_NAMES}


def _per_class_without_detections(gt: Dataset, n_gt: dict[int, int]) -> dict[str, dict[str, float | int]]:
    return {c.name: {"category_id": c.id, "AP50_95": 0.0 if n_gt[c.id] else math.nan,
                     "AP50": 0.0 if n_gt[c.id] else math.nan, "n_gt": n_gt[c.id]} for c in gt.categories}


@dataclass(frozen=True)
class _CategoryEval:
    scores: np.ndarray  # (D,) sorted descending
    image_index: np.ndarray  # (D,) index into PerImageEval.image_ids
    tp: np.ndarray  # (T, D) bool
    fp: np.ndarray  # (T, D) bool
    npig: np.ndarray  # (I,) non-ignored ground truth per image
    # Recall rises only at a true positive, so the interpolated precision needs the cumulative counts there
    # alone: each threshold's true-positive positions, padded to one width M with its last one (T, M), and
    # which entries are real. Hundreds of them instead of thousands of detections per bootstrap resample.
    tp_at: np.ndarray
    tp_real: np.ndarray
    all_counted: bool  # no ignored detection: every one is a tp or an fp at every threshold

    @classmethod
    def of(cls, scores: np.ndarray, image_index: np.ndarray, tp: np.ndarray, fp: np.ndarray,
           npig: np.ndarray) -> "_CategoryEval":
        rows = [np.flatnonzero(r) for r in tp]
        width = max((r.size for r in rows), default=0)
        at, real = np.zeros((len(rows), width), int), np.zeros((len(rows), width), bool)
        for t, r in enumerate(rows):
            at[t, : r.size], at[t, r.size :], real[t, : r.size] = r, r[-1] if r.size else 0, True
        return cls(scores, image_index, tp, fp, npig, at, real, bool((tp | fp).all()))


class PerImageEval:
    """Per-image COCO matching of one run (area "all", maxDets 100), reusable under image re-weighting.

    pycocotools' `evaluateImg` decides once which detections match at each IoU threshold; `ap(weights)`
    then recomputes AP for any image multiplicities (a bootstrap sample) from score-sorted detections
    with weighted cumulative sums and COCO's 101-point interpolation. With all weights 1 it reproduces
    COCOeval's AP exactly (tested).
    """

    def __init__(self, gt: Dataset, results: Sequence[Any]):
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        results = _as_results(gt, results)
        self.image_ids = [im.id for im in gt.images]
        index = {i: k for k, i in enumerate(self.image_ids)}
        n_img = len(self.image_ids)
        npig_all = {c.id: np.zeros(n_img) for c in gt.categories}
        for a in gt.annotations:
            if not a.iscrowd:
                npig_all[a.category_id][index[a.image_id]] += 1
        evals: dict[int, list] = {c.id: [] for c in gt.categories}
        T = 10
        if results:
            with contextlib.redirect_stdout(io.StringIO()):
                coco_gt = _coco_gt(COCO, _gt_dict(gt))
                ev = COCOeval(coco_gt, coco_gt.loadRes(results), "bbox")
                ev.params.imgIds = self.image_ids
                ev.evaluate()
            T, n_area = len(ev.params.iouThrs), len(ev.params.areaRng)
            for k, cat in enumerate(ev.params.catIds):  # evalImgs is ordered (category, area range, image)
                evals[cat] = [e for e in ev.evalImgs[k * n_area * n_img : k * n_area * n_img + n_img] if e]
        self.categories: dict[int, _CategoryEval] = {}
        for cat, per in evals.items():
            scores, img, tp, fp = [], [], [], []
            for e in per:  # images in COCO's (sorted id) order: the same concatenation as accumulate()
                d = np.asarray(e["dtScores"])
                if d.size == 0:
                    continue
                m, ig = np.asarray(e["dtMatches"]) > 0, np.asarray(e["dtIgnore"], bool)
                scores.append(d)
                img.append(np.full(d.size, index[e["image_id"]]))
                tp.append(m & ~ig)
                fp.append(~m & ~ig)
            if scores:
                s = np.concatenate(scores)
                order = np.argsort(-s, kind="mergesort")  # COCO's stable order
                self.categories[cat] = _CategoryEval.of(s[order], np.concatenate(img)[order],
                                                        np.concatenate(tp, axis=1)[:, order],
                                                        np.concatenate(fp, axis=1)[:, order], npig_all[cat])
            else:
                self.categories[cat] = _CategoryEval.of(np.zeros(0), np.zeros(0, int), np.zeros((T, 0), bool),
                                                        np.zeros((T, 0), bool), npig_all[cat])

    def ap(self, weights: np.ndarray | None = None, category_ids: Sequence[int] | None = None) -> dict[str, float]:
        """mAP50-95 and mAP50 with image multiplicities `weights` (aligned with `image_ids`; None = each once),
        over `category_ids` (None = all; one id gives that class's AP50-95 and AP50)."""
        w_img = np.ones(len(self.image_ids)) if weights is None else np.asarray(weights, float)
        cats = self.categories if category_ids is None else {c: self.categories[c] for c in category_ids}
        per_t = []
        for ce in cats.values():
            n = float((ce.npig * w_img).sum())
            if n == 0:
                continue  # no ground truth of this class in the sample: absent, not zero
            if ce.scores.size == 0:
                per_t.append(np.zeros(ce.tp.shape[0]))
                continue
            # Multiplicities are whole numbers, so every cumulative sum here is exact and equals COCO's
            # cumulative tp and fp counts at the same detections.
            w = w_img[ce.image_index]
            if ce.all_counted:
                counted = np.cumsum(w)[ce.tp_at]
            else:
                counted = np.take_along_axis(np.cumsum((ce.tp | ce.fp) * w, axis=1), ce.tp_at, axis=1)
            tps = np.cumsum(w[ce.tp_at] * ce.tp_real, axis=1)
            per_t.append(_interp_q(tps, counted - tps, n).mean(axis=-1))
        if not per_t:
            return {"mAP50_95": math.nan, "mAP50": math.nan}
        arr = np.array(per_t)  # (K present, T)
        return {"mAP50_95": float(arr.mean()), "mAP50": float(arr[:, 0].mean())}

    def pr_curve(self, category_id: int, iou_index: int = 0) -> np.ndarray | None:
        """Interpolated precision at COCO's 101 recall points (None when the class has no ground truth)."""
        ce = self.categories[category_id]
        n = float(ce.npig.sum())
        if n == 0:
            return None
        if ce.scores.size == 0:
            return np.zeros(REC_THRS.size)
        return _interp_q(np.cumsum(ce.tp[iou_index]), np.cumsum(ce.fp[iou_index]), n)


def _interp_q(tp: np.ndarray, fp: np.ndarray, npig: float) -> np.ndarray:
    """COCO's interpolated precision at the 101 recall thresholds (precision envelope, left search) of one
    row of cumulative tp and fp counts, or of each row of a (T, D) stack."""
    rc = tp / npig
    pr = tp / np.maximum(tp + fp, np.spacing(1))
    pr = np.flip(np.maximum.accumulate(np.flip(pr, -1), axis=-1), -1)
    rows = rc.reshape(-1, rc.shape[-1])
    q = np.zeros((rows.shape[0], REC_THRS.size))
    if rows.shape[1]:
        idx = np.stack([np.searchsorted(row, REC_THRS, side="left") for row in rows])  # each row is sorted
        valid = idx < rows.shape[1]
        q = np.where(valid, np.take_along_axis(pr.reshape(rows.shape), np.where(valid, idx, 0), axis=-1), 0.0)
    return q.reshape(*rc.shape[:-1], REC_THRS.size)
