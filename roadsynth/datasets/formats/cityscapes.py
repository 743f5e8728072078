"""Cityscapes (`leftImg8bit/`, `gtFine/`, `camera/`): boxes of the thing classes from the fine polygons,
the road as each frame's label map (label id 7), and the camera JSON (intrinsics, height, pitch) as its
camera block. The ego vehicle (label id 1) is in the label maps too."""

from __future__ import annotations

import math
from pathlib import Path

from roadsynth.datasets.formats import Categories, Format, camera_block
from roadsynth.datasets.io import ImageLoadError, image_size, read_json
from roadsynth.datasets.records import Annotation, Box, Dataset, DatasetSplit, ImageRecord

THINGS = ("person", "rider", "car", "truck", "bus", "caravan", "trailer", "train", "motorcycle", "bicycle")
# Cityscapes' other labels: regions (road, sky, ...) and objects without instances; they are not boxes. Any
# label outside both lists (a custom annotation) is kept under its own name and reported, like other readers do.
STUFF = ("unlabeled", "ego vehicle", "rectification border", "out of roi", "static", "dynamic", "ground", "road",
         "sidewalk", "parking", "rail track", "building", "wall", "fence", "guard rail", "bridge", "tunnel", "pole",
         "polegroup", "traffic light", "traffic sign", "vegetation", "terrain", "sky", "license plate")
ROAD_ID, EGO_ID = 7, 1


def read_cityscapes(root: str | Path, *, split: str = "train", class_map: dict[str, str] | None = None
                    ) -> DatasetSplit:
    root = Path(root)
    images_dir = root / "leftImg8bit" / split
    if not images_dir.is_dir():
        raise FileNotFoundError(f"{images_dir}: Cityscapes images folder (leftImg8bit/{split}) not found")
    cats = Categories(THINGS, class_map)
    records, anns, problems = [], [], []
    for p in sorted(images_dir.rglob("*_leftImg8bit.png")):
        rel = p.relative_to(images_dir)
        stem = p.name[: -len("_leftImg8bit.png")]
        try:
            w, h = image_size(p)
        except ImageLoadError as e:
            problems.append(str(e))
            continue
        image_id = len(records) + 1
        attrs: dict = {"scene": stem.rsplit("_", 1)[0], "city": rel.parts[0] if len(rel.parts) > 1 else "",
                       "source": f"cityscapes:{rel.as_posix()}"}
        gt = root / "gtFine" / split / rel.parent / f"{stem}_gtFine_labelIds.png"
        if gt.is_file():
            attrs.update(label_map=str(gt.resolve()), road_values=[ROAD_ID], ego_values=[EGO_ID])
        cam = root / "camera" / split / rel.parent / f"{stem}_camera.json"
        if cam.exists():  # a FIFO or folder by that name is reported, not skipped
            try:
                c = read_json(cam, "Cityscapes camera file")
                i, e = c["intrinsic"], c["extrinsic"]
                attrs["camera"] = camera_block(i["fx"], i["fy"], i["u0"], i["v0"], e["z"], math.degrees(e["pitch"]),
                                               "cityscapes-camera")
            except (OSError, ValueError, KeyError, TypeError) as err:
                problems.append(f"{cam}: unreadable camera file ({type(err).__name__}: {err})")
        polys = root / "gtFine" / split / rel.parent / f"{stem}_gtFine_polygons.json"
        if polys.exists():  # a FIFO or folder by that name is reported, not skipped
            try:
                objects = read_json(polys, "Cityscapes polygons file").get("objects", [])
            except (OSError, ValueError, AttributeError) as err:
                problems.append(f"{polys}: unreadable polygons ({err})")
                objects = []
            for j, o in enumerate(objects):
                label = str(o.get("label", ""))
                base = label.removesuffix("group")
                if o.get("deleted") or (base.lower() in STUFF and base.lower() not in cats.map):
                    continue
                xs = [float(pt[0]) for pt in o.get("polygon", [])]
                ys = [float(pt[1]) for pt in o.get("polygon", [])]
                if len(xs) < 3:
                    problems.append(f"{polys} object {j}: polygon with fewer than 3 points")
                    continue
                box = Box.from_xyxy(min(xs), min(ys), max(xs), max(ys)).clip(w, h)
                seg = [[round(v, 2) for xy in zip(xs, ys) for v in xy]]
                anns.append(Annotation(len(anns) + 1, image_id, cats.id(base, problems, f"{polys} object {j}"), box,
                                       iscrowd=1 if label.endswith("group") else 0,
                                       segmentation=None if label.endswith("group") else seg,
                                       attributes={"group": True} if label.endswith("group") else {}))
        records.append(ImageRecord(image_id, rel.as_posix(), w, h, attrs))
    ds = Dataset(tuple(records), tuple(anns), cats.categories(), info={"source": str(root), "format": "cityscapes",
                                                                       "split": split, "problems": problems})
    return DatasetSplit(ds, images_dir)


FORMAT = Format("cityscapes", "the dataset root (leftImg8bit/, gtFine/, camera/)",
                 lambda path, images_root=None, **options: read_cityscapes(path, **options),
                 options=("split", "class_map"), label_maps_in_path=True)
