"""COCO JSON <-> `Dataset`.

Round trip: image keys other than id/file_name/width/height live in `ImageRecord.attributes`;
an annotation's `provenance` maps to `Annotation.provenance` and any other extra keys to
`Annotation.attributes`. `area` stays None when absent on read; the writer fills it (polygon area
for polygon segmentations, box area otherwise). Output is deterministic: equal datasets give
byte-identical files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from roadsynth.datasets.io import atomic_write_json, read_json
from roadsynth.datasets.formats import Format
from roadsynth.datasets.records import Annotation, Box, Category, Dataset, DatasetSplit, ImageRecord, Provenance
from roadsynth.datasets.validate import validate_coco

_IMAGE_KEYS = {"id", "file_name", "width", "height"}
_ANN_KEYS = {"id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation", "provenance", "attributes"}


class CocoFormatError(ValueError):
    pass


def image_from_dict(im: dict[str, Any]) -> ImageRecord:
    return ImageRecord(int(im["id"]), str(im["file_name"]), int(im["width"]), int(im["height"]),
                       {k: v for k, v in im.items() if k not in _IMAGE_KEYS})


def annotation_from_dict(a: dict[str, Any]) -> Annotation:
    attrs = dict(a.get("attributes") or {})
    attrs.update({k: v for k, v in a.items() if k not in _ANN_KEYS})
    prov = a.get("provenance")
    return Annotation(
        id=int(a["id"]), image_id=int(a["image_id"]), category_id=int(a["category_id"]),
        bbox=Box(*(float(v) for v in a["bbox"])), area=None if a.get("area") is None else float(a["area"]),
        iscrowd=int(a.get("iscrowd", 0)), segmentation=a.get("segmentation"),
        provenance=Provenance.from_dict(prov) if prov else None, attributes=attrs,
    )


def dataset_from_coco_dict(d: dict[str, Any], source: str = "<dict>") -> Dataset:
    if not isinstance(d, dict):
        raise CocoFormatError(f"{source}: expected a JSON object at the top level, but got {type(d).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(d.get(key), list):
            raise CocoFormatError(f"{source}: `{key}` must be a list, but got {type(d.get(key)).__name__}")
    try:
        categories = tuple(Category(int(c["id"]), str(c["name"]), str(c.get("supercategory", "")))
                           for c in d["categories"])
        images = tuple(image_from_dict(im) for im in d["images"])
        anns = tuple(annotation_from_dict(a) for a in d["annotations"])
    except (KeyError, TypeError, ValueError) as e:
        raise CocoFormatError(
            f"{source}: malformed COCO record ({type(e).__name__}: {e}); run `roadsynth validate` for every problem"
        ) from None
    return Dataset(images, anns, categories, info=dict(d.get("info") or {}))


def polygon_area(segmentation: Any) -> float | None:
    if not isinstance(segmentation, list) or not segmentation:
        return None
    total = 0.0
    for poly in segmentation:
        xy = np.asarray(poly, dtype=float).reshape(-1, 2)
        x, y = xy[:, 0], xy[:, 1]
        total += 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
    return total


def mask_polygons(mask: np.ndarray, origin: tuple[int, int] = (0, 0), min_area_px: int = 4) -> list[list[float]]:
    """COCO polygons (flat x, y lists in frame pixels) of a bool mask whose top-left sits at `origin`.

    One polygon per outer contour, through the centres of the boundary pixels (pixel i spans [i, i+1),
    so its centre is i + 0.5); pieces smaller than `min_area_px` pixels are dropped. Holes are not
    represented (COCO polygons cannot), so keep the mask's pixel count as the annotation's `area`.
    """
    import cv2  # only writers of instance masks need OpenCV here

    contours, _ = cv2.findContours(np.ascontiguousarray(mask, np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        if len(c) < 3 or cv2.contourArea(c) < min_area_px:
            continue
        xy = c.reshape(-1, 2).astype(np.float64) + (origin[0] + 0.5, origin[1] + 0.5)
        polys.append([round(float(v), 1) for v in xy.ravel()])
    return polys


def image_to_dict(im: ImageRecord) -> dict[str, Any]:
    return {"id": im.id, "file_name": im.file_name, "width": im.width, "height": im.height, **dict(im.attributes)}


def annotation_to_dict(a: Annotation) -> dict[str, Any]:
    area = a.area if a.area is not None else (polygon_area(a.segmentation) or a.bbox.area)
    out: dict[str, Any] = {"id": a.id, "image_id": a.image_id, "category_id": a.category_id,
                           "bbox": [round(float(v), 3) for v in a.bbox.xywh()], "area": round(float(area), 3),
                           "iscrowd": a.iscrowd}
    # Every annotation has the key (an empty list without a mask): COCO tools (Datumaro, CVAT) expect it.
    out["segmentation"] = a.segmentation if a.segmentation is not None else []
    if a.attributes:
        out["attributes"] = dict(a.attributes)
    if a.provenance is not None:
        out["provenance"] = a.provenance.to_dict()
    return out


def dataset_to_coco_dict(ds: Dataset) -> dict[str, Any]:
    images = [image_to_dict(im) for im in sorted(ds.images, key=lambda r: r.id)]
    anns = [annotation_to_dict(a) for a in sorted(ds.annotations, key=lambda r: r.id)]
    cats = [{"id": c.id, "name": c.name, "supercategory": c.supercategory} for c in sorted(ds.categories, key=lambda c: c.id)]
    return {"info": dict(ds.info), "images": images, "annotations": anns, "categories": cats}


_SCALAR = (str, int, float, bool)


def plain_coco_dict(ds: Dataset) -> dict[str, Any]:
    """Standard COCO only, for tools that import COCO strictly (FiftyOne, CVAT/Datumaro, pycocotools).

    Images keep id/file_name/width/height plus their scalar attributes (e.g. `condition`, `scene`);
    annotations keep the standard keys plus a flat `attributes` dict of scalars: the object's own scalar
    attributes and, for generated objects, `generated`, `method`, `source`, `seed` and `prompt` from the
    provenance (nested provenance and verifier scores stay in the full annotations.json).
    """
    full = dataset_to_coco_dict(ds)
    images = [{k: v for k, v in im.items() if k in ("id", "file_name", "width", "height") or isinstance(v, _SCALAR)}
              for im in full["images"]]
    anns = []
    for a in full["annotations"]:
        attrs = {k: v for k, v in a.get("attributes", {}).items() if isinstance(v, _SCALAR)}
        prov = a.get("provenance")
        attrs["generated"] = prov is not None
        if prov is not None:
            attrs.update({k: prov[k] for k in ("method", "source", "seed", "prompt", "style") if isinstance(prov.get(k), _SCALAR)})
        out = {k: a[k] for k in ("id", "image_id", "category_id", "bbox", "area", "iscrowd")}
        out["segmentation"] = a.get("segmentation") or []
        out["attributes"] = attrs
        anns.append(out)
    info = {k: v for k, v in full["info"].items() if isinstance(v, _SCALAR)}
    return {"info": info, "images": images, "annotations": anns, "categories": full["categories"]}


def read_coco(path: str | Path) -> Dataset:
    try:
        d = read_json(path, "annotations file")
    except (FileNotFoundError, ValueError) as e:
        raise CocoFormatError(str(e)) from None
    return dataset_from_coco_dict(d, source=str(path))


def write_coco(ds: Dataset, path: str | Path) -> None:
    atomic_write_json(path, dataset_to_coco_dict(ds))


def read_coco_lenient(path: Path) -> Dataset:
    """COCO scene source minus the records the validator objects to, each listed with its problem (image
    files are checked later, per frame, when they are loaded). Only a file with nothing usable (not JSON,
    no `images`/`categories` list, no valid category) is an error for the whole file."""
    try:
        raw = read_json(path, "COCO scene source")
    except OSError as e:
        raise ValueError(f"{path}: not a readable COCO file ({type(e).__name__}: {e})") from None
    problems = validate_coco(raw, None, check_images=False, source=str(path))
    fatal = [p for p in problems if not p.where.startswith(("image ", "annotation ", "category "))]
    if fatal:
        raise ValueError(f"{path}: not a usable COCO file: " + "; ".join(str(p) for p in fatal[:5]))
    images, anns, cats = _usable(raw["images"]), _usable(raw["annotations"]), _usable(raw["categories"])
    bad_images = _ids_named(problems, "image")
    bad_cats = _ids_named(problems, "category")
    cats = {i: c for i, c in cats.items() if i not in bad_cats}
    if not cats:
        raise ValueError(f"{path}: not a usable COCO file: no valid category")
    images = {i: im for i, im in images.items() if i not in bad_images}
    bad_anns = _ids_named(problems, "annotation")
    anns = {i: a for i, a in anns.items() if i not in bad_anns and a.get("image_id") in images
            and a.get("category_id") in cats}
    raw = {**raw, "images": list(images.values()), "annotations": list(anns.values()), "categories": list(cats.values())}
    ds = dataset_from_coco_dict(raw, source=str(path))
    return ds.with_(info={**dict(ds.info), "problems": [{"file": str(path), "error": str(p)} for p in problems]})


def _usable(records: list) -> dict[int, dict]:
    """Records with a positive integer id, the first of each id (a later duplicate never drops the original)."""
    out: dict[int, dict] = {}
    for r in records:
        i = r.get("id") if isinstance(r, dict) else None
        if isinstance(i, int) and not isinstance(i, bool) and i > 0 and i not in out:
            out[i] = r
    return out


def _ids_named(problems, kind: str) -> set[int]:
    """Ids of `kind` records with a problem other than being a duplicate (the first of an id stays)."""
    out = set()
    for p in problems:
        parts = p.where.split()
        if parts[0] == kind and len(parts) > 1 and parts[1].isdigit() and p.message != "duplicate id":
            out.add(int(parts[1]))
    return out


FORMAT = Format("coco", "the annotations JSON (with `images_root`: the folder its file names are in)",
                lambda path, images_root: DatasetSplit(read_coco(path), Path(images_root)),
                needs_images_root=True, any_camera=True,
                read_frames=lambda path, images_root, max_pixels=None: DatasetSplit(read_coco_lenient(path),
                                                                                    Path(images_root)))
