"""Fit a flat-ground model (horizon row, camera height) from labelled objects of known real height.

Each box of a class with height prior H gives h / H = (y_bottom - y_horizon) / cam_height, a line in
y_bottom with slope 1/cam_height and intercept -y_horizon/cam_height (Hoiem, Efros, Hebert, "Putting
Objects in Perspective", CVPR 2006). Occluded or truncated boxes break it, so the line is found by
RANSAC over pairs and refit by least squares on the inliers (relative residual below `inlier_tol`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from roadsynth.datasets.records import Box
from roadsynth.geometry.camera import LinearHorizon
from roadsynth.geometry.priors import DEFAULT_PRIORS, SizePrior


@dataclass(frozen=True)
class FitResult:
    model: LinearHorizon | None
    ok: bool
    reason: str
    n_boxes: int
    n_inliers: int
    residual_rms_rel: float | None  # RMS of (h_pred - h) / h over inliers


def _line(y: np.ndarray, r: np.ndarray) -> tuple[float, float]:
    a, b = np.polyfit(y, r, 1)
    return float(a), float(b)


def fit_linear_horizon(
    boxes: Sequence[tuple[str, Box]], image_height: int, *, priors: Mapping[str, SizePrior] = DEFAULT_PRIORS,
    image_width: int | None = None, min_boxes: int = 3, min_px: float = 10.0, inlier_tol: float = 0.2,
    max_rms: float = 0.25, min_spread: float = 0.1, iters: int = 300, seed: int = 0, fy: float | None = None,
) -> FitResult:
    """`boxes`: (category name, box) of one camera (one frame or many frames of the same camera)."""
    ys, rs = [], []
    for name, b in boxes:
        prior = priors.get(name.lower())
        if prior is None or b.h < min_px:
            continue
        # Boxes cut by the image border have lost height: not evidence.
        if b.y <= 1 or b.y2 >= image_height - 1 or (image_width and (b.x <= 1 or b.x2 >= image_width - 1)):
            continue
        ys.append(b.y2)
        rs.append(b.h / prior.height_m)
    y, r = np.array(ys, float), np.array(rs, float)
    n = len(y)
    if n < min_boxes:
        return FitResult(None, False, f"too few usable boxes: {n} < {min_boxes}", n, 0, None)
    spread = (y.max() - y.min()) / image_height
    if spread < min_spread:
        # All objects at nearly one distance: slope and intercept trade off freely, so any answer is noise.
        return FitResult(None, False, f"poorly conditioned: box bottoms span only {spread:.1%} of the image height "
                                      f"(< {min_spread:.0%})", n, 0, None)
    rng = np.random.default_rng(seed)
    best = np.zeros(n, bool)
    for _ in range(iters):
        i, j = rng.choice(n, 2, replace=False)
        if abs(y[i] - y[j]) < 2:
            continue
        a = (r[i] - r[j]) / (y[i] - y[j])
        b = r[i] - a * y[i]
        inl = np.abs(a * y + b - r) <= inlier_tol * r
        if inl.sum() > best.sum():
            best = inl
    if best.sum() < min_boxes:
        best = np.ones(n, bool)
    a, b = _line(y[best], r[best])
    inl = np.abs(a * y + b - r) <= inlier_tol * r  # one refinement pass on the refit line
    if inl.sum() >= min_boxes:
        best = inl
        a, b = _line(y[best], r[best])
    if a <= 0:
        return FitResult(None, False, f"box height does not grow towards the bottom of the image (slope {a:.4g})",
                         n, int(best.sum()), None)
    cam_h, y_h = 1.0 / a, -b / a
    rms = float(np.sqrt(np.mean(((a * y[best] + b) - r[best]) ** 2 / r[best] ** 2)))
    if not -0.5 * image_height <= y_h <= image_height:
        return FitResult(None, False, f"horizon row {y_h:.0f} outside [-0.5, 1] x image height", n, int(best.sum()), rms)
    if not 0.3 <= cam_h <= 6.0:
        return FitResult(None, False, f"camera height {cam_h:.2f} m outside [0.3, 6] m", n, int(best.sum()), rms)
    if rms > max_rms:
        return FitResult(None, False, f"poor fit: relative RMS {rms:.2f} > {max_rms}", n, int(best.sum()), rms)
    return FitResult(LinearHorizon(y_h, cam_h, fy, source="fit"), True, "ok", n, int(best.sum()), rms)
