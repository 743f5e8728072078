"""`roadsynth import`: a dataset in another layout -> roadsynth's (validated COCO + images/)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from roadsynth.datasets.coco import write_coco
from roadsynth.datasets.outdir import OutputFolderError, claim
from roadsynth.datasets.records import DatasetSplit
from roadsynth.datasets.registry import read_format
from roadsynth.datasets.validate import Problem, validate_coco_file


def import_dataset(fmt: str, src: Path, out: Path, *, images_root: Path | None = None, copy: bool = False,
                   overwrite: bool = False, **options: Any) -> tuple[DatasetSplit, list[Problem]]:
    """Read `src` in `fmt` (`options`: the format reader's `version`, `split`, `class_map`), write
    `out/annotations.json` and `out/images` (a link to the source's images, or a copy), validate the result;
    returns the dataset and the validator's problems."""
    split = read_format(fmt, src, images_root, **options)
    root = Path(split.images_root).resolve()
    if copy and Path(out).resolve().is_relative_to(root):
        # Copying a folder into itself would recurse until the disk or the path length gives out.
        raise OutputFolderError(f"--out {out} lies inside the images folder {root} it would copy; choose a folder "
                                "outside it")
    claim(out, "import", overwrite=overwrite)
    images = Path(out) / "images"
    if images.is_symlink() or images.exists():
        if images.is_symlink() and images.resolve() == root:
            pass  # the same import again
        elif images.is_symlink():
            images.unlink()
        else:
            shutil.rmtree(images)
    if not images.exists():
        if copy:
            shutil.copytree(root, images)
        else:
            images.symlink_to(root, target_is_directory=True)
    write_coco(split.dataset, Path(out) / "annotations.json")
    return DatasetSplit(split.dataset, images), validate_coco_file(Path(out) / "annotations.json", images)
