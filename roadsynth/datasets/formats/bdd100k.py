"""BDD100K detection labels (the published JSON: one record per image with `attributes` and `labels`).

Boxes (`box2d`) keep their occluded / truncated flags; the image's weather, scene and time of day become
filterable attributes; polygon labels (drivable area, lanes) are not boxes and are left out (the
drivable-area maps, when given as `drivable_maps`, serve as label maps: 0 = direct, 1 = alternative).
"""

from __future__ import annotations

from pathlib import Path

from roadsynth.datasets.formats import Categories, Format
from roadsynth.datasets.io import ImageLoadError, image_size, inside, read_json
from roadsynth.datasets.records import Annotation, Box, Dataset, DatasetSplit, ImageRecord

CLASSES = ("pedestrian", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle", "traffic light",
           "traffic sign", "other vehicle", "other person", "trailer")
NOT_BOXES = ("drivable area", "lane", "area/drivable", "area/alternative", "area/unknown")
DRIVABLE_VALUES = (0, 1)  # drivable_maps: 0 direct, 1 alternative, 2 background


def read_bdd100k(labels: str | Path, images_root: str | Path | None, *, class_map: dict[str, str] | None = None,
                 drivable_maps: str | Path | None = None) -> DatasetSplit:
    labels = Path(labels)
    if images_root is None:
        raise ValueError(f"{labels}: BDD100K labels need `images_root` (the folder of the images they name)")
    images_root = Path(images_root)
    frames = read_json(labels, "BDD100K label file")
    if isinstance(frames, dict) and "frames" in frames:  # the Scalabel export wraps the list
        frames = frames["frames"]
    if not isinstance(frames, list):
        raise ValueError(f"{labels}: expected a list of image records, but got {type(frames).__name__}")
    cats = Categories(CLASSES, class_map)
    records, anns, problems = [], [], []
    for k, fr in enumerate(frames):
        where = f"{labels} record {k}"
        try:
            name = str(fr["name"])
            w, h = image_size(inside(images_root, name, where))
        except (KeyError, TypeError) as e:
            problems.append(f"{where}: no image `name` ({e})")
            continue
        except (ImageLoadError, ValueError) as e:
            problems.append(f"{where}: {e}")
            continue
        image_id = len(records) + 1
        attrs = {"scene": Path(name).stem, "source": f"bdd100k:{name}"}
        attrs.update({key: v for key, v in (fr.get("attributes") or {}).items() if key in ("weather", "scene", "timeofday")})
        if "scene" in (fr.get("attributes") or {}):
            attrs["scene_type"] = attrs.pop("scene")
            attrs["scene"] = Path(name).stem
        if drivable_maps is not None:
            lm = Path(drivable_maps) / f"{Path(name).stem}_drivable_id.png"
            if lm.is_file():
                attrs.update(label_map=str(lm.resolve()), road_values=list(DRIVABLE_VALUES))
        for j, lab in enumerate(fr.get("labels") or []):
            cat = str(lab.get("category", ""))
            b = lab.get("box2d")
            if b is None:
                if cat not in NOT_BOXES and not lab.get("poly2d"):
                    problems.append(f"{where} label {j}: {cat!r} has no box2d")
                continue
            try:
                box = Box.from_xyxy(float(b["x1"]), float(b["y1"]), float(b["x2"]), float(b["y2"])).clip(w, h)
            except (KeyError, TypeError, ValueError):
                problems.append(f"{where} label {j}: malformed box2d {b!r}")
                continue
            if box.w <= 0 or box.h <= 0:
                problems.append(f"{where} label {j}: box2d {b} has no area inside the {w}x{h} image")
                continue
            flags = lab.get("attributes") or {}
            anns.append(Annotation(len(anns) + 1, image_id, cats.id(cat, problems, f"{where} label {j}"), box,
                                   attributes={k2: flags[k2] for k2 in ("occluded", "truncated") if k2 in flags}))
        records.append(ImageRecord(image_id, name, w, h, attrs))
    ds = Dataset(tuple(records), tuple(anns), cats.categories(), info={"source": str(labels), "format": "bdd100k",
                                                                       "problems": problems})
    return DatasetSplit(ds, images_root)


FORMAT = Format("bdd100k", "the labels JSON (with `images_root`: the folder of the images it names)", read_bdd100k,
                 options=("class_map",), needs_images_root=True, label_maps_option="drivable_maps")
