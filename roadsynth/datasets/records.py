"""Frozen records for images, annotations and categories (COCO semantics, pixel units).

Everything downstream (geometry, generators, detectors, evaluation) speaks these types; only
`datasets.coco` / `datasets.yolo` know the on-disk formats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in COCO `xywh` pixel convention (x, y = top-left corner)."""

    x: float
    y: float
    w: float
    h: float

    @classmethod
    def from_xyxy(cls, x1: float, y1: float, x2: float, y2: float) -> "Box":
        return cls(float(x1), float(y1), float(x2) - float(x1), float(y2) - float(y1))

    @property
    def x2(self) -> float:
        return self.x + self.w

    @property
    def y2(self) -> float:
        return self.y + self.h

    @property
    def area(self) -> float:
        return max(self.w, 0.0) * max(self.h, 0.0)

    @property
    def center(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y + self.h / 2)

    @property
    def bottom_center(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y2)

    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.x2, self.y2)

    def xywh(self) -> list[float]:
        return [self.x, self.y, self.w, self.h]

    def is_finite(self) -> bool:
        return all(math.isfinite(v) for v in (self.x, self.y, self.w, self.h))

    def intersection(self, other: "Box") -> float:
        iw = min(self.x2, other.x2) - max(self.x, other.x)
        ih = min(self.y2, other.y2) - max(self.y, other.y)
        return iw * ih if iw > 0 and ih > 0 else 0.0

    def iou(self, other: "Box") -> float:
        inter = self.intersection(other)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def clip(self, width: float, height: float) -> "Box":
        x1, y1 = min(max(self.x, 0.0), width), min(max(self.y, 0.0), height)
        x2, y2 = min(max(self.x2, 0.0), width), min(max(self.y2, 0.0), height)
        return Box.from_xyxy(x1, y1, x2, y2)

    def scale(self, sx: float, sy: float | None = None) -> "Box":
        sy = sx if sy is None else sy
        return Box(self.x * sx, self.y * sy, self.w * sx, self.h * sy)


@dataclass(frozen=True)
class Category:
    id: int
    name: str
    supercategory: str = ""


@dataclass(frozen=True)
class Provenance:
    """Where a generated annotation came from; written into the COCO annotation as `provenance`."""

    method: str  # "paste", "inpaint", "restyle", ...
    source: str  # cut-out id / model id
    seed: int
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "source": self.source, "seed": self.seed, **dict(self.params)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Provenance":
        d = dict(d)
        return cls(method=str(d.pop("method")), source=str(d.pop("source", "")), seed=int(d.pop("seed", 0)), params=d)


@dataclass(frozen=True)
class ImageRecord:
    id: int
    file_name: str  # relative to the dataset's images root, POSIX separators
    width: int
    height: int
    # Free-form, round-tripped into the COCO image dict: `scene` (frames of one scene stay in one split),
    # `source`, `condition` tags, ...
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def scene(self) -> str:
        return str(self.attributes.get("scene", self.file_name))


@dataclass(frozen=True)
class Annotation:
    id: int
    image_id: int
    category_id: int
    bbox: Box
    area: float | None = None
    iscrowd: int = 0
    segmentation: Any = None  # COCO polygons (list of flat lists) or RLE dict
    provenance: Provenance | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def generated(self) -> bool:
        """Made or changed by roadsynth (inserted, restyled); a detector's pseudo-label only found an
        existing object, so it is not."""
        return self.provenance is not None and self.provenance.method != PSEUDO_LABEL


PSEUDO_LABEL = "pseudo-label"  # provenance method of labels a detector found in an unlabelled frame


@dataclass(frozen=True)
class Dataset:
    """An in-memory COCO dataset. Ids are unique within each table (checked by `validate`)."""

    images: tuple[ImageRecord, ...]
    annotations: tuple[Annotation, ...]
    categories: tuple[Category, ...]
    info: Mapping[str, Any] = field(default_factory=dict)

    def category_by_name(self, name: str) -> Category:
        for c in self.categories:
            if c.name.lower() == name.lower():
                return c
        raise KeyError(f"category `{name}` not in dataset (have {[c.name for c in self.categories]})")

    def annotations_by_image(self) -> dict[int, list[Annotation]]:
        out: dict[int, list[Annotation]] = {im.id: [] for im in self.images}
        for a in self.annotations:
            out.setdefault(a.image_id, []).append(a)
        return out

    def image(self, image_id: int) -> ImageRecord:
        """The image record with this id."""
        try:
            return self._index[0][image_id]
        except KeyError:
            raise KeyError(f"image id {image_id} is not in the dataset") from None

    def annotations_of(self, image_id: int) -> list[Annotation]:
        """The annotations of one image, in file order."""
        return list(self._index[1].get(image_id, ()))

    @cached_property
    def _index(self) -> tuple[dict[int, ImageRecord], dict[int, list[Annotation]]]:
        # Built once per dataset (the records are frozen): generation looks up every frame it draws, and a
        # scan per frame is quadratic on a BDD100K-sized source (70k images, 1.3M boxes).
        return {im.id: im for im in self.images}, self.annotations_by_image()

    def with_(self, **changes: Any) -> "Dataset":
        return replace(self, **changes)


@dataclass(frozen=True)
class DatasetSplit:
    """A COCO dataset and the folder its `ImageRecord.file_name`s are relative to."""

    dataset: Dataset
    images_root: Path
