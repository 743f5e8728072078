"""Where objects may stand: the drivable ground (and a roadside band for animals).

A region is a boolean mask (exact containment tests, cheap sampling per row) with a shapely polygon
view for drawing and reporting. Sources, in order: a label map of the frame (`annotation`), a static
polygon per camera (`config`), or a classical estimate (`estimate`): the area below the horizon that is
colour-connected to a patch at the bottom centre of the frame, where the ego lane almost always is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
from shapely.geometry import MultiPolygon, Polygon
from shapely.ops import unary_union


@dataclass(frozen=True)
class GroundRegion:
    mask: np.ndarray  # HxW bool: allowed ground-contact pixels
    source: str  # annotation | config | estimate | lower-image

    def contains(self, x: float, y: float) -> bool:
        h, w = self.mask.shape
        xi, yi = int(x), int(y)
        return 0 <= xi < w and 0 <= yi < h and bool(self.mask[yi, xi])

    def polygon(self, simplify_px: float = 1.5) -> Polygon | MultiPolygon:
        contours, _ = cv2.findContours(self.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        polys = [Polygon(c[:, 0, :]).buffer(0) for c in contours if len(c) >= 3]
        return unary_union(polys).simplify(simplify_px) if polys else Polygon()

    def area_fraction(self) -> float:
        return float(self.mask.mean())


def from_mask(mask: np.ndarray, source: str = "annotation", min_component_px: int = 200) -> GroundRegion:
    # Specks of road label (a puddle of 'road' pixels between cars) are no place to stand.
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_component_px
    return GroundRegion(keep[labels], source)


def from_polygon(points: Sequence[tuple[float, float]], width: int, height: int) -> GroundRegion:
    if len(points) < 3:
        raise ValueError(f"a ground polygon needs at least 3 points, but got {len(points)}")
    m = np.zeros((height, width), np.uint8)
    cv2.fillPoly(m, [np.round(np.asarray(points, float)).astype(np.int32)], 1)
    return GroundRegion(m.astype(bool), "config")


def estimate(rgb: np.ndarray, horizon_row: float, tolerance: int = 18) -> GroundRegion:
    """Colour flood fill from the bottom-centre patch, limited to below the horizon."""
    h, w = rgb.shape[:2]
    top = int(np.clip(horizon_row + 0.02 * h, 0, h - 1))
    smooth = cv2.GaussianBlur(rgb, (0, 0), 2)
    mask = np.zeros((h + 2, w + 2), np.uint8)
    flags = 4 | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (255 << 8)
    seed = (w // 2, int(h * 0.92))
    cv2.floodFill(smooth[..., ::-1].copy(), mask, seed, (0, 0, 0), (tolerance,) * 3, (tolerance,) * 3, flags)
    region = mask[1:-1, 1:-1] > 0
    region[:top] = False
    region = cv2.morphologyEx(region.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8)).astype(bool)
    return GroundRegion(region, "estimate")


def lower_image(width: int, height: int, horizon_row: float) -> GroundRegion:
    m = np.zeros((height, width), bool)
    m[int(np.clip(horizon_row + 0.02 * height, 0, height)) :] = True
    return GroundRegion(m, "lower-image")


def roadside(region: GroundRegion, horizon_row: float, band_px: int = 25) -> GroundRegion:
    """The band just outside the drivable area (verge, shoulder), below the horizon."""
    k = np.ones((2 * band_px + 1, 2 * band_px + 1), np.uint8)
    band = (cv2.dilate(region.mask.astype(np.uint8), k) > 0) & ~region.mask
    band[: int(max(horizon_row, 0)) + 1] = False
    return GroundRegion(band, f"{region.source}+roadside")
