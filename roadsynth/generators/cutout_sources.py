"""Where cut-outs come from: datasets with masks or boxes, read into a `CutoutBank`.

Sources: MSRC-v2 segment maps (`.mat`), Weizmann figure-ground masks, COCO polygons, and box-only
datasets (YOLO or in-memory COCO) whose masks are derived from the box (generators/masks.py). Boxes touching
the image border are skipped: the object is cut off there and would be pasted with a straight edge.
"""

from __future__ import annotations

import csv
import json
import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import cv2
import numpy as np
from PIL import Image

from roadsynth.datasets.io import inside, load_image, read_json
from roadsynth.datasets.records import Dataset
from roadsynth.generators.cutouts import CutoutBank, make_cutout
from roadsynth.generators.masks import box_mask

MSRC_CLASSES = ["building", "grass", "tree", "cow", "horse", "sheep", "sky", "mountain", "aeroplane", "water", "face",
                "car", "bicycle", "flower", "sign", "bird", "book", "chair", "road", "cat", "dog", "body", "boat"]


def _split_instances(mask: np.ndarray, min_area: int) -> list[np.ndarray]:
    # MSRC sometimes merges touching animals into one segment; components separate the clear cases.
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return [labels == k for k in range(1, n) if stats[k, cv2.CC_STAT_AREA] >= min_area]


def iter_msrc_instances(root: str | Path, categories: Iterable[str] = ("cow", "sheep", "dog", "horse"),
                        min_area: int = 1500, problems: list[str] | None = None, curated: bool = False
                        ) -> Iterator[tuple[str, np.ndarray, np.ndarray, str]]:
    """(image name, full RGB, full-frame instance mask, category) for every usable MSRC instance. An unreadable
    image or segment map is appended to `problems` (raised when None). `curated`: leave out the segments that
    the folder's `exclude.csv` lists (image, segment_id, reason), when it has one."""
    from scipy.io import loadmat

    root = Path(root)
    wanted = set(categories)
    excluded = msrc_exclusions(root) if curated else {}
    with open(root / "segments.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    images = sorted({r.get("image_jpg") or r["image"] for r in rows if r["class"] in wanted})
    for name in images:
        mat_path = root / "newsegmentations_mats" / f"{Path(name).stem}_GT.mat"
        try:
            rgb = load_image(inside(root / "images", name, "segments.csv row"))
            try:
                mat = loadmat(mat_path)
                seg, labels = mat["newseg"], mat["newlabels"].ravel()
            except (OSError, ValueError, KeyError) as e:
                raise ValueError(f"{mat_path}: cannot read segment map: {e}") from None
        except ValueError as e:  # ImageLoadError is a ValueError
            _problem(problems, e)
            continue
        for k, cls_idx in enumerate(labels, start=1):
            cls = MSRC_CLASSES[int(cls_idx) - 1] if 1 <= int(cls_idx) <= len(MSRC_CLASSES) else None
            if cls not in wanted or (name, k) in excluded:
                continue
            # The segment maps trace the outline loosely (a rim of grass); 2 px of erosion removes the halo.
            segment = cv2.erode((seg == k).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
            for j, m in enumerate(_split_instances(segment, min_area)):
                if not _touches_border(m):
                    yield f"{name}#seg{k}.{j}", rgb, m, cls


def msrc_exclusions(root: Path) -> dict[tuple[str, int], str]:
    """(image, segment id) -> reason, from the folder's optional `exclude.csv`.

    The segment maps merge touching animals into one segment (a herd, a ewe with her lamb): pasted, such a
    cut-out becomes one box around several animals labelled as one, which teaches a detector wrong boxes.
    Connected components cannot split animals that touch, so the bundled folder lists them, checked by eye."""
    path = root / "exclude.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    try:
        return {(r["image"], int(r["segment_id"])): r.get("reason") or "" for r in rows}
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{path}: expected columns image, segment_id (an integer), reason") from None


def from_msrc(root: str | Path, categories: Iterable[str] = ("cow", "sheep", "dog", "horse"),
              min_area: int = 1500) -> CutoutBank:
    out, problems = [], []
    for name, rgb, m, cls in iter_msrc_instances(root, categories, min_area, problems, curated=True):
        c = make_cutout(rgb, m, cls, f"msrc:{name}", "segment-map", f"msrc/{name}",
                        Path(root) / "images" / name.split("#")[0])
        if c is not None:
            out.append(c)
    return CutoutBank(out, problems)


def _problem(problems: list[str] | None, e: Exception) -> None:
    if problems is None:
        raise e
    problems.append(str(e))


def _int_box(xywh) -> tuple[int, int, int, int]:
    return tuple(int(round(float(v))) for v in xywh)


def _touches_border(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def iter_weizmann_instances(root: str | Path, min_area: int = 1500, problems: list[str] | None = None
                            ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(file name, full RGB, full-frame horse mask) for every usable Weizmann image (unreadable ones are appended
    to `problems`, raised when None)."""
    root = Path(root)
    for p in sorted((root / "rgb").glob("*.jpg")):
        try:
            rgb = load_image(p)
            mask_path = root / "figure_ground" / p.name
            try:  # stored at another size, as JPEG: resize, threshold
                with Image.open(mask_path) as im:
                    m = np.asarray(im.convert("L").resize((rgb.shape[1], rgb.shape[0]), Image.BILINEAR)) >= 128
            except (OSError, ValueError, Image.DecompressionBombError) as e:
                raise ValueError(f"{mask_path}: cannot read mask: {e}") from None
        except ValueError as e:
            _problem(problems, e)
            continue
        parts = _split_instances(m, min_area)
        if parts:
            m = max(parts, key=lambda x: x.sum())
            if not _touches_border(m):
                yield p.name, rgb, m


def from_weizmann(root: str | Path, min_area: int = 1500) -> CutoutBank:
    out, problems = [], []
    for name, rgb, m in iter_weizmann_instances(root, min_area, problems):
        c = make_cutout(rgb, m, "horse", f"weizmann:{name}", "mask-image", f"weizmann/{Path(name).stem}",
                        Path(root) / "rgb" / name)
        if c is not None:
            out.append(c)
    return CutoutBank(out, problems)


def from_coco_polygons(instances_json: str | Path, images_dir: str | Path, categories: Iterable[str],
                       min_area: int = 1500) -> CutoutBank:
    d = read_json(instances_json, "COCO instances file")
    wanted = {c["id"]: c["name"] for c in d["categories"] if c["name"] in set(categories)}
    by_image = {im["id"]: im for im in d["images"]}
    every = {c["id"]: c["name"] for c in d["categories"]}
    labels: dict[int, list] = {}  # every class, not only the wanted ones: the photo's labels as they are
    for a in d["annotations"]:
        if a["category_id"] in every and not a.get("iscrowd"):
            labels.setdefault(a["image_id"], []).append((every[a["category_id"]], _int_box(a["bbox"])))
    out, problems = [], []
    for a in d["annotations"]:
        if a["category_id"] not in wanted or a.get("iscrowd") or not isinstance(a.get("segmentation"), list):
            continue
        if a.get("area", 0) < min_area:
            continue
        im = by_image[a["image_id"]]
        try:
            rgb = load_image(inside(images_dir, im["file_name"], f"image {im['id']}"))
        except ValueError as e:
            problems.append(str(e))
            continue
        m = np.zeros(rgb.shape[:2], np.uint8)
        for poly in a["segmentation"]:
            cv2.fillPoly(m, [np.round(np.asarray(poly).reshape(-1, 2)).astype(np.int32)], 1)
        if _touches_border(m.astype(bool)):
            continue
        c = make_cutout(rgb, m.astype(bool), wanted[a["category_id"]], f"coco:{im['file_name']}#ann{a['id']}",
                        "polygon", f"coco/{a['id']}", Path(images_dir) / im["file_name"])
        if c is not None:
            out.append(replace(c, source_labels=tuple(labels.get(a["image_id"], ()))))
    return CutoutBank(out, problems)


def build_bank_from_boxes(ds: Dataset, images_root: str | Path, class_map: Mapping[str, str],
                          min_side: int = 24, keep_fallback: bool = False,
                          segmenter: str | Path | None = None) -> CutoutBank:
    """Cut-outs from box annotations (`class_map`: dataset category name -> roadsynth category), their masks
    cut by GrabCut, or by the box segmenter in the folder `segmenter` (generators/box_segmenter.py).

    Where GrabCut degenerates the mask would be a plain ellipse, which pastes as a visible oval of
    background: such instances are skipped unless `keep_fallback`. Masks the segmenter is less certain of
    than its manifest's floor are refused (the bank's `unsure`, counted in `refused`).
    """
    seg = None
    if segmenter is not None:
        from roadsynth.generators.box_segmenter import load_segmenter

        seg = load_segmenter(segmenter)
    names = {c.id: c.name for c in ds.categories}
    lower_map = {k.lower(): v for k, v in class_map.items()}
    by_image = ds.annotations_by_image()
    out, problems, unsure = [], [], []
    for im in ds.images:
        anns = [a for a in by_image.get(im.id, []) if names[a.category_id].lower() in lower_map and not a.iscrowd]
        if not anns:
            continue
        try:
            rgb = load_image(inside(images_root, im.file_name, f"image {im.id}"))
        except ValueError as e:
            problems.append(str(e))
            continue
        H, W = rgb.shape[:2]
        for a in anns:
            b = a.bbox
            if min(b.w, b.h) < min_side or b.x <= 1 or b.y <= 1 or b.x2 >= W - 1 or b.y2 >= H - 1:
                continue  # too small to cut out, or cut off by the image border
            m, method, certain = box_mask(rgb, b, seg)
            if method == "ellipse" and not keep_fallback:
                continue
            full = np.zeros((H, W), bool)
            x1, y1 = max(int(np.floor(b.x)), 0), max(int(np.floor(b.y)), 0)
            full[y1 : y1 + m.shape[0], x1 : x1 + m.shape[1]] = m
            c = make_cutout(rgb, full, lower_map[names[a.category_id].lower()],
                            f"boxes:{im.file_name}#ann{a.id}", method, f"boxes/{im.id}/{a.id}",
                            Path(images_root) / im.file_name, box=b.xywh(), certainty=certain)
            if c is None:
                continue
            c = replace(c, source_box=_int_box(b.xywh()), source_labels=tuple(  # the box as it was drawn
                (lower_map.get(names[o.category_id].lower(), names[o.category_id]), _int_box(o.bbox.xywh()))
                for o in by_image.get(im.id, []) if not o.iscrowd))
            floor = seg.min_certainty if seg is not None and method == "learned" else None
            (unsure if floor is not None and certain < floor else out).append(c)
    refused = {f"box segmenter unsure (certainty below {seg.min_certainty:g})": len(unsure)} if unsure else {}
    return CutoutBank(out, problems, refused, unsure)


def from_yolo(root: str | Path, class_map: Mapping[str, str], segmenter: str | Path | None = None) -> CutoutBank:
    from roadsynth.datasets.yolo import read_yolo

    ds, images_root = read_yolo(root)
    return build_bank_from_boxes(ds, images_root, class_map, segmenter=segmenter)


def build_bank(sources: Iterable[Mapping[str, Any]]) -> CutoutBank:
    """Build from config-like dicts (`roadsynth.config.CutoutSource.model_dump()`). A source's bank is built
    once per process and reused while none of its files changes: cutting masks from boxes takes about half a
    second per object, and a process may build the same run's bank several times (the UI, each generation
    of an experiment, tests)."""
    banks = []
    for s in sources:
        kind, path = s["kind"], Path(s["path"])
        if not path.exists():
            raise FileNotFoundError(f"{path}: cut-out source ({kind}) not found")
        if kind not in ("msrc", "weizmann", "coco", "yolo", "bank"):
            raise ValueError(f"`kind` must be one of msrc, weizmann, coco, yolo, bank, but got {kind!r}")
        key = (json.dumps(dict(s), sort_keys=True, default=str), _fingerprint(path),
               _fingerprint(Path(s["images_dir"])) if kind == "coco" and s.get("images_dir") else (),
               _fingerprint(Path(s["segmenter"])) if s.get("segmenter") else ())
        with _BUILT_LOCK:
            bank = _BUILT.get(key)
        if bank is None:
            bank = _build_one(kind, path, s)
            with _BUILT_LOCK:
                _BUILT[key] = bank
                while len(_BUILT) > 8:
                    _BUILT.popitem(last=False)
        banks.append(bank)
    return CutoutBank.concat(banks)


_BUILT: OrderedDict = OrderedDict()
_BUILT_LOCK = threading.Lock()  # task-runner threads may build banks at once


def _fingerprint(path: Path) -> tuple:
    """(file, size, mtime) of every file at or under `path`: what a bank built from it depends on."""
    files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())
    return tuple((str(f), st.st_size, st.st_mtime_ns) for f in files for st in (f.stat(),))


def _build_one(kind: str, path: Path, s: Mapping[str, Any]) -> CutoutBank:
    if kind == "msrc":
        return from_msrc(path, s.get("categories") or ("cow", "sheep", "dog", "horse"), s.get("min_area", 1500))
    if kind == "weizmann":
        return from_weizmann(path, s.get("min_area", 1500))
    if kind == "coco":
        return from_coco_polygons(path, s["images_dir"], s.get("categories") or (), s.get("min_area", 1500))
    if kind == "yolo":
        return from_yolo(path, s.get("class_map") or {}, s.get("segmenter"))
    return CutoutBank.load(path)
