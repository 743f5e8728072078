"""A reusable cut-out bank from a labelled dataset: build, score, gate, save (`roadsynth cutouts`).

Masks come from the dataset where it has them (COCO polygons, MSRC segment maps, Weizmann figure-ground)
and from the box by GrabCut otherwise (every other format roadsynth reads). Every cut-out carries its
mask quality score (generators/mask_score.py); with `min_quality` the low scorers are refused, and kept
in the folder marked `kept: false`, so a person can review them. The folder is a `kind: bank` source.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Mapping

from roadsynth.datasets.io import atomic_write_json
from roadsynth.generators.cutouts import CutoutBank, from_coco_polygons, from_msrc, from_weizmann

MASK_FORMATS = ("coco", "msrc", "weizmann")  # formats whose masks are the dataset's own


def build_from_dataset(fmt: str, src: Path, *, images_root: Path | None = None,
                       class_map: Mapping[str, str] | None = None, **reader_options) -> CutoutBank:
    """Cut-outs of `src` in format `fmt`; `class_map` (dataset class -> bank class) picks and renames the
    classes (default: every class, as named)."""
    if fmt == "msrc":
        bank = from_msrc(src, list(class_map) if class_map else ("cow", "sheep", "dog", "horse"))
    elif fmt == "weizmann":
        bank = from_weizmann(src)
    elif fmt == "coco":
        if images_root is None:
            raise ValueError("`images_root` is required for coco cut-outs")
        from roadsynth.datasets.io import read_json

        names = [c["name"] for c in read_json(src, "COCO instances file").get("categories", [])]
        bank = from_coco_polygons(src, images_root, list(class_map) if class_map else names)
    else:
        from roadsynth.config.experiment import DatasetSource
        from roadsynth.datasets.sources import read_dataset
        from roadsynth.generators.cutouts import build_bank_from_boxes

        split = read_dataset(DatasetSource(format=fmt, path=src, images_root=images_root, **reader_options))
        mapping = dict(class_map) if class_map else {c.name: c.name for c in split.dataset.categories}
        return build_bank_from_boxes(split.dataset, split.images_root, mapping)
    if class_map:  # mask formats name their own classes: rename after the fact
        bank = CutoutBank([replace(c, category=class_map.get(c.category, c.category)) for c in bank.cutouts],
                          bank.problems)
    return bank


def save_bank(bank: CutoutBank, out: Path, min_quality: float | None = None) -> dict:
    """Save `bank` into `out` (kept and refused cut-outs, `index.json`) with a `manifest.json` of counts;
    returns the manifest."""
    refused = [c for c in bank.cutouts if min_quality is not None and c.quality is not None and c.quality < min_quality]
    refused_ids = {id(c) for c in refused}
    kept = CutoutBank([c for c in bank.cutouts if id(c) not in refused_ids], bank.problems)
    kept.save(out, refused=refused)
    scores = sorted(c.quality for c in bank.cutouts if c.quality is not None)
    manifest = {
        "cutouts": len(bank.cutouts), "kept": len(kept.cutouts), "refused": len(refused),
        "min_quality": min_quality,
        "kept_per_class": dict(sorted(Counter(c.category for c in kept.cutouts).items())),
        "refused_per_class": dict(sorted(Counter(c.category for c in refused).items())),
        "mask_methods": dict(sorted(Counter(c.mask_method for c in bank.cutouts).items())),
        "quality_quartiles": [scores[int(q * (len(scores) - 1))] for q in (0.25, 0.5, 0.75)] if scores else None,
        "problems": bank.problems,
    }
    atomic_write_json(out / "manifest.json", manifest, indent=1)
    return manifest
