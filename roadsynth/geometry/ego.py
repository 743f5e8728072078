"""The ego vehicle in the frame: bonnet and dashboard of a camera behind the windscreen.

Nothing may be placed on it and no inserted pixel may land on it: it is nearer than anything in the
scene, so it hides the lower part of an object standing just beyond its edge (inserters treat it as an
occluder). It comes from the scene source's config: a polygon for one camera, a bottom band, or a
folder of per-frame mask images (nonzero = ego vehicle) beside the frames, like label maps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from roadsynth.geometry.regions import polygon_mask

EGO_KEY = -1  # the ego mask's key among a frame's occluders (annotation ids are >= 1)


@dataclass(frozen=True)
class EgoMask:
    mask: np.ndarray = field(repr=False)  # HxW bool: ego-vehicle pixels
    source: str  # config-polygon | config-bottom | config-mask | none
    reason: str = ""  # why a frame has none, when it was asked for

    @property
    def any(self) -> bool:
        return bool(self.mask.any())

    def top_rows(self) -> np.ndarray:
        """Per column, the first ego row (the frame height where the column has none)."""
        h = self.mask.shape[0]
        return np.where(self.mask.any(axis=0), np.argmax(self.mask, axis=0), h)

    def describe(self) -> dict:
        return {"source": self.source, "fraction": round(float(self.mask.mean()), 4),
                **({"reason": self.reason} if self.reason else {})}


def none(width: int, height: int, reason: str = "") -> EgoMask:
    return EgoMask(np.zeros((height, width), bool), "none", reason)


def from_polygon(points: Sequence[tuple[float, float]], width: int, height: int) -> EgoMask:
    return EgoMask(polygon_mask(points, width, height, "ego polygon"), "config-polygon")


def bottom_band(frac: float, width: int, height: int) -> EgoMask:
    if not 0 < frac < 1:
        raise ValueError(f"`bottom_frac` must be in (0, 1), but got {frac}")
    m = np.zeros((height, width), bool)
    m[int(round(height * (1 - frac))):] = True
    return EgoMask(m, "config-bottom")


def from_image(path: Path, width: int, height: int) -> EgoMask:
    """A mask image (nonzero = ego vehicle) at the frame's size, or at another size of the same aspect."""
    m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise ValueError(f"{path}: ego mask image cannot be read")
    if m.shape != (height, width):
        if abs(m.shape[1] / m.shape[0] - width / height) > 0.01:
            raise ValueError(f"{path}: ego mask is {m.shape[1]}x{m.shape[0]} but the frame is {width}x{height} "
                             "(another aspect ratio: a mask of another camera?)")
        m = cv2.resize(m, (width, height), interpolation=cv2.INTER_NEAREST)
    return EgoMask(m > 0, "config-mask")
