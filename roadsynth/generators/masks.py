"""Object masks where a dataset only has boxes: GrabCut inside the box, and how good that is.

GrabCut is initialised with the box (outside = sure background) on a crop padded by a margin, so the
model sees background on every side. When it degenerates (an almost empty or almost full mask), a
centred ellipse is the fallback; the method used is returned so provenance can say which.
"""

from __future__ import annotations

import cv2
import numpy as np

from roadsynth.datasets.records import Box


def ellipse_mask(h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, (w // 2, h // 2), (max(w // 2, 1), max(h // 2, 1)), 0, 0, 360, 1, -1)
    return m.astype(bool)


def grabcut_mask(rgb: np.ndarray, box: Box, iters: int = 5, margin: float = 0.15) -> tuple[np.ndarray, str]:
    """Bool mask of the box's size (rows/cols of the integer box) and the method that produced it."""
    H, W = rgb.shape[:2]
    x1, y1 = max(int(np.floor(box.x)), 0), max(int(np.floor(box.y)), 0)
    x2, y2 = min(int(np.ceil(box.x2)), W), min(int(np.ceil(box.y2)), H)
    bw, bh = x2 - x1, y2 - y1
    if bw < 4 or bh < 4:
        return ellipse_mask(max(bh, 1), max(bw, 1)), "ellipse"
    mx, my = int(bw * margin) + 2, int(bh * margin) + 2
    cx1, cy1, cx2, cy2 = max(x1 - mx, 0), max(y1 - my, 0), min(x2 + mx, W), min(y2 + my, H)
    crop = np.ascontiguousarray(rgb[cy1:cy2, cx1:cx2, ::-1])  # OpenCV wants BGR
    mask = np.zeros(crop.shape[:2], np.uint8)
    rect = (x1 - cx1, y1 - cy1, bw, bh)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    # GrabCut seeds its colour models with k-means on OpenCV's global RNG: reset it so the same box
    # always gives the same mask (resumed runs and rebuilt cut-out banks must reproduce).
    cv2.setRNGSeed(0)
    try:
        cv2.grabCut(crop, mask, rect, bgd, fgd, iters, cv2.GC_INIT_WITH_RECT)
    except cv2.error:
        return ellipse_mask(bh, bw), "ellipse"
    fg = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD))[y1 - cy1 : y1 - cy1 + bh, x1 - cx1 : x1 - cx1 + bw]
    fg = largest_component(fg)
    frac = fg.mean() if fg.size else 0.0
    if not 0.15 <= frac <= 0.98:  # degenerate: nothing found, or everything in the box
        return ellipse_mask(bh, bw), "ellipse"
    return fg, "grabcut"


def largest_component(mask: np.ndarray) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask.astype(bool)
    keep = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == keep


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def measure_mask_quality(samples: list[tuple[np.ndarray, np.ndarray]], gate: float | None = None) -> dict[str, float]:
    """GrabCut vs true masks on (rgb, true full-frame mask) samples, with the trivial baselines.

    Returns mean/median IoU for `grabcut` (as used, with its ellipse fallback), `box` (the full box)
    and `ellipse`, all measured inside the true mask's tight box, and the share of GrabCut masks below IoU
    0.6. With `gate`, also what a `cutout_min_quality` of that value does: the share refused and the kept
    masks' mean IoU and share below 0.6 (the score sees only the photo, never the true mask).
    """
    from roadsynth.generators.mask_score import cutout_quality

    scores: dict[str, list[float]] = {"grabcut": [], "box": [], "ellipse": []}
    quality: list[float] = []
    fallbacks = 0
    for rgb, true in samples:
        ys, xs = np.nonzero(true)
        box = Box.from_xyxy(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        t = true[int(box.y) : int(box.y2), int(box.x) : int(box.x2)]
        g, method = grabcut_mask(rgb, box)
        fallbacks += method != "grabcut"
        scores["grabcut"].append(mask_iou(g, t))
        scores["box"].append(mask_iou(np.ones_like(t), t))
        scores["ellipse"].append(mask_iou(ellipse_mask(*t.shape), t))
        if gate is not None:
            full = np.zeros(true.shape, bool)
            full[int(box.y) : int(box.y) + g.shape[0], int(box.x) : int(box.x) + g.shape[1]] = g
            quality.append(cutout_quality(rgb, full, box.xywh())["score"])
    out: dict[str, float] = {"n": len(samples), "grabcut_fallbacks": fallbacks}
    for k, v in scores.items():
        out[f"{k}_mean_iou"] = float(np.mean(v)) if v else float("nan")
        out[f"{k}_median_iou"] = float(np.median(v)) if v else float("nan")
    iou = np.asarray(scores["grabcut"])
    out["grabcut_below_0.6"] = float(np.mean(iou < 0.6)) if iou.size else float("nan")
    if gate is not None and iou.size:
        kept = np.asarray(quality) >= gate
        out.update({"gate": gate, "gated_refused": float(1 - kept.mean()),
                    "gated_kept_mean_iou": float(iou[kept].mean()) if kept.any() else float("nan"),
                    "gated_kept_below_0.6": float(np.mean(iou[kept] < 0.6)) if kept.any() else float("nan")})
    return out
