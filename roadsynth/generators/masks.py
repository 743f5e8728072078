"""Object masks where a dataset only has boxes: GrabCut inside the box, and how good that is.

GrabCut is initialised with the box (outside = sure background) on a crop padded by a margin, so the
model sees background on every side. The crop is first resized so that the box's shorter side is
`work_px` pixels: OpenCV's GrabCut has a fixed smoothness weight per pixel pair, so the same object cut
at 40 px and at 400 px gets differently smooth outlines, and small boxes lose their legs and heads. At one
working size it behaves alike on every box (benchmarks/mask_quality.py, on masks nothing was tuned on: mean
IoU against true masks 0.80 -> 0.85 on MSRC animals, 0.761 -> 0.755 on held-out Weizmann horses with fewer
below IoU 0.6, 16 % -> 14 %, and 3.7x faster on their large photos). When it degenerates (an almost empty or almost full mask), a
centred ellipse is the fallback; the method used is returned so provenance can say which.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from roadsynth.datasets.records import Box


def ellipse_mask(h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, (w // 2, h // 2), (max(w // 2, 1), max(h // 2, 1)), 0, 0, 360, 1, -1)
    return m.astype(bool)


WORK_PX = 200  # the box's shorter side while GrabCut runs (chosen on the tuning masks only; see above)


def grabcut_mask(rgb: np.ndarray, box: Box, iters: int = 5, margin: float = 0.15,
                 work_px: int | None = WORK_PX) -> tuple[np.ndarray, str]:
    """Bool mask of the box's size (rows/cols of the integer box) and the method that produced it.
    `work_px`: resize so the box's shorter side has this many pixels while GrabCut runs (scale clipped to
    [0.5, 3]); None runs it at the photo's own size (roadsynth before 2026-12-04)."""
    H, W = rgb.shape[:2]
    x1, y1 = max(int(np.floor(box.x)), 0), max(int(np.floor(box.y)), 0)
    x2, y2 = min(int(np.ceil(box.x2)), W), min(int(np.ceil(box.y2)), H)
    bw, bh = x2 - x1, y2 - y1
    if bw < 4 or bh < 4:
        return ellipse_mask(max(bh, 1), max(bw, 1)), "ellipse"
    mx, my = int(bw * margin) + 2, int(bh * margin) + 2
    cx1, cy1, cx2, cy2 = max(x1 - mx, 0), max(y1 - my, 0), min(x2 + mx, W), min(y2 + my, H)
    crop = np.ascontiguousarray(rgb[cy1:cy2, cx1:cx2, ::-1])  # OpenCV wants BGR
    s = 1.0 if work_px is None else float(np.clip(work_px / min(bw, bh), 0.5, 3.0))
    if s != 1.0:
        size = (max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_LINEAR if s > 1 else cv2.INTER_AREA)
    ch, cw = crop.shape[:2]
    rx1, ry1 = round((x1 - cx1) * s), round((y1 - cy1) * s)
    rx2, ry2 = min(round((x2 - cx1) * s), cw), min(round((y2 - cy1) * s), ch)
    mask = np.full((ch, cw), cv2.GC_BGD, np.uint8)  # outside the box: sure background
    mask[ry1:ry2, rx1:rx2] = cv2.GC_PR_FGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    # GrabCut seeds its colour models with k-means on OpenCV's global RNG: reset it so the same box
    # always gives the same mask (resumed runs and rebuilt cut-out banks must reproduce).
    cv2.setRNGSeed(0)
    try:
        cv2.grabCut(crop, mask, None, bgd, fgd, iters, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return ellipse_mask(bh, bw), "ellipse"
    fg = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    if s != 1.0:
        fg = cv2.resize(fg, (cx2 - cx1, cy2 - cy1), interpolation=cv2.INTER_NEAREST)
    fg = fg.astype(bool)[y1 - cy1 : y1 - cy1 + bh, x1 - cx1 : x1 - cx1 + bw]
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


def measure_mask_quality(samples: list[tuple], gate: float | None = None) -> dict[str, Any]:
    """Box-to-mask steps against true masks, on (rgb, true full-frame mask[, class]) samples.

    Side by side: `grabcut` (as used: at the working size `WORK_PX`, with its ellipse fallback) and
    `grabcut_plain` (the same at the photo's own size, roadsynth's step before), with the trivial
    baselines `box` (the full box) and `ellipse`, all inside the true mask's tight box: mean and median IoU,
    the share below IoU 0.6, fallbacks and seconds per mask. With `gate`, what a `cutout_min_quality` of that
    value does to `grabcut`'s masks: the share refused and the kept masks' mean IoU and share below 0.6
    (the score sees only the photo, never the true mask). Samples with a class also get `per_class`.
    """
    import time

    from roadsynth.generators.mask_score import cutout_quality

    steps = {"grabcut": {}, "grabcut_plain": {"work_px": None}}
    iou: dict[str, list[float]] = {k: [] for k in (*steps, "box", "ellipse")}
    seconds = {k: 0.0 for k in steps}
    fallbacks = {k: 0 for k in steps}
    quality: list[float] = []
    classes: list[str | None] = []
    for sample in samples:
        rgb, true = sample[0], sample[1]
        classes.append(sample[2] if len(sample) > 2 else None)
        ys, xs = np.nonzero(true)
        box = Box.from_xyxy(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        t = true[int(box.y) : int(box.y2), int(box.x) : int(box.x2)]
        for name, kwargs in steps.items():
            t0 = time.perf_counter()
            g, method = grabcut_mask(rgb, box, **kwargs)
            seconds[name] += time.perf_counter() - t0
            fallbacks[name] += method != "grabcut"
            iou[name].append(mask_iou(g, t))
            if name == "grabcut" and gate is not None:
                full = np.zeros(true.shape, bool)
                full[int(box.y) : int(box.y) + g.shape[0], int(box.x) : int(box.x) + g.shape[1]] = g
                quality.append(cutout_quality(rgb, full, box.xywh())["score"])
        iou["box"].append(mask_iou(np.ones_like(t), t))
        iou["ellipse"].append(mask_iou(ellipse_mask(*t.shape), t))
    out: dict[str, Any] = {"n": len(samples)}
    for k, v in iou.items():
        out[f"{k}_mean_iou"] = float(np.mean(v)) if v else float("nan")
        out[f"{k}_median_iou"] = float(np.median(v)) if v else float("nan")
    for k in steps:
        out[f"{k}_below_0.6"] = float(np.mean(np.asarray(iou[k]) < 0.6)) if iou[k] else float("nan")
        out[f"{k}_fallbacks"] = fallbacks[k]
        out[f"{k}_seconds_per_mask"] = round(seconds[k] / max(len(samples), 1), 4)
    new = np.asarray(iou["grabcut"])
    if gate is not None and new.size:
        kept = np.asarray(quality) >= gate
        out.update({"gate": gate, "gated_refused": float(1 - kept.mean()),
                    "gated_kept_mean_iou": float(new[kept].mean()) if kept.any() else float("nan"),
                    "gated_kept_below_0.6": float(np.mean(new[kept] < 0.6)) if kept.any() else float("nan")})
    if any(c is not None for c in classes):
        per = {}
        for c in sorted({c for c in classes if c is not None}):
            idx = [i for i, x in enumerate(classes) if x == c]
            per[c] = {"n": len(idx), **{f"{k}_mean_iou": round(float(np.mean([iou[k][i] for i in idx])), 4)
                                        for k in steps},
                      **{f"{k}_below_0.6": round(float(np.mean([iou[k][i] < 0.6 for i in idx])), 4) for k in steps}}
        out["per_class"] = per
    return out
