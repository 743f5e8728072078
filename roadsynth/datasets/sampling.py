"""Scene selection: which frames of a source may serve as backgrounds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from roadsynth.datasets.records import Dataset, ImageRecord


@dataclass(frozen=True)
class SceneFilter:
    """Which frames of a scene source may serve as backgrounds (also the `filter` section of a scene source)."""

    __pydantic_config__ = {"extra": "forbid"}  # unknown YAML keys are errors (a plain dict: no pydantic import)

    require_categories: tuple[str, ...] = ()  # frame must contain each (case-insensitive names)
    exclude_categories: tuple[str, ...] = ()  # frame must contain none
    min_box_area: float = 0.0  # required categories count only with boxes at least this large (px^2)
    max_objects: int | None = None  # skip crowded frames
    min_width: int = 0
    min_height: int = 0
    attributes: Mapping[str, Any] = field(default_factory=dict)  # image metadata equality, e.g. {"scene": "0016E5"}


def select_images(ds: Dataset, flt: SceneFilter) -> list[ImageRecord]:
    names = {c.id: c.name.lower() for c in ds.categories}
    required = {n.lower() for n in flt.require_categories}
    excluded = {n.lower() for n in flt.exclude_categories}
    by_image = ds.annotations_by_image()
    out = []
    for im in ds.images:
        if im.width < flt.min_width or im.height < flt.min_height:
            continue
        if any(im.attributes.get(k) != v for k, v in flt.attributes.items()):
            continue
        anns = by_image.get(im.id, [])
        if flt.max_objects is not None and len(anns) > flt.max_objects:
            continue
        present = {names[a.category_id] for a in anns}
        if present & excluded:
            continue
        big = {names[a.category_id] for a in anns if a.bbox.area >= flt.min_box_area}
        if not required <= big:
            continue
        out.append(im)
    return out
