"""Debug overlay: horizon, ground region, existing boxes and placements, so a person can check the geometry."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from roadsynth.datasets.records import Box
from roadsynth.geometry.camera import GroundModel
from roadsynth.geometry.records import Placement
from roadsynth.geometry.regions import GroundRegion


def _rect(img: np.ndarray, b: Box, color: tuple[int, int, int], thickness: int = 1) -> None:
    cv2.rectangle(img, (int(round(b.x)), int(round(b.y))), (int(round(b.x2)), int(round(b.y2))), color, thickness)


def draw_overlay(rgb: np.ndarray, camera: GroundModel, region: GroundRegion, placements: Sequence[Placement],
                 existing: Sequence[tuple[int, Box]] = (), roadside: GroundRegion | None = None) -> np.ndarray:
    out = rgb.astype(np.float32)
    tint = np.zeros_like(out)
    tint[region.mask] = (0, 200, 0)
    if roadside is not None:
        tint[roadside.mask] = (230, 200, 0)
    painted = region.mask | (roadside.mask if roadside is not None else False)
    out[painted] = 0.65 * out[painted] + 0.35 * tint[painted]
    out = np.clip(out, 0, 255).astype(np.uint8)
    h, w = out.shape[:2]
    y_h = int(round(camera.horizon_row))
    if 0 <= y_h < h:
        cv2.line(out, (0, y_h), (w - 1, y_h), (0, 255, 255), 1)
        cv2.putText(out, f"horizon ({camera.source})", (4, max(y_h - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (0, 255, 255), 1, cv2.LINE_AA)
    for _, b in existing:
        _rect(out, b, (255, 255, 255))
    for p in placements:
        _rect(out, p.box, (255, 60, 60), 2)
        if p.visible_box is not None and p.visible_box != p.box:
            _rect(out, p.visible_box, (255, 160, 0))
        cx, cy = int(round(p.contact[0])), int(round(p.contact[1]))
        cv2.circle(out, (cx, cy), 3, (255, 0, 255), -1)
        label = p.category + (f" {p.distance_m:.0f}m" if p.distance_m else "") + (f" {p.real_height_m:.1f}m tall"
                                                                                 if p.real_height_m else "")
        cv2.putText(out, label, (int(p.box.x), max(int(p.box.y) - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (255, 60, 60), 1, cv2.LINE_AA)
    return out
