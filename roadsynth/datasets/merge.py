"""Merge COCO datasets: unique contiguous ids, categories matched by case-insensitive name."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from roadsynth.datasets.records import Category, Dataset, DatasetSplit


def merge_datasets(parts: Sequence[tuple[Dataset, str]]) -> Dataset:
    """Merge `(dataset, prefix)` parts; each part's file_names become `<prefix>/<file_name>`.

    The first spelling of a category name wins (`Ambulance` from the real set absorbs `ambulance`
    from a generated one); ids are assigned in first-seen order.
    """
    categories: dict[str, Category] = {}
    images, anns = [], []
    for ds, prefix in parts:
        cat_map = {}
        for c in ds.categories:
            key = c.name.lower()
            if key not in categories:
                categories[key] = Category(len(categories) + 1, c.name, c.supercategory)
            cat_map[c.id] = categories[key].id
        img_map = {}
        for im in ds.images:
            img_map[im.id] = len(images) + 1
            name = f"{prefix.rstrip('/')}/{im.file_name}" if prefix else im.file_name
            images.append(replace(im, id=img_map[im.id], file_name=name,
                                  attributes={**dict(im.attributes), "part": prefix or "", "original_id": im.id}))
        for a in ds.annotations:
            anns.append(replace(a, id=len(anns) + 1, image_id=img_map[a.image_id], category_id=cat_map[a.category_id]))
    return Dataset(tuple(images), tuple(anns), tuple(categories.values()),
                   info={"merged_from": [p for _, p in parts]})


def link_merged(parts: Sequence[tuple[str, DatasetSplit]], images_dir: Path) -> DatasetSplit:
    """Merge `(prefix, split)` parts under one images root: `images_dir/<prefix>` links to each part's root.

    Nothing is copied; a link that already points elsewhere is refused rather than replaced.
    """
    images_dir = Path(images_dir)
    images_dir.mkdir(parents=True, exist_ok=True)
    for prefix, sp in parts:
        link = images_dir / prefix
        if link.is_symlink() or link.exists():
            if link.resolve() != Path(sp.images_root).resolve():
                raise FileExistsError(f"{link}: already links elsewhere ({link.resolve()})")
            continue
        os.symlink(Path(sp.images_root).resolve(), link, target_is_directory=True)
    return DatasetSplit(merge_datasets([(sp.dataset, prefix) for prefix, sp in parts]), images_dir)
