"""`roadsynth export`: a dataset folder as standard COCO or as an Ultralytics-ready YOLO folder.

Both exports are self-contained folders with real image files (hard links where the filesystem allows,
else copies: Ultralytics' label cache breaks on a symlinked images folder) and relative file names only.
Category names are normalised once: names that differ only in case are one category, the first spelling.

- COCO: standard keys only (`info`, `licenses`, `images`, `annotations`, `categories` with their
  `supercategory`), `segmentation` on every annotation (`[]` without a mask), flat scalar attributes
  (`generated`, `method`, `source`, `seed`, `prompt`), no absolute paths.
- YOLO: `images/{train,val}`, `labels/{train,val}`, `data.yaml`; `task="segment"` writes polygons where
  masks exist (and the box's rectangle elsewhere), for segmentation training.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Literal

from roadsynth.datasets.coco import plain_coco_dict
from roadsynth.datasets.formats import supercategory
from roadsynth.datasets.io import atomic_write_json, inside
from roadsynth.datasets.outdir import claim
from roadsynth.datasets.records import Category, Dataset, DatasetSplit
from roadsynth.datasets.split import filter_dataset, split_dataset
from roadsynth.datasets.yolo import write_yolo_splits

Link = Literal["hardlink", "copy"]


def normalise_categories(ds: Dataset) -> Dataset:
    """One category per case-insensitive name (the first spelling, the first id), supercategories filled."""
    first: dict[str, Category] = {}
    remap: dict[int, int] = {}
    for c in ds.categories:
        keep = first.setdefault(c.name.lower(), Category(c.id, c.name, c.supercategory or supercategory(c.name)))
        remap[c.id] = keep.id
    anns = tuple(replace(a, category_id=remap[a.category_id]) for a in ds.annotations)
    return ds.with_(categories=tuple(first.values()), annotations=anns)


def _portable(ds: Dataset) -> Dataset:
    """Image records without local absolute paths (background_path, label_map): an export travels."""
    def keep(k: str, v) -> bool:
        return not (isinstance(v, str) and (os.path.isabs(v) or k in ("background_path", "label_map")))

    return ds.with_(images=tuple(replace(im, attributes={k: v for k, v in im.attributes.items() if keep(k, v)})
                                 for im in ds.images))


def place_file(src: Path, dst: Path, link: Link) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    if link == "hardlink":
        try:
            os.link(src.resolve(), dst)
            return
        except OSError:
            pass  # another filesystem: copy
    shutil.copy2(src, dst)


def export_coco(split: DatasetSplit, out: Path, *, link: Link = "hardlink", overwrite: bool = False) -> Path:
    """`out/annotations.json` (standard COCO) and `out/images/` with the dataset's files."""
    out = claim(out, "export", overwrite=overwrite)
    for im in split.dataset.images:
        place_file(inside(split.images_root, im.file_name, f"image {im.id}"), inside(out / "images", im.file_name, ""),
                   link)
    atomic_write_json(out / "annotations.json", standard_coco(split.dataset))
    return out / "annotations.json"


def standard_coco(ds: Dataset) -> dict:
    """The COCO dict an export writes: normalised categories, licences, no local absolute paths."""
    coco = plain_coco_dict(_portable(normalise_categories(ds)))
    coco["licenses"] = [{"id": 1, "name": "the source datasets' own licences (see their SOURCE notes)", "url": ""}]
    for im in coco["images"]:
        im["license"] = 1
    return coco


def export_yolo(split: DatasetSplit, out: Path, *, val_fraction: float = 0.1, seed: int = 0,
                task: Literal["detect", "segment"] = "detect", link: Link = "hardlink",
                overwrite: bool = False) -> Path:
    """An Ultralytics-ready folder (split by scene into train/val); returns its data.yaml."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"`val_fraction` must be in (0, 1), but got {val_fraction}")
    out = claim(out, "export", overwrite=overwrite)
    ds = normalise_categories(split.dataset)
    parts = split_dataset(ds, {"train": 1 - val_fraction, "val": val_fraction}, seed=seed)
    if not parts["val"].images and len({im.scene for im in ds.images}) > 1:
        # Ultralytics needs a val split: a small dataset gives it one scene rather than none.
        first = parts["train"].images[0].scene
        keep = {im.id for im in ds.images if im.scene == first}
        parts = {"train": filter_dataset(ds, {im.id for im in ds.images} - keep), "val": filter_dataset(ds, keep)}
    names = [c.name for c in sorted(ds.categories, key=lambda c: c.id)]
    return write_yolo_splits({k: (v, split.images_root) for k, v in parts.items()}, out, names, link=link,
                             polygons=task == "segment", portable=True)
