"""The one list of dataset layouts roadsynth reads.

Each reader module declares its layout as a `datasets.formats.Format` (its name, what its path is, the
options it takes, how it reads); this module lists them, and the CLI, configs, scene sources, experiment
data and `roadsynth import` take the names and the readers from here. A new layout is one reader module
plus one line in `FORMATS` (docs/formats.md, "Adding a format").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from roadsynth.datasets import coco, yolo
from roadsynth.datasets.formats import Format, bdd100k, cityscapes, kitti, nuscenes
from roadsynth.datasets.records import DatasetSplit

FORMATS: dict[str, Format] = {f.name: f for f in (
    yolo.FORMAT,
    coco.FORMAT,
    kitti.FORMAT,
    nuscenes.NUSCENES,
    nuscenes.NUIMAGES,
    bdd100k.FORMAT,
    cityscapes.FORMAT,
)}
DATASET_FORMATS = tuple(FORMATS)
# Scene sources also read plain frame folders, with or without per-pixel label maps (generate/sources.py).
FRAME_FORMATS = ("label_maps", "folder")
SCENE_FORMATS = (*FRAME_FORMATS, *DATASET_FORMATS)


def get_format(name: str) -> Format:
    if name not in FORMATS:
        raise ValueError(f"`format` must be one of {', '.join(FORMATS)}, but got {name!r}")
    return FORMATS[name]


def read_format(name: str, path: str | Path, images_root: str | Path | None = None, **options: Any) -> DatasetSplit:
    """The dataset at `path` in layout `name` (`options`: the reader options it takes)."""
    fmt = get_format(name)
    if fmt.needs_images_root and images_root is None:
        raise ValueError(f"{path}: `images_root` is required for format {name}")
    unknown = sorted(set(options) - set(fmt.options) - {fmt.label_maps_option})
    if unknown:
        raise ValueError(f"`{unknown[0]}` does not apply to format {name} (it takes {', '.join(fmt.options) or 'none'})")
    return fmt.read(Path(path), Path(images_root) if images_root is not None else None, **options)


class _Source(Protocol):
    format: str
    path: Path
    images_root: Path | None

    def reader_options(self) -> dict: ...


def read_dataset(src: _Source) -> DatasetSplit:
    """A config's dataset section (`format`, `path`, `images_root` and the reader options) read."""
    return read_format(src.format, src.path, src.images_root, **src.reader_options())
