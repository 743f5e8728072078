"""Labelled datasets named in a config (`format`, `path`, `images_root`) read into `DatasetSplit`s."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from roadsynth.datasets.coco import read_coco
from roadsynth.datasets.records import DatasetSplit
from roadsynth.datasets.yolo import read_yolo


class _Source(Protocol):
    format: str
    path: Path
    images_root: Path | None

    def reader_options(self) -> dict: ...


def read_dataset(src: _Source) -> DatasetSplit:
    """A YOLO root, a COCO file (with its images folder), or a dataset in one of the public driving datasets'
    layouts (KITTI, nuScenes, nuImages, BDD100K, Cityscapes; see datasets/formats) with its images root."""
    if src.format == "yolo":
        ds, root = read_yolo(src.path)
        return DatasetSplit(ds, root)
    if src.format == "coco":
        if src.images_root is None:
            raise ValueError(f"{src.path}: `images_root` is required for format coco")
        return DatasetSplit(read_coco(src.path), Path(src.images_root))
    from roadsynth.datasets.formats import read_format

    return read_format(src.format, Path(src.path), src.images_root, **src.reader_options())
