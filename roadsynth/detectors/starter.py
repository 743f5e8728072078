"""A starter detector that roadsynth trains itself, and the manifest that lets others trust it.

A perception team fine-tunes from a pretrained detector that already knows common road classes but not
the rare class they care about. `train_starter` makes such a model from bundled real data, so the
bundled experiments fine-tune from something that has learned to see vehicles at all:

- images holding a long-tail class (`exclude_categories`) are dropped whole, and so are images a person
  reviewed and found to show a long-tail object without a box (`exclude_images`, with the reason);
- only `classes` are kept, in that order;
- the manifest beside the weights lists the sha256 and pHash of every image the starter saw (train and
  val), the config, the library versions and the metrics on its own validation images. The experiment's
  leakage check reads it to prove the starter never saw a test image (evaluation/leakage.py).

No torch here: training goes through `make_detector`.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from roadsynth.config import StarterConfig
from roadsynth.datasets.io import atomic_write_json, atomic_write_text, read_json
from roadsynth.datasets.merge import link_merged
from roadsynth.datasets.records import Category, Dataset
from roadsynth.datasets.registry import read_dataset
from roadsynth.datasets.split import filter_dataset, split_dataset
from roadsynth.detectors.base import DatasetSplit
from roadsynth.detectors.reuse import library_version

MANIFEST = "manifest.json"
WEIGHTS = "weights.pt"


def select_images(ds: Dataset, cfg: StarterConfig) -> tuple[Dataset, list[dict[str, str]]]:
    """The starter's images and classes; every image left out is listed with its reason."""
    names = {c.id: c.name.lower() for c in ds.categories}
    have = set(names.values())
    if missing := [c for c in cfg.classes if c.lower() not in have]:
        raise ValueError(f"`classes` {missing} are in none of the sources (they have {sorted(have)})")
    banned = {c.lower() for c in cfg.exclude_categories}
    by_image = ds.annotations_by_image()
    reviewed = {Path(k).name: v for k, v in cfg.exclude_images.items()}
    unmatched = set(reviewed) - {Path(im.file_name).name for im in ds.images}
    if unmatched:
        raise ValueError(f"`exclude_images` names files that are in no source: {sorted(unmatched)[:5]}")
    keep, dropped = [], []
    for im in ds.images:
        hit = sorted({names[a.category_id] for a in by_image[im.id]} & banned)
        if hit:
            dropped.append({"file": im.file_name, "reason": f"has a box of {', '.join(hit)}"})
        elif Path(im.file_name).name in reviewed:
            dropped.append({"file": im.file_name, "reason": f"reviewed: {reviewed[Path(im.file_name).name]}"})
        else:
            keep.append(im.id)
    ds = filter_dataset(ds, keep)
    order = {c.lower(): k for k, c in enumerate(cfg.classes)}
    cats = tuple(Category(k + 1, name) for k, name in enumerate(cfg.classes))
    new_id = {c.id: order[c.name.lower()] + 1 for c in ds.categories if c.name.lower() in order}
    anns = tuple(replace(a, category_id=new_id[a.category_id]) for a in ds.annotations if a.category_id in new_id)
    return ds.with_(annotations=anns, categories=cats), dropped


def file_digests(path: Path) -> dict[str, Any]:
    from roadsynth.evaluation.leakage import phash

    return {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "phash": f"{phash(path):016x}"}


def train_starter(cfg: StarterConfig, out_dir: Path, *, overwrite: bool = False) -> dict[str, Any]:
    """Train the starter into `out_dir` (weights.pt, classes.json, manifest.json, config.yaml,
    training_curve.csv; `images/` and `run/` are the working files, not meant to be committed); the manifest."""
    from roadsynth.datasets.outdir import claim
    from roadsynth.detectors import make_detector
    from roadsynth.evaluation.coco_metrics import evaluate_detections, predictions_to_coco_results

    out_dir = claim(out_dir, "starter", overwrite=overwrite)
    portable = relative_paths(cfg.model_dump(mode="json"), out_dir)  # the folder is meant to be committed
    atomic_write_text(out_dir / "config.yaml", yaml.safe_dump(portable, sort_keys=False))
    parts = [(Path(s.path).name if s.format == "yolo" else Path(s.path).stem, read_dataset(s)) for s in cfg.sources]
    merged = link_merged(parts, out_dir / "images")
    ds, dropped = select_images(merged.dataset, cfg)
    split = split_dataset(ds, {"train": 1 - cfg.val_fraction, "val": cfg.val_fraction}, seed=cfg.split_seed)
    train, val = (DatasetSplit(split[k], merged.images_root) for k in ("train", "val"))

    detector = make_detector(cfg.detector)
    t0 = time.perf_counter()
    weights = detector.train(train, val, out_dir / "run", seed=cfg.seed)
    seconds = time.perf_counter() - t0
    preds = detector.predict(weights, [(im.id, val.images_root / im.file_name) for im in val.dataset.images])
    metrics = evaluate_detections(val.dataset, predictions_to_coco_results(preds)).summary()

    shutil.copyfile(weights, out_dir / WEIGHTS)
    shutil.copyfile(weights.with_name("classes.json"), out_dir / "classes.json")
    curve = weights.parent.parent / "results.csv"  # Ultralytics' per-epoch losses and val metrics
    if curve.is_file():
        shutil.copyfile(curve, out_dir / "training_curve.csv")
    images = []
    for name, sp in (("train", train), ("val", val)):
        for im in sp.dataset.images:
            images.append({"file": im.file_name, "split": name, **file_digests(sp.images_root / im.file_name)})
    manifest = {
        "name": cfg.name,
        "classes": list(cfg.classes),
        "weights": WEIGHTS,
        "weights_sha256": hashlib.sha256((out_dir / WEIGHTS).read_bytes()).hexdigest(),
        "versions": {d: library_version(d) for d in ("roadsynth", "ultralytics", "torch")}
                    | {"python": platform.python_version()},
        "train_seconds": round(seconds, 1),
        "val_metrics": metrics,
        "n_images": {"train": len(train.dataset.images), "val": len(val.dataset.images)},
        "images": images,
        "excluded": dropped,
        "config": portable,
    }
    atomic_write_json(out_dir / MANIFEST, manifest, indent=1)
    return manifest


def relative_paths(node: Any, base: Path) -> Any:
    """A config dump with absolute paths made relative to `base` (a starter folder travels with its repo)."""
    if isinstance(node, dict):
        return {k: relative_paths(v, base) for k, v in node.items()}
    if isinstance(node, list):
        return [relative_paths(v, base) for v in node]
    if isinstance(node, str) and Path(node).is_absolute():
        return os.path.relpath(node, Path(base).resolve())
    return node


def load_manifest(weights: Path) -> dict[str, Any] | None:
    """The manifest next to a weights file (a starter's), or None for weights that came without one."""
    path = Path(weights).with_name(MANIFEST)
    if not path.is_file():
        return None
    try:
        manifest = read_json(path, "starter manifest")
        if not isinstance(manifest.get("images"), list):
            raise ValueError("`images` must be a list")
        return manifest
    except (ValueError, AttributeError) as e:
        raise ValueError(f"{path}: not a starter manifest ({e})") from None
