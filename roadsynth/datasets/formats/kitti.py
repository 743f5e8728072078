"""KITTI object detection (`image_2/`, `label_2/`, `calib/`): boxes with truncation and occlusion, DontCare
as ignore regions, and camera 2's intrinsics as each image's camera block."""

from __future__ import annotations

from pathlib import Path

from roadsynth.datasets.formats import Categories, Format, camera_block
from roadsynth.datasets.io import IMAGE_SUFFIXES, ImageLoadError, image_size
from roadsynth.datasets.records import Annotation, Box, Dataset, DatasetSplit, ImageRecord

CLASSES = ("Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram", "Misc")
CAMERA_HEIGHT_M = 1.65  # KITTI's camera above the road (the calib files hold no mounting height)


def read_calib_p2(path: Path) -> list[float]:
    for line in path.read_text().splitlines():
        key, _, vals = line.partition(":")
        if key.strip() == "P2":
            p2 = [float(v) for v in vals.split()]
            if len(p2) != 12:
                raise ValueError(f"{path}: `P2` must hold 12 numbers, but has {len(p2)}")
            return p2
    raise ValueError(f"{path}: no `P2` line")


def read_kitti(root: str | Path, *, class_map: dict[str, str] | None = None,
               camera_height_m: float = CAMERA_HEIGHT_M) -> DatasetSplit:
    root = Path(root)
    images_dir = root / "image_2"
    if not images_dir.is_dir():
        raise FileNotFoundError(f"{images_dir}: KITTI images folder (image_2) not found")
    cats = Categories(CLASSES, class_map)
    records, anns, problems = [], [], []
    for image_id, p in enumerate(sorted(q for q in images_dir.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES), 1):
        try:
            w, h = image_size(p)
        except ImageLoadError as e:
            problems.append(str(e))
            continue
        attrs: dict = {"scene": p.stem, "source": f"kitti:{p.name}"}
        calib = root / "calib" / f"{p.stem}.txt"
        try:
            p2 = read_calib_p2(calib)
            attrs["camera"] = camera_block(p2[0], p2[5], p2[2], p2[6], camera_height_m, 0.0, "kitti-calib")
        except (OSError, ValueError) as e:
            problems.append(f"{calib}: {e}; the frame has no calibration")
        ignore = []
        label = root / "label_2" / f"{p.stem}.txt"
        for n, line in enumerate(label.read_text().splitlines() if label.exists() else [], start=1):
            parts = line.split()
            if not parts:
                continue
            try:
                vals = [float(v) for v in parts[1:15]]
                if len(vals) != 14:
                    raise ValueError(f"expected 15 fields, got {len(parts)}")
            except ValueError as e:
                problems.append(f"{label}:{n}: {e}")
                continue
            trunc, occl, alpha, x1, y1, x2, y2, hh, ww, ll, x, y, z, ry = vals
            box = Box.from_xyxy(x1, y1, x2, y2).clip(w, h)
            if parts[0] == "DontCare":
                ignore.append([round(v, 2) for v in box.xywh()])
                continue
            if box.w <= 0 or box.h <= 0:
                problems.append(f"{label}:{n}: box {x1, y1, x2, y2} has no area inside the {w}x{h} image")
                continue
            anns.append(Annotation(len(anns) + 1, image_id, cats.id(parts[0], problems, f"{label}:{n}"), box,
                                   attributes={"truncated": trunc, "occluded": int(occl), "alpha": alpha,
                                               "dimensions_m": [hh, ww, ll], "location_m": [x, y, z],
                                               "rotation_y": ry}))
        if ignore:
            attrs["ignore_regions"] = ignore
        records.append(ImageRecord(image_id, p.name, w, h, attrs))
    ds = Dataset(tuple(records), tuple(anns), cats.categories(), info={"source": str(root), "format": "kitti",
                                                                       "problems": problems})
    return DatasetSplit(ds, images_dir)


FORMAT = Format("kitti", "the dataset root (image_2/, label_2/, calib/)",
                lambda path, images_root=None, **options: read_kitti(path, **options), options=("class_map",))
