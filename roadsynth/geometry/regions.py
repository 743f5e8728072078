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


def polygon_mask(points: Sequence[tuple[float, float]], width: int, height: int, what: str = "polygon") -> np.ndarray:
    """A filled polygon (image pixel coordinates) as a boolean mask of the image's size."""
    if len(points) < 3:
        raise ValueError(f"a {what} needs at least 3 points, but got {len(points)}")
    m = np.zeros((height, width), np.uint8)
    cv2.fillPoly(m, [np.round(np.asarray(points, float)).astype(np.int32)], 1)
    return m.astype(bool)


def from_polygon(points: Sequence[tuple[float, float]], width: int, height: int) -> GroundRegion:
    return GroundRegion(polygon_mask(points, width, height, "ground polygon"), "config")


class RegionError(ValueError):
    """A frame's drivable region cannot be found, or what was found is implausible (the message says why)."""


def implausible(region: np.ndarray, horizon_row: float, allowed: np.ndarray) -> str | None:
    """Why an estimated region cannot be the road ahead, or None. `allowed` is where ground can be at all
    (below the horizon, off the ego vehicle)."""
    h = region.shape[0]
    room = int(allowed.sum())
    if room == 0:
        return "no ground below the horizon outside the ego vehicle"
    share = float(region.sum()) / room
    if share < 0.02:
        return f"almost no ground found ({share:.1%} of the area below the horizon)"
    if share > 0.95:
        return f"the estimate took {share:.0%} of the area below the horizon (a flood through the whole frame)"
    rows = np.nonzero(region.any(axis=1))[0]
    below = max(h - max(horizon_row, 0), 1)
    if (rows[0] - max(horizon_row, 0)) / below > 0.7:
        return ("the estimate stays in the bottom of the frame and never reaches towards the horizon "
                "(a bonnet or dashboard? give the scene source an `ego` mask)")
    return None


def estimate(rgb: np.ndarray, horizon_row: float, tolerance: int = 18, ego: np.ndarray | None = None) -> GroundRegion:
    """Colour flood fill from a patch at the bottom centre (just above the ego vehicle, when one is given),
    below the horizon. Seeds further up are tried when a region is implausible; RegionError if none is."""
    h, w = rgb.shape[:2]
    top = int(np.clip(horizon_row + 0.02 * h, 0, h - 1))
    allowed = np.zeros((h, w), bool)
    allowed[top:] = True
    if ego is not None:
        allowed &= ~ego
    smooth = cv2.GaussianBlur(rgb, (0, 0), 2)[..., ::-1].copy()
    flags = 4 | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (255 << 8)
    start = int(h * 0.92)
    if ego is not None and ego[:, w // 2].any():
        start = int(np.argmax(ego[:, w // 2])) - max(int(0.02 * h), 2)
    why = "no seed below the horizon"
    for y in range(start, top, -max(int(0.05 * h), 1)):  # up the centre column, 5 % of the height at a time
        mask = np.zeros((h + 2, w + 2), np.uint8)
        mask[1:-1, 1:-1][~allowed] = 1  # the flood cannot enter the sky or the ego vehicle
        cv2.floodFill(smooth, mask, (w // 2, y), (0, 0, 0), (tolerance,) * 3, (tolerance,) * 3, flags)
        region = (mask[1:-1, 1:-1] == 255) & allowed
        region = cv2.morphologyEx(region.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8)).astype(bool)
        region &= allowed
        why = implausible(region, horizon_row, allowed)
        if why is None:
            return GroundRegion(region, "estimate")
    raise RegionError(f"drivable-region estimate failed: {why}")


def lower_image(width: int, height: int, horizon_row: float, ego: np.ndarray | None = None,
                reason: str = "") -> GroundRegion:
    """The image below the horizon, minus the ego vehicle: a fallback a config must ask for explicitly."""
    m = np.zeros((height, width), bool)
    m[int(np.clip(horizon_row + 0.02 * height, 0, height)) :] = True
    if ego is not None:
        m &= ~ego
    return GroundRegion(m, "lower-image" + (f" (fallback: {reason})" if reason else ""))


def roadside(region: GroundRegion, horizon_row: float, band_px: int = 25) -> GroundRegion:
    """The band just outside the drivable area (verge, shoulder), below the horizon."""
    k = np.ones((2 * band_px + 1, 2 * band_px + 1), np.uint8)
    band = (cv2.dilate(region.mask.astype(np.uint8), k) > 0) & ~region.mask
    band[: int(max(horizon_row, 0)) + 1] = False
    return GroundRegion(band, f"{region.source}+roadside")
