"""Instance masks to learn the box-to-mask step from, and the crops the box segmenter sees.

Both the trainer (generators/segmenter_train.py) and the mask benchmark (benchmarks/mask_quality.py) read
masks through `iter_instances`, and both cut crops with `box_crop`: a sample's training crop and the
crop the segmenter is later given for a user's box are made by the same function.

A source is a mapping (`roadsynth.config.SegmenterSource.model_dump()`): `kind` msrc | weizmann | coco |
yolo-seg, a `path`, and `parity` even | odd to keep every other instance in the source's own order (how
the mask benchmark has split MSRC into tuning and validation halves since 2026-12-04), or all of them.
No torch here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Mapping

import cv2
import numpy as np

from roadsynth.datasets.io import inside, load_image, read_json

# The margin around the box that the segmenter sees, as a fraction of the box's width/height per side:
# GrabCut's (generators/masks.py), so both steps see the same background.
MARGIN = 0.15


def iter_instances(source: Mapping[str, Any], min_area: int = 1500) -> Iterator[tuple[str, Path, np.ndarray,
                                                                                      np.ndarray, str]]:
    """(instance id, image file, full RGB, full-frame bool mask, category) for each usable instance of one
    source: at least `min_area` pixels and not cut off by the image border, as the cut-out banks take them."""
    from roadsynth.generators.cutout_sources import iter_msrc_instances, iter_weizmann_instances

    kind, path, parity = source["kind"], Path(source["path"]), source.get("parity")
    if kind == "msrc":
        it = ((f"msrc:{n}", path / "images" / n.split("#")[0], rgb, m, c)
              for n, rgb, m, c in iter_msrc_instances(path, min_area=min_area))
    elif kind == "weizmann":
        it = ((f"weizmann:{n}", path / "rgb" / n, rgb, m, "horse") for n, rgb, m in
              iter_weizmann_instances(path, min_area))
    elif kind == "coco":
        it = _coco_instances(path, Path(source["images_dir"]), min_area)
    elif kind == "yolo-seg":
        it = _yolo_seg_instances(path, min_area)
    else:
        raise ValueError(f"`kind` must be one of msrc, weizmann, coco, yolo-seg, but got {kind!r}")
    for k, sample in enumerate(it):
        if parity is None or k % 2 == (0 if parity == "even" else 1):
            yield sample


def _touches_border(m: np.ndarray) -> bool:
    return bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())


def _polygon_mask(shape: tuple[int, int], polygons: list[np.ndarray]) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    for poly in polygons:
        cv2.fillPoly(m, [np.round(poly.reshape(-1, 2)).astype(np.int32)], 1)
    return m.astype(bool)


def _coco_instances(instances_json: Path, images_dir: Path, min_area: int):
    d = read_json(instances_json, "COCO instances file")
    names = {c["id"]: c["name"] for c in d["categories"]}
    images = {im["id"]: im for im in d["images"]}
    by_image: dict[int, list] = {}
    for a in d["annotations"]:
        if not a.get("iscrowd") and isinstance(a.get("segmentation"), list) and a.get("area", 0) >= min_area:
            by_image.setdefault(a["image_id"], []).append(a)
    for image_id in sorted(by_image):
        im = images[image_id]
        file = inside(images_dir, im["file_name"], f"image {image_id}")
        rgb = load_image(file)
        for a in by_image[image_id]:
            m = _polygon_mask(rgb.shape[:2], [np.asarray(p, float) for p in a["segmentation"]])
            if m.sum() >= min_area and not _touches_border(m):
                yield f"coco:{im['file_name']}#ann{a['id']}", file, rgb, m, names[a["category_id"]]


def _yolo_seg_instances(root: Path, min_area: int):
    """Ultralytics segmentation labels (`cls x1 y1 x2 y2 ...`, normalised) under root/labels/*, images under
    root/images/* with the same stem."""
    for label in sorted((root / "labels").rglob("*.txt")):
        rel = label.relative_to(root / "labels").with_suffix("")
        files = [f for f in (root / "images" / rel.parent).glob(rel.name + ".*")
                 if f.suffix.lower() in (".jpg", ".jpeg", ".png")]
        if not files:
            continue
        rgb = load_image(files[0])
        h, w = rgb.shape[:2]
        for k, line in enumerate(label.read_text().splitlines()):
            v = line.split()
            if len(v) < 7:
                continue
            poly = np.asarray(v[1:], float).reshape(-1, 2) * (w, h)
            m = _polygon_mask((h, w), [poly])
            if m.sum() >= min_area and not _touches_border(m):
                yield f"yolo-seg:{rel}#{k}", files[0], rgb, m, f"class{int(v[0])}"


def tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def crop_window(box: tuple[float, float, float, float], margin: float = MARGIN) -> tuple[int, int, int, int]:
    """The photo pixels (x1, y1, x2, y2, rounded out; may reach outside the photo) that `box_crop` resizes."""
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    return (int(np.floor(x1 - margin * bw)), int(np.floor(y1 - margin * bh)),
            int(np.ceil(x2 + margin * bw)), int(np.ceil(y2 + margin * bh)))


def box_crop(rgb: np.ndarray, box: tuple[float, float, float, float], size: int, margin: float = MARGIN,
             mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The box plus `margin` per side, resized to size x size (uint8 RGB; the mask resized the same way as
    float32 in [0, 1] when given). Outside the photo the border pixels are repeated, so the box always sits
    at the same place in the crop: [margin, 1 + margin] / (1 + 2 margin) of each side."""
    cx1, cy1, cx2, cy2 = crop_window(box, margin)
    H, W = rgb.shape[:2]
    pad = (max(-cy1, 0), max(cy2 - H, 0), max(-cx1, 0), max(cx2 - W, 0))

    def cut(a: np.ndarray, border: int) -> np.ndarray:
        a = a[max(cy1, 0) : min(cy2, H), max(cx1, 0) : min(cx2, W)]
        if any(pad):
            a = cv2.copyMakeBorder(a, *pad, border, value=0)
        # Shrinking averages (thin legs do not alias away); enlarging interpolates.
        interp = cv2.INTER_AREA if a.shape[0] > size or a.shape[1] > size else cv2.INTER_LINEAR
        return cv2.resize(a, (size, size), interpolation=interp)

    crop = cut(np.ascontiguousarray(rgb), cv2.BORDER_REPLICATE)
    return crop, (None if mask is None else cut(mask.astype(np.float32), cv2.BORDER_CONSTANT))


def crop_box(size: int, margin: float = MARGIN) -> tuple[int, int]:
    """Where the box lies in a `box_crop` of this size: the first and one-past-last row/column."""
    return round(size * margin / (1 + 2 * margin)), round(size * (1 + margin) / (1 + 2 * margin))


def sample_record(name: str, file: Path, category: str) -> dict[str, Any]:
    from roadsynth.detectors.starter import file_digests

    return {"id": name, "file": str(file), "category": category, **file_digests(file)}
