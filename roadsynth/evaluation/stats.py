"""A/B statistics: is the difference between two arms bigger than the noise?

Two sources of noise matter: which test images you happened to have, and which training seed you
happened to use. Each arm is averaged over its seeds; the test-image noise is measured with a paired
bootstrap over test images (the same resampled images score both arms).

Bootstrapping COCO AP naively re-runs COCOeval per sample. Instead each run is evaluated per image
once (pycocotools' `evaluateImg`: which detections match at each IoU threshold), and a bootstrap sample
is a vector of image multiplicities: AP is recomputed from score-sorted detections with weighted
cumulative sums, the same 101-point interpolation as COCO. With all weights 1 it reproduces
COCOeval's AP exactly (tested).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from roadsynth.datasets.coco import dataset_to_coco_dict
from roadsynth.datasets.records import Dataset

REC_THRS = np.linspace(0.0, 1.00, 101)


@dataclass(frozen=True)
class _CategoryEval:
    scores: np.ndarray  # (D,) sorted descending
    image_index: np.ndarray  # (D,) index into the image list
    tp: np.ndarray  # (T, D) bool
    fp: np.ndarray  # (T, D) bool
    npig: np.ndarray  # (I,) non-ignored ground truth per image


class PerImageEval:
    """Per-image COCO matching of one run (area "all", maxDets 100)."""

    def __init__(self, gt: Dataset, results: Sequence[dict[str, Any]]):
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        self.image_ids = [im.id for im in gt.images]
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO()
            coco_gt.dataset = dataset_to_coco_dict(gt)
            coco_gt.createIndex()
            ev = COCOeval(coco_gt, coco_gt.loadRes([dict(r) for r in results]) if results else COCO(), "bbox")
            ev.params.imgIds = self.image_ids
            if results:
                ev.evaluate()
        T, index = len(ev.params.iouThrs), {i: k for k, i in enumerate(self.image_ids)}
        self.categories: dict[int, _CategoryEval] = {}
        n_img = len(self.image_ids)
        for k, cat in enumerate(ev.params.catIds):
            per = ev.evalImgs[k * 4 * n_img : k * 4 * n_img + n_img] if results else [None] * n_img
            scores, img, tp, fp = [], [], [], []
            npig = np.zeros(n_img)
            for e in per:
                if e is None:
                    continue
                i = index[e["image_id"]]
                gt_ignore = np.asarray(e["gtIgnore"], bool)
                npig[i] = (~gt_ignore).sum()
                d = np.asarray(e["dtScores"])
                if d.size == 0:
                    continue
                m, ig = np.asarray(e["dtMatches"]) > 0, np.asarray(e["dtIgnore"], bool)
                scores.append(d)
                img.append(np.full(d.size, i))
                tp.append(m & ~ig)
                fp.append(~m & ~ig)
            if not results:
                npig = np.array([sum(1 for a in gt.annotations if a.image_id == iid and a.category_id == cat
                                     and not a.iscrowd) for iid in self.image_ids], float)
            if scores:
                s = np.concatenate(scores)
                order = np.argsort(-s, kind="mergesort")  # COCO's stable order
                ce = _CategoryEval(s[order], np.concatenate(img)[order], np.concatenate(tp, axis=1)[:, order],
                                   np.concatenate(fp, axis=1)[:, order], npig)
            else:
                ce = _CategoryEval(np.zeros(0), np.zeros(0, int), np.zeros((T, 0), bool), np.zeros((T, 0), bool), npig)
            self.categories[cat] = ce

    def ap(self, weights: np.ndarray | None = None) -> dict[str, float]:
        """mAP50-95 and mAP50 with image multiplicities `weights` (None = every image once)."""
        per_t = []
        for ce in self.categories.values():
            w_img = np.ones(len(self.image_ids)) if weights is None else weights
            n = float((ce.npig * w_img).sum())
            if n == 0:
                continue  # no ground truth of this class in the sample: absent, not zero
            if ce.scores.size == 0:
                per_t.append(np.zeros(ce.tp.shape[0]))
                continue
            w = w_img[ce.image_index]
            tps, fps = np.cumsum(ce.tp * w, axis=1), np.cumsum(ce.fp * w, axis=1)
            per_t.append(np.array([_interp_ap(tps[t], fps[t], n) for t in range(tps.shape[0])]))
        if not per_t:
            return {"mAP50_95": float("nan"), "mAP50": float("nan")}
        arr = np.array(per_t)  # (K, T)
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


def _interp_ap(tp: np.ndarray, fp: np.ndarray, npig: float) -> float:
    return float(_interp_q(tp, fp, npig).mean())


def _interp_q(tp: np.ndarray, fp: np.ndarray, npig: float) -> np.ndarray:
    rc = tp / npig
    pr = tp / np.maximum(tp + fp, np.spacing(1))
    pr = np.maximum.accumulate(pr[::-1])[::-1]  # precision envelope, as COCO
    idx = np.searchsorted(rc, REC_THRS, side="left")
    q = np.zeros(REC_THRS.size)
    valid = idx < pr.size
    q[valid] = pr[idx[valid]]
    return q


def paired_bootstrap(arm_a: Sequence[PerImageEval], arm_b: Sequence[PerImageEval], *, n_boot: int = 500,
                     seed: int = 0, metric: str = "mAP50_95", alpha: float = 0.05) -> dict[str, float]:
    """Difference (b - a) of seed-averaged `metric` with a percentile CI over resampled test images."""
    n_img = len(arm_a[0].image_ids)
    rng = np.random.default_rng(seed)

    def diff(weights: np.ndarray | None) -> float:
        a = np.nanmean([e.ap(weights)[metric] for e in arm_a])
        b = np.nanmean([e.ap(weights)[metric] for e in arm_b])
        return float(b - a)

    point = diff(None)
    boots = np.array([diff(np.bincount(rng.integers(0, n_img, n_img), minlength=n_img).astype(float))
                      for _ in range(n_boot)])
    boots = boots[np.isfinite(boots)]
    lo, hi = (np.quantile(boots, [alpha / 2, 1 - alpha / 2]) if boots.size else (np.nan, np.nan))
    return {"difference": point, "ci_low": float(lo), "ci_high": float(hi), "n_boot": int(boots.size),
            "alpha": alpha, "verdict": verdict(float(lo), float(hi))}


def verdict(ci_low: float, ci_high: float) -> str:
    if not (np.isfinite(ci_low) and np.isfinite(ci_high)):
        return "no significant change"
    if ci_low > 0:
        return "improves"
    if ci_high < 0:
        return "worse"
    return "no significant change"


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if np.isfinite(x)], float)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def suggest_budget(per_class_ap: dict[str, float | None], train_counts: dict[str, int], *,
                   objects_per_unit_gap: int = 200, cap: int = 2000) -> dict[str, int]:
    """How many objects to generate per class next run (a heuristic, stated as such in the report).

    The gap of a class is its AP shortfall relative to the best-detected class of the real arm; the
    suggestion grows with the gap and with rarity (fewer real training instances than the median class):
    n = objects_per_unit_gap * gap / best * median_count / max(count, 1), capped.
    """
    aps = {c: ap for c, ap in per_class_ap.items() if ap is not None and np.isfinite(ap)}
    if not aps:
        return {}
    best = max(aps.values())
    median = float(np.median([max(v, 1) for v in train_counts.values()])) if train_counts else 1.0
    out = {}
    for c, ap in aps.items():
        gap = (best - ap) / best if best > 0 else 1.0
        rarity = median / max(train_counts.get(c, 0), 1)
        out[c] = int(min(cap, round(objects_per_unit_gap * gap * rarity)))
    return out
