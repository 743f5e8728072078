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


def learned_mask(rgb: np.ndarray, box: Box, segmenter: Any) -> tuple[np.ndarray, str, float]:
    """Bool mask of the box's size from the box segmenter (generators/box_segmenter.py), thresholded where its
    manifest says, and the segmenter's certainty; the ellipse where it degenerates, as for GrabCut."""
    from roadsynth.generators.box_segmenter import certainty

    H, W = rgb.shape[:2]
    x1, y1 = max(int(np.floor(box.x)), 0), max(int(np.floor(box.y)), 0)
    x2, y2 = min(int(np.ceil(box.x2)), W), min(int(np.ceil(box.y2)), H)
    if x2 - x1 < 4 or y2 - y1 < 4:
        return ellipse_mask(max(y2 - y1, 1), max(x2 - x1, 1)), "ellipse", 0.0
    p = segmenter.probabilities(rgb, (box.x, box.y, box.x2, box.y2))
    fg = largest_component(p >= segmenter.threshold)
    if not 0.15 <= (fg.mean() if fg.size else 0.0) <= 0.98:
        return ellipse_mask(y2 - y1, x2 - x1), "ellipse", 0.0
    return fg, "learned", certainty(p)


def box_mask(rgb: np.ndarray, box: Box, segmenter: Any = None) -> tuple[np.ndarray, str, float | None]:
    """The box-to-mask step: the learned segmenter when one is given (with its certainty), else GrabCut
    (certainty None)."""
    if segmenter is None:
        return (*grabcut_mask(rgb, box), None)
    return learned_mask(rgb, box, segmenter)


def largest_component(mask: np.ndarray) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask.astype(bool)
    keep = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == keep


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def measure_mask_quality(samples: list[tuple], gate: float | None = None, segmenter: Any = None) -> dict[str, Any]:
    """Box-to-mask steps against true masks, on (rgb, true full-frame mask[, class]) samples.

    Side by side: `grabcut` (as used: at the working size `WORK_PX`, with its ellipse fallback),
    `grabcut_plain` (the same at the photo's own size, roadsynth's step before 2026-12-04) and, given a
    `segmenter`, `learned` (generators/box_segmenter.py), with the trivial baselines `box` (the full box) and
    `ellipse`, all inside the true mask's tight box: mean and median IoU, the share below IoU 0.6,
    fallbacks and seconds per mask; for `learned` also what its own certainty floor refuses, and the kept
    (`sure`) masks' figures. With `gate`, what a `cutout_min_quality` of that value does to each
    step's masks but the old one: the share refused and the kept masks' mean IoU and share below 0.6 (the
    score sees only the photo, never the true mask). Samples with a class also get `per_class`.
    """
    import time

    from roadsynth.generators.mask_score import cutout_quality

    steps: dict[str, Any] = {"grabcut": lambda rgb, b: box_mask(rgb, b),
                             "grabcut_plain": lambda rgb, b: (*grabcut_mask(rgb, b, work_px=None), None)}
    if segmenter is not None:
        steps["learned"] = lambda rgb, b: learned_mask(rgb, b, segmenter)
    sure: list[bool] = []  # the learned masks its certainty floor keeps
    gated = [k for k in steps if k != "grabcut_plain"] if gate is not None else []
    iou: dict[str, list[float]] = {k: [] for k in (*steps, "box", "ellipse")}
    seconds = {k: 0.0 for k in steps}
    fallbacks = {k: 0 for k in steps}
    quality: dict[str, list[float]] = {k: [] for k in gated}
    classes: list[str | None] = []
    for sample in samples:
        rgb, true = sample[0], sample[1]
        classes.append(sample[2] if len(sample) > 2 else None)
        ys, xs = np.nonzero(true)
        box = Box.from_xyxy(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        t = true[int(box.y) : int(box.y2), int(box.x) : int(box.x2)]
        for name, step in steps.items():
            t0 = time.perf_counter()
            g, method, certain = step(rgb, box)
            seconds[name] += time.perf_counter() - t0
            if name == "learned":
                sure.append(segmenter.min_certainty is None or certain >= segmenter.min_certainty)
            fallbacks[name] += method == "ellipse"
            iou[name].append(mask_iou(g, t))
            if name in gated:
                full = np.zeros(true.shape, bool)
                full[int(box.y) : int(box.y) + g.shape[0], int(box.x) : int(box.x) + g.shape[1]] = g
                quality[name].append(cutout_quality(rgb, full, box.xywh())["score"])
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
    if gated and samples:
        out["gate"] = gate
    for k in gated if samples else []:
        v, kept = np.asarray(iou[k]), np.asarray(quality[k]) >= gate
        out.update({f"{k}_gated_refused": float(1 - kept.mean()),
                    f"{k}_gated_kept_mean_iou": float(v[kept].mean()) if kept.any() else float("nan"),
                    f"{k}_gated_kept_below_0.6": float(np.mean(v[kept] < 0.6)) if kept.any() else float("nan")})
    if sure:
        v, kept = np.asarray(iou["learned"]), np.asarray(sure)
        out.update({"learned_min_certainty": segmenter.min_certainty, "learned_unsure_refused": float(1 - kept.mean()),
                    "learned_sure_mean_iou": float(v[kept].mean()) if kept.any() else float("nan"),
                    "learned_sure_below_0.6": float(np.mean(v[kept] < 0.6)) if kept.any() else float("nan")})
    if any(c is not None for c in classes):
        per = {}
        for c in sorted({c for c in classes if c is not None}):
            idx = [i for i, x in enumerate(classes) if x == c]
            per[c] = {"n": len(idx), **{f"{k}_mean_iou": round(float(np.mean([iou[k][i] for i in idx])), 4)
                                        for k in steps},
                      **{f"{k}_below_0.6": round(float(np.mean([iou[k][i] < 0.6 for i in idx])), 4) for k in steps}}
            if sure:
                ok = [i for i in idx if sure[i]]
                per[c] |= {"learned_unsure_refused": round(1 - len(ok) / len(idx), 4),
                           "learned_sure_mean_iou": round(float(np.mean([iou["learned"][i] for i in ok])), 4)
                           if ok else float("nan"),
                           "learned_sure_below_0.6": round(float(np.mean([iou["learned"][i] < 0.6 for i in ok])), 4)
                           if ok else float("nan")}
        out["per_class"] = per
    return out
