"""Low-level consistency of an object with its surroundings: the realism audit.

The same box-based scores are computed for inserted objects and for the real labelled objects of the
same frames, so their distributions can be compared (manifest, experiment report, benchmark):

- `log_luminance`: log(mean luma inside / mean luma of the ring around the box); a daylight cut-out in a
  night frame is far above 0;
- `log_sharpness`: log(std of the Laplacian inside / in the ring), measured at the same scale; a crisp
  cut-out in a soft, motion-blurred frame is above 0, an up-scaled one below;
- `log_noise`: log(sensor-noise sigma inside / in the ring) (Immerkaer's estimator on the flattest half of
  each region); a clean cut-out on a grainy night frame is below 0;
- `seam` (inserted objects with a silhouette only): mean gradient on the silhouette's edge relative to the
  gradients just inside and outside it; a halo or a hard cut line is well above 1.

The object region is the central part of the box (a margin of 15 % of its size), the ring a band around
the box of `ring_px(box)` pixels, both clipped to the image. Scores are None when a region is too small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from roadsynth.datasets.records import Box
from roadsynth.evaluation.stats import paired_bootstrap_diff

DARK_FRAME_LUMA = 70.0  # mean luma (0-255) below which a frame counts as dark (night, dusk, tunnels)
_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def ring_px(box: Box) -> int:
    return int(max(6, round(0.15 * min(box.w, box.h))))


def luma(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def gradient(gray: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude (float32) of a grey image; shared by the noise, blur and seam measures."""
    g = gray.astype(np.float32)
    return cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))


def noise_sigma(gray: np.ndarray, region: np.ndarray | None = None, grad: np.ndarray | None = None,
                resp: np.ndarray | None = None) -> float | None:
    """Immerkaer's (1996) noise estimate over the flattest half of `region` (texture would read as noise).
    `grad`, `resp`: `gradient(gray)` and `noise_response(gray)` when the caller has them already."""
    g = gray.astype(np.float32)
    resp = noise_response(g) if resp is None else resp
    grad = gradient(g) if grad is None else grad
    inner = np.zeros(g.shape, bool)
    inner[1:-1, 1:-1] = True
    sel = inner if region is None else (inner & region)
    if np.count_nonzero(sel) < 30:
        return None
    # The flatter part of the region: gradients at most its mean (texture would read as noise).
    flat = sel & (grad <= cv2.mean(grad, mask=sel.view(np.uint8))[0])
    return float(cv2.mean(resp, mask=flat.view(np.uint8))[0] * math.sqrt(math.pi / 2) / 6)


def noise_response(gray: np.ndarray) -> np.ndarray:
    """|Immerkaer's Laplacian difference| per pixel (float32): zero on any plane, noise on flat ground."""
    return np.abs(cv2.filter2D(gray.astype(np.float32, copy=False), -1, _NOISE_KERNEL, borderType=cv2.BORDER_REFLECT))


def box_window(box: Box, shape: tuple[int, int], margin: int) -> tuple[slice, slice]:
    """The rows and columns of `box` (its integer pixels, in an image of `shape`) grown by `margin`, clipped."""
    h, w = shape
    return (slice(max(int(box.y) - margin, 0), min(int(math.ceil(box.y2)) + margin, h)),
            slice(max(int(box.x) - margin, 0), min(int(math.ceil(box.x2)) + margin, w)))


def regions(shape: tuple[int, int], box: Box) -> tuple[np.ndarray, np.ndarray]:
    """(object, ring) boolean masks of an image of `shape` for an object box in its pixel coordinates."""
    h, w = shape
    mx, my = 0.15 * box.w, 0.15 * box.h
    obj = np.zeros((h, w), bool)
    obj[max(int(box.y + my), 0):max(int(box.y2 - my), 0), max(int(box.x + mx), 0):max(int(box.x2 - mx), 0)] = True
    r = ring_px(box)
    ring = np.zeros((h, w), bool)
    ring[max(int(box.y) - r, 0):max(int(math.ceil(box.y2)) + r, 0), max(int(box.x) - r, 0):max(int(math.ceil(box.x2)) + r, 0)] = True
    ring[max(int(box.y), 0):max(int(math.ceil(box.y2)), 0), max(int(box.x), 0):max(int(math.ceil(box.x2)), 0)] = False
    return obj, ring


def _log_ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or a <= 0 or b <= 0:
        return None
    return round(math.log(a / b), 4)


def object_scores(img: np.ndarray, box: Box, silhouette: np.ndarray | None = None) -> dict[str, Any]:
    """The realism scores of one object (box in `img`'s pixels; only its surroundings are read).
    `silhouette`, when given, is an object mask of `img`'s size (for the seam score)."""
    win = box_window(box, img.shape[:2], ring_px(box))
    if win[0].stop - win[0].start < 4 or win[1].stop - win[1].start < 4:
        return {"log_luminance": None, "log_sharpness": None, "log_noise": None}
    img = img[win]
    silhouette = None if silhouette is None else silhouette[win]
    box = Box(box.x - win[1].start, box.y - win[0].start, box.w, box.h)
    gray = luma(img)
    obj, ring = regions(gray.shape, box)
    if obj.sum() < 30 or ring.sum() < 30:
        return {"log_luminance": None, "log_sharpness": None, "log_noise": None}
    g = gray.astype(np.float32)
    lap = np.abs(cv2.Laplacian(cv2.GaussianBlur(g, (0, 0), 0.7), cv2.CV_32F))
    grad, resp = gradient(g), noise_response(g)
    out = {
        "log_luminance": _log_ratio(float(g[obj].mean()) + 1.0, float(g[ring].mean()) + 1.0),
        "log_sharpness": _log_ratio(float(lap[obj].std()) + 0.5, float(lap[ring].std()) + 0.5),
        "log_noise": _log_ratio(noise_sigma(g, obj, grad, resp), noise_sigma(g, ring, grad, resp)),
    }
    if silhouette is not None:
        out["seam"] = seam_score(g, silhouette, grad)
    return out


def seam_score(gray: np.ndarray, silhouette: np.ndarray, grad: np.ndarray | None = None) -> float | None:
    """Mean gradient on the silhouette's edge over the mean gradient in bands just inside and outside it."""
    m = silhouette.astype(np.uint8)
    if m.sum() < 30:
        return None
    k = np.ones((3, 3), np.uint8)
    edge = (cv2.dilate(m, k) - cv2.erode(m, k)).astype(bool)
    inside = (cv2.erode(m, k, iterations=4) - cv2.erode(m, k, iterations=2)).astype(bool)
    outside = (cv2.dilate(m, k, iterations=4) - cv2.dilate(m, k, iterations=2)).astype(bool)
    if inside.sum() < 10 or outside.sum() < 10:
        return None
    grad = gradient(gray) if grad is None else grad
    ref = max(float(grad[inside].mean()), float(grad[outside].mean()), 1.0)
    return round(float(grad[edge].mean()) / ref, 4)


def frame_is_dark(img: np.ndarray) -> bool:
    return float(luma(img).mean()) < DARK_FRAME_LUMA


def summarize(inserted: list[dict], real: list[dict]) -> dict[str, Any]:
    """Medians of |log luminance| (and its sign), log sharpness, log noise and seam for inserted vs real objects,
    overall and in dark frames (each score dict carries `dark`, and `frame` for the interval), with the counts
    they come from, and two gaps (inserted - real medians) with 95 % intervals over frames:

    - `log_sharpness_gap`: the sharpness score as it is;
    - `log_sharpness_per_luminance_gap`: log sharpness - log luminance per object. The Laplacian's std grows
      with the object's brightness, so an object brighter than its ring scores sharper at the same blur; this
      gap takes that out. Where the two gaps disagree, brightness, not blur, made the difference.
    """
    def med(rows: list[dict], key: str, absolute: bool = False) -> float | None:
        v = [abs(r[key]) if absolute else r[key] for r in rows if r.get(key) is not None]
        return round(float(np.median(v)), 4) if v else None

    def per_luminance(rows: list[dict]) -> list[dict]:
        return [{**r, "per_luminance": r["log_sharpness"] - r["log_luminance"]} for r in rows
                if r.get("log_sharpness") is not None and r.get("log_luminance") is not None]

    out: dict[str, Any] = {}
    for scope, keep in (("all", lambda r: True), ("dark", lambda r: r.get("dark"))):
        ins, rea = [r for r in inserted if keep(r)], [r for r in real if keep(r)]
        out[scope] = {
            "inserted": {"n": len(ins), "abs_log_luminance": med(ins, "log_luminance", True),
                         "log_luminance": med(ins, "log_luminance"),
                         "log_sharpness": med(ins, "log_sharpness"), "log_noise": med(ins, "log_noise"),
                         "seam": med(ins, "seam")},
            "real": {"n": len(rea), "abs_log_luminance": med(rea, "log_luminance", True),
                     "log_luminance": med(rea, "log_luminance"),
                     "log_sharpness": med(rea, "log_sharpness"), "log_noise": med(rea, "log_noise")},
            "log_sharpness_gap": median_gap(ins, rea, "log_sharpness"),
            "log_sharpness_per_luminance_gap": median_gap(per_luminance(ins), per_luminance(rea), "per_luminance"),
        }
    return out


def median_gap(inserted: list[dict], real: list[dict], key: str, n_boot: int = 1000, seed: int = 0
               ) -> dict[str, Any] | None:
    """Median of `key` over inserted minus over real objects, with a 95 % bootstrap interval that resamples
    frames (objects of one frame share its light and blur, so they are not independent draws)."""
    frames: dict[Any, tuple[list[float], list[float]]] = {}
    for i, (rows, side) in enumerate(((inserted, 0), (real, 1))):
        for j, r in enumerate(rows):
            if r.get(key) is not None:
                frames.setdefault(r.get("frame", (i, j)), ([], []))[side].append(float(r[key]))
    groups = list(frames.values())
    if sum(len(g[0]) for g in groups) < 5 or sum(len(g[1]) for g in groups) < 5:
        return None

    def gap(sample: np.ndarray) -> float:
        a = [v for k in sample for v in groups[k][0]]
        b = [v for k in sample for v in groups[k][1]]
        return float(np.median(a) - np.median(b)) if a and b else math.nan

    point, lo, hi = paired_bootstrap_diff(gap, range(len(groups)), n_boot, seed)
    return {"median": round(point, 4), "ci95": [round(lo, 4), round(hi, 4)], "frames": len(groups)}


@dataclass(frozen=True)
class RealismLimits:
    """Bounds on an inserted object's realism scores after matching (the `insert.realism_limits` section);
    an object outside any of them is rejected with the score named. None = not checked."""

    __pydantic_config__ = {"extra": "forbid"}  # unknown YAML keys are errors (a plain dict: no pydantic import)

    max_abs_log_luminance: float | None = None
    max_abs_log_sharpness: float | None = None
    max_abs_log_noise: float | None = None
    max_seam: float | None = None

    def violation(self, scores: dict[str, Any]) -> str | None:
        for key, limit, absolute in (("log_luminance", self.max_abs_log_luminance, True),
                                     ("log_sharpness", self.max_abs_log_sharpness, True),
                                     ("log_noise", self.max_abs_log_noise, True), ("seam", self.max_seam, False)):
            v = scores.get(key)
            if limit is not None and v is not None and (abs(v) if absolute else v) > limit:
                return f"realism: {'|' + key + '|' if absolute else key} {abs(v) if absolute else v:.2f} > {limit:g}"
        return None
