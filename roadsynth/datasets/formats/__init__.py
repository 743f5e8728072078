"""Readers of the public driving datasets' own layouts, each into a `DatasetSplit` whose image records carry
a `camera` block when the dataset is calibrated (`fx fy cx cy height_m pitch_deg source`): the geometry
then sizes objects from the real camera (`scale_source: calibration`) instead of fitting or guessing.

Every reader keeps what a perception team slices by (weather, time of day, occlusion, truncation) as
attributes, and reports what it could not read, one line per item, in `info["problems"]`; an unknown
class is kept under its own name (or mapped with `class_map`) and reported, never dropped. Each module
declares its layout as a `Format` (below); `datasets/registry.py` lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from roadsynth.datasets.records import DatasetSplit

@dataclass(frozen=True)
class Format:
    """A dataset layout roadsynth reads, declared by its reader module as `FORMAT` and listed once in
    `datasets/registry.py`; the CLI, configs, scene sources, experiment data and `import` take it from there.

    `read(path, images_root, **options)` returns a `DatasetSplit` and lists what it could not read, one line per
    item, in `info["problems"]`. `read_frames(path, images_root, max_pixels, **options)`, where given, is how a
    scene source reads it (bad records skipped, each problem as {"file", "error"}); by default `read` is, with
    its problems attributed to `path`."""

    name: str
    path: str  # what a source's `path` names in this layout (help texts, docs)
    read: Callable[..., DatasetSplit]
    options: tuple[str, ...] = ()  # the reader options it takes beyond a path (`config.base.ReaderOptions`)
    needs_images_root: bool = False
    read_frames: Callable[..., DatasetSplit] | None = None
    label_maps_option: str | None = None  # the reader option a scene source's `label_maps` goes to
    label_maps_in_path: bool = False  # its root holds its own label maps (trusted like a declared `label_maps`)
    # Frames from any camera (a bonnet may be in view) rather than a documented rig: a scene source without
    # `ego` gets a warning.
    any_camera: bool = False


def camera_block(fx: float, fy: float, cx: float, cy: float, height_m: float, pitch_deg: float, source: str) -> dict:
    return {"fx": round(float(fx), 4), "fy": round(float(fy), 4), "cx": round(float(cx), 4), "cy": round(float(cy), 4),
            "height_m": round(float(height_m), 4), "pitch_deg": round(float(pitch_deg), 4), "source": source}


class Categories:
    """Category ids by name in first-seen order, with an optional `class_map` (source class -> output name);
    names outside `known` are kept and reported once each."""

    def __init__(self, known: tuple[str, ...] = (), class_map: dict[str, str] | None = None):
        self.known = {k.lower() for k in known}
        self.map = {k.lower(): v for k, v in (class_map or {}).items()}
        self.ids: dict[str, int] = {}
        self.names: dict[str, str] = {}
        self.reported: set[str] = set()

    def id(self, name: str, problems: list[str], where: str) -> int:
        out = self.map.get(name.lower(), name)
        if name.lower() not in self.known and name.lower() not in self.map and name.lower() not in self.reported:
            self.reported.add(name.lower())
            problems.append(f"{where}: class {name!r} is not one of the format's classes; kept as its own category "
                            "(map it with class_map)")
        key = out.lower()
        if key not in self.ids:
            self.ids[key] = len(self.ids) + 1
            self.names[key] = out
        return self.ids[key]

    def categories(self):
        from roadsynth.datasets.records import Category

        return tuple(Category(i, self.names[k], supercategory(self.names[k])) for k, i in self.ids.items())


_SUPER = {
    "vehicle": ("car", "van", "truck", "bus", "tram", "train", "motorcycle", "bicycle", "ambulance", "fire truck",
                "police car", "caravan", "trailer", "construction_vehicle", "emergency", "vehicle"),
    "person": ("person", "pedestrian", "person_sitting", "cyclist", "rider"),
    "animal": ("deer", "cow", "horse", "sheep", "dog", "cat", "bird", "animal"),
}


def supercategory(name: str) -> str:
    """COCO supercategory of a class name (vehicle, person, animal; `other` for the rest)."""
    n = name.lower().replace(".", " ").replace("-", " ")
    for sup, words in _SUPER.items():
        if any(n == w or n.endswith(" " + w) or n.startswith(w + " ") or w in n.split() for w in words):
            return sup
    return "other"
