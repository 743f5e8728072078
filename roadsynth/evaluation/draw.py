"""Boxes drawn on frames for people to look at: the report's examples, the review UI and the gallery."""

from __future__ import annotations

from typing import Iterable, Literal, Mapping, Sequence

import cv2
import numpy as np

from roadsynth.datasets.records import Annotation, Box
from roadsynth.detectors.base import Prediction

BoxMode = Literal["None", "Generated", "All"]

GENERATED = (255, 60, 40)
EXISTING = (255, 255, 255)
REJECTED = (140, 140, 140)
DETECTION = (40, 200, 255)


def draw_box(img: np.ndarray, box: Box, color: tuple[int, int, int], thickness: int = 1,
             label: str | None = None) -> None:
    """One box (and its label above it) onto `img`, in place."""
    x1, y1, x2, y2 = (int(round(v)) for v in box.xyxy())
    cv2.rectangle(img, (x1, y1), (x2, y2), color, thickness)
    if label:
        cv2.putText(img, label, (x1, max(y1 - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1, cv2.LINE_AA)


def draw_boxes(rgb: np.ndarray, anns: Sequence[Annotation], names: Mapping[int, str], mode: BoxMode = "All",
               rejected: Iterable[int] = ()) -> np.ndarray:
    """Generated objects red (grey once rejected) with their id and class, existing labels white."""
    out = rgb.copy()
    if mode == "None":
        return out
    rejected = set(rejected)
    for a in anns:
        if mode == "Generated" and not a.generated:
            continue
        if not a.generated:
            draw_box(out, a.bbox, EXISTING, 1)
            continue
        gone = a.id in rejected
        draw_box(out, a.bbox, REJECTED if gone else GENERATED, 2,
                 f"#{a.id} {names.get(a.category_id, a.category_id)}" + (" (rejected)" if gone else ""))
    return out


def draw_detections(rgb: np.ndarray, detections: Iterable[Prediction], min_score: float = 0.0) -> np.ndarray:
    """A detector's boxes in cyan with class name and score, those scoring at least `min_score`."""
    out = rgb.copy()
    for d in detections:
        if d.score >= min_score:
            draw_box(out, d.box, DETECTION, 2, f"{d.name} {d.score:.2f}")
    return out


EGO = (255, 200, 0)


def shade(rgb: np.ndarray, mask: np.ndarray, color: tuple[int, int, int] = EGO, alpha: float = 0.35) -> np.ndarray:
    """`mask`'s pixels tinted towards `color`."""
    out = rgb.copy()
    if mask.any():
        out[mask] = (out[mask] * (1 - alpha) + np.asarray(color) * alpha).astype(np.uint8)
    return out


def draw_polygon(rgb: np.ndarray, points: Sequence[tuple[float, float]], color: tuple[int, int, int] = GENERATED
                 ) -> np.ndarray:
    """A polygon being drawn: its points as dots, joined in order and closed once it has three."""
    out = rgb.copy()
    pts = np.round(np.asarray(points, np.float64).reshape(-1, 2)).astype(np.int32)
    if len(pts) >= 2:
        cv2.polylines(out, [pts], len(pts) >= 3, color, 2, cv2.LINE_AA)
    for x, y in pts:
        cv2.circle(out, (int(x), int(y)), 4, color, -1, cv2.LINE_AA)
    return out
