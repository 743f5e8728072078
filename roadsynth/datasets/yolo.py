"""YOLO (Ultralytics layout) <-> COCO `Dataset`.

Reading: `data.yaml` names the classes; every image under the root's `images/` folder (recursively)
has its labels at the same relative path under `labels/` with a `.txt` suffix. Lines are boxes
(`cls cx cy w h`, normalised) or YOLO-seg polygons (`cls x1 y1 x2 y2 ...`). COCO category id =
class index + 1, image ids 1..N in sorted path order.

Writing: images are named by their COCO id (`000049.jpg`), because Ultralytics derives a numeric
`image_id` from a numeric file stem and a string id otherwise, which COCO tools reject.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Literal

import yaml

from roadsynth.datasets.io import IMAGE_SUFFIXES, MAX_PIXELS, ImageLoadError, atomic_write_text, image_size, inside
from roadsynth.datasets.formats import Format
from roadsynth.datasets.records import Annotation, Box, Category, Dataset, DatasetSplit, ImageRecord

class YoloFormatError(ValueError):
    pass


def read_class_names(data_yaml: Path) -> list[str]:
    from roadsynth.datasets.io import InputFileError, read_yaml

    try:
        meta = read_yaml(data_yaml, "data.yaml") or {}
    except FileNotFoundError:
        raise YoloFormatError(f"{data_yaml}: data.yaml not found") from None
    except InputFileError as e:
        raise YoloFormatError(str(e)) from None
    if not isinstance(meta, dict):
        raise YoloFormatError(f"{data_yaml}: expected a mapping, but got {type(meta).__name__}")
    names = meta.get("names")
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names, key=int)]
    if not isinstance(names, list) or not names:
        raise YoloFormatError(f"{data_yaml}: `names` must be a non-empty list or dict, but got {names!r}")
    return [str(n) for n in names]


def parse_label_line(line: str, width: int, height: int, nc: int) -> tuple[int, Box, list[float] | None]:
    parts = line.split()
    try:
        cls = int(parts[0])
        vals = [float(v) for v in parts[1:]]
    except (ValueError, IndexError):
        raise ValueError(f"not numbers: {line.strip()!r}") from None
    if not 0 <= cls < nc:
        raise ValueError(f"class {cls} out of range [0, {nc})")
    if len(vals) == 4:
        cx, cy, w, h = vals
        if w <= 0 or h <= 0:
            raise ValueError(f"box has non-positive size w={w} h={h}")
        return cls, Box((cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height), None
    if len(vals) >= 6 and len(vals) % 2 == 0:
        xs = [v * width for v in vals[0::2]]
        ys = [v * height for v in vals[1::2]]
        poly = [round(c, 2) for xy in zip(xs, ys) for c in xy]
        return cls, Box.from_xyxy(min(xs), min(ys), max(xs), max(ys)), poly
    raise ValueError(f"expected 5 values (box) or an odd count >= 7 (polygon), but got {len(parts)}")


def read_yolo(root: str | Path, *, strict: bool = True, max_pixels: int | None = MAX_PIXELS) -> tuple[Dataset, Path]:
    """Dataset + images root. With `strict=False` bad label lines are skipped and listed in `info["problems"]`."""
    root = Path(root)
    names = read_class_names(root / "data.yaml")
    images_dir = root / "images"
    if not images_dir.is_dir():
        raise YoloFormatError(f"{images_dir}: images folder not found")
    paths = sorted(p for p in images_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    records, anns, problems = [], [], []
    for image_id, p in enumerate(paths, start=1):
        rel = p.relative_to(images_dir).as_posix()
        try:
            w, h = image_size(p, max_pixels)
        except ImageLoadError as e:
            if strict:
                raise
            problems.append(str(e))  # one line in the run summary; the other images go on
            continue
        records.append(ImageRecord(image_id, rel, w, h, {"source": rel, "scene": p.stem}))
        label = root / "labels" / Path(rel).with_suffix(".txt")
        if not label.exists():
            continue  # an image without a label file has no objects (Ultralytics convention)
        for n, line in enumerate(label.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                cls, box, poly = parse_label_line(line, w, h, len(names))
            except ValueError as e:
                msg = f"{label}:{n}: {e}"
                if strict:
                    raise YoloFormatError(msg) from None
                problems.append(msg)
                continue
            anns.append(Annotation(len(anns) + 1, image_id, cls + 1, box.clip(w, h), None, 0,
                                   [poly] if poly else None))
    cats = tuple(Category(i + 1, n) for i, n in enumerate(names))
    info = {"source": str(root)} | ({"problems": problems} if problems else {})
    return Dataset(tuple(records), tuple(anns), cats, info), images_dir


def _place(src: Path, dst: Path, link: str) -> None:
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    if link == "symlink":
        os.symlink(src.resolve(), dst)
        return
    if link == "hardlink":
        try:
            os.link(src.resolve(), dst)
            return
        except OSError:
            pass  # another filesystem: a copy is the portable fallback
    shutil.copy2(src, dst)


def _polygon_line(cls: int, a, w: int, h: int) -> str | None:
    """`cls x1 y1 ...` (normalised) of an annotation's polygon, or of its box's rectangle without one."""
    seg = a.segmentation if isinstance(a.segmentation, list) and a.segmentation else None
    if seg is not None:
        poly = max(seg, key=len)  # Ultralytics takes one polygon per object: the largest part
    else:
        b = a.bbox.clip(w, h)
        poly = [b.x, b.y, b.x2, b.y, b.x2, b.y2, b.x, b.y2]
    if len(poly) < 6:
        return None
    xy = [min(max(v / (w if k % 2 == 0 else h), 0.0), 1.0) for k, v in enumerate(poly)]
    return f"{cls} " + " ".join(f"{v:.6f}" for v in xy)


def write_yolo_split(ds: Dataset, images_root: Path, out_dir: Path, split: str, class_names: list[str],
                     link: Literal["symlink", "copy", "hardlink"] = "symlink", polygons: bool = False) -> None:
    index = {n.lower(): i for i, n in enumerate(class_names)}
    names = {c.id: c.name.lower() for c in ds.categories}
    by_image = ds.annotations_by_image()
    (out_dir / "images" / split).mkdir(parents=True, exist_ok=True)
    (out_dir / "labels" / split).mkdir(parents=True, exist_ok=True)
    for im in ds.images:
        stem = f"{im.id:06d}"
        src = inside(images_root, im.file_name, f"image {im.id}")
        _place(src, out_dir / "images" / split / f"{stem}{Path(im.file_name).suffix}", link)
        lines = []
        for a in by_image.get(im.id, []):
            if a.iscrowd or names[a.category_id] not in index:
                continue
            b = a.bbox.clip(im.width, im.height)
            if b.w <= 0 or b.h <= 0:
                continue
            if polygons:
                if (line := _polygon_line(index[names[a.category_id]], a, im.width, im.height)) is not None:
                    lines.append(line)
                continue
            cx, cy = (b.x + b.w / 2) / im.width, (b.y + b.h / 2) / im.height
            lines.append(f"{index[names[a.category_id]]} {cx:.6f} {cy:.6f} {b.w / im.width:.6f} {b.h / im.height:.6f}")
        atomic_write_text(out_dir / "labels" / split / f"{stem}.txt", "\n".join(lines) + ("\n" if lines else ""))


def write_yolo_splits(splits: dict[str, tuple[Dataset, Path]], out_dir: str | Path, class_names: list[str],
                      link: Literal["symlink", "copy", "hardlink"] = "symlink", polygons: bool = False,
                      portable: bool = False) -> Path:
    """Write several splits (`{"train": (ds, images_root), ...}`) and a data.yaml with an absolute `path`, or
    with none when `portable` (Ultralytics then reads the splits beside the data.yaml, wherever it is moved)."""
    out_dir = Path(out_dir).resolve()
    for split, (ds, root) in splits.items():
        write_yolo_split(ds, root, out_dir, split, class_names, link, polygons)
    meta = {**({} if portable else {"path": str(out_dir)}), **{s: f"images/{s}" for s in splits},
            "nc": len(class_names), "names": list(class_names)}
    atomic_write_text(out_dir / "data.yaml", yaml.safe_dump(meta, sort_keys=False))
    return out_dir / "data.yaml"


def _read_frames(path: Path, images_root: Path | None = None, max_pixels: int | None = MAX_PIXELS) -> DatasetSplit:
    ds, root = read_yolo(path, strict=False, max_pixels=max_pixels)
    problems = [{"file": p.split(":")[0], "error": p} for p in ds.info.get("problems", [])]
    return DatasetSplit(ds.with_(info={**dict(ds.info), "problems": problems}), root)


FORMAT = Format("yolo", "the dataset root (data.yaml, images/, labels/)",
                lambda path, images_root=None: DatasetSplit(*read_yolo(path)), read_frames=_read_frames, any_camera=True)
