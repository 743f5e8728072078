"""Frames with per-pixel label maps (CamVid style) as a COCO `Dataset`.

A label map gives two things a box dataset does not: the drivable ground (`road_values`) and, for
classes listed in `object_values`, approximate boxes from connected pixel blobs. Blob boxes merge
touching instances (a queue of parked cars becomes one box); that is the honest limit of this source
and is recorded on each annotation (`attributes.box_source = "label-map-blob"`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import cv2
import numpy as np
from PIL import Image

from roadsynth.datasets.io import IMAGE_SUFFIXES, MAX_PIXELS, ImageLoadError, image_size
from roadsynth.datasets.records import Annotation, Box, Category, Dataset, ImageRecord

def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: images folder not found")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def scene_of(file_name: str, scene_regex: str | None) -> str:
    """Scene id of a frame: group 1 of `scene_regex` on the file name, else the file stem."""
    if scene_regex:
        m = re.search(scene_regex, Path(file_name).name)
        if m:
            return m.group(1)
    return Path(file_name).stem


def label_map_path(label_maps: Path, image_path: Path) -> Path:
    return label_maps / f"{image_path.stem}.png"


def read_label_map(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            arr = np.asarray(im)
    except (OSError, ValueError, Image.DecompressionBombError) as e:  # a bomb is not an OSError
        raise ValueError(f"{path}: cannot read label map: {e}") from None
    if arr.ndim != 2:
        raise ValueError(f"{path}: label map must be single-channel, but has shape {arr.shape}")
    return arr


def road_mask(label_map: np.ndarray, road_values: list[int]) -> np.ndarray:
    return np.isin(label_map, road_values)


def blob_boxes(label_map: np.ndarray, value: int, min_px: int) -> list[Box]:
    n, _, stats, _ = cv2.connectedComponentsWithStats((label_map == value).astype(np.uint8), connectivity=8)
    return [
        Box(float(x), float(y), float(w), float(h))
        for x, y, w, h, area in stats[1:]
        if area >= min_px
    ]


def read_label_map_frames(
    images: Path,
    label_maps: Path | None,
    *,
    object_values: Mapping[int, str] | None = None,
    min_object_px: int = 150,
    scene_regex: str | None = None,
    source_name: str = "frames",
    max_pixels: int | None = MAX_PIXELS,
) -> Dataset:
    """Frames of `images` as a Dataset; `file_name` is relative to `images`.

    Each image record carries `scene`, `source` and, when a label map exists, `label_map` (absolute
    path) so the placement stage can read the road mask without knowing the layout.
    """
    object_values = dict(object_values or {})
    cat_names = sorted(set(object_values.values()))
    categories = tuple(Category(i + 1, n) for i, n in enumerate(cat_names))
    cat_id = {c.name: c.id for c in categories}
    records: list[ImageRecord] = []
    anns: list[Annotation] = []
    problems: list[dict] = []
    for i, p in enumerate(list_images(images), start=1):
        try:  # a bad frame or label map is one line in the run summary; the other frames go on
            w, h = image_size(p, max_pixels)
            attrs: dict = {"scene": scene_of(p.name, scene_regex), "source": source_name}
            lm_path = label_map_path(label_maps, p) if label_maps else None
            boxes: list[tuple[str, Box]] = []
            if lm_path is not None and lm_path.exists():
                attrs["label_map"] = str(lm_path.resolve())
                lm = read_label_map(lm_path)  # read now, so a broken one is reported here, not mid-run
                if lm.shape != (h, w):
                    raise ValueError(f"{lm_path}: label map is {lm.shape[1]}x{lm.shape[0]}, image {p} is {w}x{h}")
                boxes = [(name, box) for value, name in sorted(object_values.items())
                         for box in blob_boxes(lm, value, min_object_px)]
        except (ImageLoadError, ValueError) as e:
            problems.append({"file": str(p), "error": str(e)})
            continue
        anns += [Annotation(id=len(anns) + k + 1, image_id=i, category_id=cat_id[name], bbox=box, area=box.area,
                            attributes={"box_source": "label-map-blob"}) for k, (name, box) in enumerate(boxes)]
        records.append(ImageRecord(id=i, file_name=p.name, width=w, height=h, attributes=attrs))
    return Dataset(tuple(records), tuple(anns), categories, info={"source": str(images), "problems": problems})
