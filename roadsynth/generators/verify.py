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


def mask_box(mask: np.ndarray) -> Box | None:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    return Box.from_xyxy(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def abs_diff(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Summed |RGB| difference per pixel (uint16)."""
    return cv2.absdiff(before, after).astype(np.uint16).sum(axis=2, dtype=np.uint16)


def changed_pixels(before: np.ndarray, after: np.ndarray, threshold: int = CHANGE_THRESHOLD,
                   diff: np.ndarray | None = None) -> np.ndarray:
    diff = abs_diff(before, after) if diff is None else diff
    changed = diff > threshold
    # An opening drops isolated flicker (resampling, compression) that is not part of an object.
    return cv2.morphologyEx(changed.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)).astype(bool)


def verify_object(before: np.ndarray, after: np.ndarray, mask: np.ndarray, claimed: Box, *,
                  min_pixels: int = 40, min_change: float = 10.0, min_changed_frac: float = 0.25,
                  max_spill: float = 0.2, ring_px: int = 8) -> Verdict:
    """Check one object. All arrays are the same crop (or full frame); `claimed` is in those coordinates."""
    mask = mask.astype(bool)
    n = int(mask.sum())
    diff = abs_diff(before, after)
    changed = changed_pixels(before, after, diff=diff)
    H, W = mask.shape
    x1, y1 = max(int(claimed.x) - ring_px, 0), max(int(claimed.y) - ring_px, 0)
    x2, y2 = min(int(np.ceil(claimed.x2)) + ring_px, W), min(int(np.ceil(claimed.y2)) + ring_px, H)
    in_box = np.zeros_like(mask)
    in_box[y1:y2, x1:x2] = True
    fg = changed & mask
    scores = {
        "mask_pixels": n,
        "mean_change_in_mask": round(cv2.mean(diff, mask.view(np.uint8))[0] / 3, 2) if n else 0.0,
        "changed_frac_in_mask": round(float(fg.sum() / n), 3) if n else 0.0,
        "spill_frac": round(float((changed & ~in_box).sum() / max(changed.sum(), 1)), 3),
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


def outside_mask_identical(before: np.ndarray, after: np.ndarray, allowed: np.ndarray) -> tuple[bool, int]:
    """(identical?, number of differing pixels) outside the `allowed` (HxW bool) region."""
    differs = np.any(before != after, axis=2) & ~allowed.astype(bool)
    count = int(differs.sum())
    return count == 0, count
