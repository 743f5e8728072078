"""Placement records: where a new object goes, and why (consumed by every inserter)."""

from __future__ import annotations

from dataclasses import dataclass, field

from roadsynth.datasets.records import Box


@dataclass(frozen=True)
class Placement:
    """One object to insert into one frame.

    `box` is the full (unclipped, unoccluded) extent of the object in pixels; `visible_box` is what
    stays visible after clipping to the image and occlusion by nearer existing objects.
    """

    category: str
    box: Box
    contact: tuple[float, float]  # ground-contact point (x, y) in pixels: bottom centre of the object
    distance_m: float | None = None  # metric distance along the ground, when the camera is known
    real_height_m: float | None = None  # the size prior drawn for this object
    scale_source: str = "config"  # "camera-config" | "fit" | "fallback" | "linear-horizon"...
    region_source: str = "config"  # "annotation" | "config" | "estimate" | "lower-image"...
    occluders: tuple[int, ...] = ()  # annotation ids of nearer existing objects overlapping the box
    visible_box: Box | None = None
    truncated: bool = False
    params: dict = field(default_factory=dict)  # extra explainable parameters (horizon row, etc.)

    def to_dict(self) -> dict:
        return {
            "category": self.category,
            "box": self.box.xywh(),
            "contact": list(self.contact),
            "distance_m": self.distance_m,
            "real_height_m": self.real_height_m,
            "scale_source": self.scale_source,
            "region_source": self.region_source,
            "occluders": list(self.occluders),
            "visible_box": self.visible_box.xywh() if self.visible_box else None,
            "truncated": self.truncated,
            **({"params": self.params} if self.params else {}),
        }
