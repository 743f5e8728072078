"""Per-object verification: was something really drawn, inside its box, and how tight is the box?

The evidence is the pixel difference between the frame before and after insertion. A generator that
drew nothing (or drew background-coloured mush) changes little inside the object's mask; one that
bled into the scene changes pixels outside the box. Both are rejected, so every label that survives
points at a visible object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from roadsynth.datasets.records import Box

CHANGE_THRESHOLD = 12  # summed |RGB| difference that counts as "changed" (JPEG-level noise stays below)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str
    tight_box: Box | None
    scores: dict[str, Any] = field(default_factory=dict)


_SUM_RGB = np.ones((1, 3), np.float32)


def u8_mask(mask: np.ndarray) -> np.ndarray:
    """A mask as contiguous uint8 (nonzero = inside) for OpenCV, without a copy when it is bool or uint8."""
    if mask.dtype == bool:
        mask = mask.view(np.uint8)
    elif mask.dtype != np.uint8:
        mask = (mask != 0).view(np.uint8)
    return np.ascontiguousarray(mask)


def mask_box(mask: np.ndarray) -> Box | None:
    x, y, w, h = cv2.boundingRect(u8_mask(mask))
    return None if w == 0 else Box(float(x), float(y), float(w), float(h))


def _sum_rgb(absdiff: np.ndarray) -> np.ndarray:
    return cv2.transform(absdiff, _SUM_RGB)


def abs_diff(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Summed |RGB| difference per pixel, saturated at 255 (uint8): thresholds sit far below it."""
    return _sum_rgb(cv2.absdiff(before, after))


def changed_pixels(before: np.ndarray, after: np.ndarray, threshold: int = CHANGE_THRESHOLD,
                   diff: np.ndarray | None = None) -> np.ndarray:
    """HxW uint8 0/1 mask of pixels whose summed |RGB| change exceeds `threshold`."""
    diff = abs_diff(before, after) if diff is None else diff
    _, changed = cv2.threshold(diff, threshold, 1, cv2.THRESH_BINARY)
    # An opening drops isolated flicker (resampling, compression) that is not part of an object.
    return cv2.morphologyEx(changed, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))


def verify_object(before: np.ndarray, after: np.ndarray, mask: np.ndarray, claimed: Box, *,
                  min_pixels: int = 40, min_change: float = 10.0, min_changed_frac: float = 0.25,
                  max_spill: float = 0.2, ring_px: int = 8) -> Verdict:
    """Check one object. All arrays are the same crop (or full frame); `claimed` is in those coordinates."""
    # uint8 masks and OpenCV reductions throughout: this runs once per inserted object, on the hot path.
    mask = u8_mask(mask)
    n = cv2.countNonZero(mask)
    absdiff = cv2.absdiff(before, after)  # per channel for the mean change, summed for the threshold
    changed = changed_pixels(before, after, diff=_sum_rgb(absdiff))
    H, W = mask.shape
    x1, y1 = max(int(claimed.x) - ring_px, 0), max(int(claimed.y) - ring_px, 0)
    x2, y2 = min(int(np.ceil(claimed.x2)) + ring_px, W), min(int(np.ceil(claimed.y2)) + ring_px, H)
    fg = cv2.bitwise_and(changed, mask)
    n_changed = cv2.countNonZero(changed)
    n_in_box = cv2.countNonZero(changed[y1:y2, x1:x2]) if x2 > x1 and y2 > y1 else 0
    scores = {
        "mask_pixels": n,
        "mean_change_in_mask": round(sum(cv2.mean(absdiff, mask)[:3]) / 3, 2) if n else 0.0,
        "changed_frac_in_mask": round(cv2.countNonZero(fg) / n, 3) if n else 0.0,
        "spill_frac": round((n_changed - n_in_box) / max(n_changed, 1), 3),
    }
    tight = mask_box(fg)
    if n < min_pixels:
        return Verdict(False, f"too small: {n} visible pixels < {min_pixels}", tight, scores)
    if scores["mean_change_in_mask"] < min_change or scores["changed_frac_in_mask"] < min_changed_frac:
        return Verdict(False, f"missing: mean change {scores['mean_change_in_mask']} inside the mask "
                              f"({scores['changed_frac_in_mask']:.0%} of its pixels changed)", tight, scores)
    if scores["spill_frac"] > max_spill:
        return Verdict(False, f"spill: {scores['spill_frac']:.0%} of the changed pixels lie outside the box", tight, scores)
    return Verdict(True, "ok", tight, scores)


def _edges(rgb: np.ndarray, m: np.ndarray) -> np.ndarray:
    return (cv2.Canny(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 60, 160) > 0) & m


def edge_scores(before: np.ndarray, after: np.ndarray, mask: np.ndarray, tolerance_px: int = 1) -> tuple[float, float]:
    """(`edge_fscore`, `edge_density_ratio`) from one Canny pass over each image."""
    m = mask.astype(bool)
    e0, e1 = _edges(before, m), _edges(after, m)
    return _fscore(e0, e1, tolerance_px), _density_ratio(e0, e1)


def edge_fscore(before: np.ndarray, after: np.ndarray, mask: np.ndarray, tolerance_px: int = 1) -> float:
    """Boundary F-score of the Canny edges inside `mask`: after-edges near a before-edge (precision) and
    before-edges near an after-edge (recall), within `tolerance_px`. 1.0 when neither has edges.

    Unlike an IoU of dilated edge maps, this punishes an output full of new texture edges (a noisy or
    melted vehicle), not only one whose outline went missing.
    """
    m = mask.astype(bool)
    return _fscore(_edges(before, m), _edges(after, m), tolerance_px)


def edge_density_ratio(before: np.ndarray, after: np.ndarray, mask: np.ndarray) -> float:
    """Canny edge pixels after / before inside `mask` (inf when before has none): > 2 means new texture."""
    m = mask.astype(bool)
    return _density_ratio(_edges(before, m), _edges(after, m))


def _fscore(e0: np.ndarray, e1: np.ndarray, tolerance_px: int) -> float:
    k = np.ones((2 * tolerance_px + 1,) * 2, np.uint8)
    near0, near1 = (cv2.dilate(x.astype(np.uint8), k).astype(bool) for x in (e0, e1))
    n0, n1 = int(e0.sum()), int(e1.sum())
    if n0 == 0 and n1 == 0:
        return 1.0
    if n0 == 0 or n1 == 0:
        return 0.0
    precision = float((e1 & near0).sum() / n1)
    recall = float((e0 & near1).sum() / n0)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _density_ratio(e0: np.ndarray, e1: np.ndarray) -> float:
    n0, n1 = int(e0.sum()), int(e1.sum())
    return float(n1 / n0) if n0 else (0.0 if n1 == 0 else float("inf"))


def outside_mask_identical(before: np.ndarray, after: np.ndarray, allowed: np.ndarray) -> tuple[bool, int]:
    """(identical?, number of differing pixels) outside the `allowed` (HxW bool) region."""
    differs = np.any(before != after, axis=2) & ~allowed.astype(bool)
    count = int(differs.sum())
    return count == 0, count
