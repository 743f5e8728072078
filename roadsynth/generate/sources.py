"""What a generation run reads: its scene sources (background frames and their labels) and its cut-out bank."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from roadsynth.config import GenerateConfig, SceneSource
from roadsynth.datasets.coco import dataset_from_coco_dict
from roadsynth.datasets.label_maps import read_label_map_frames
from roadsynth.datasets.records import Category, Dataset
from roadsynth.datasets.validate import validate_coco
from roadsynth.datasets.yolo import read_yolo
from roadsynth.generators.cutouts import CutoutBank, build_bank

Sources = list[tuple[Dataset, Path]]  # per scene source: its frames and the folder their file names are in


def load_scene_sources(cfg: GenerateConfig) -> Sources:
    return [load_scene_source(src) for src in cfg.scenes]


def load_scene_source(src: SceneSource) -> tuple[Dataset, Path]:
    """A scene source as a Dataset (with the categories its pseudo-labeller can add); broken records are
    dropped and listed in `info["problems"]`."""
    ds, root = _read_scene_source(src)
    if src.pseudo_labels is not None:
        have = {c.name.lower() for c in ds.categories}
        extra = [n for n in dict.fromkeys(src.pseudo_labels.classes.values()) if n.lower() not in have]
        start = max((c.id for c in ds.categories), default=0) + 1
        ds = ds.with_(categories=ds.categories + tuple(Category(start + k, n) for k, n in enumerate(extra)))
    return ds, root


def _read_scene_source(src: SceneSource) -> tuple[Dataset, Path]:
    if src.format in ("label_maps", "folder"):
        ds = read_label_map_frames(
            src.path, src.label_maps, object_values=src.object_values, min_object_px=src.min_object_px,
            scene_regex=src.scene_regex, source_name=src.name,
        )
        return ds, src.path
    if src.format == "coco":
        if src.images_root is None:
            raise ValueError(f"scene source `{src.name}`: `images_root` is required for format coco")
        return read_coco_lenient(src.path), src.images_root
    ds, root = read_yolo(src.path, strict=False)
    problems = [{"file": p.split(":")[0], "error": p} for p in ds.info.get("problems", [])]
    return ds.with_(info={**dict(ds.info), "problems": problems}), root


def read_coco_lenient(path: Path) -> Dataset:
    """COCO scene source minus the images/annotations the validator objects to (image files are checked
    later, per frame, when they are loaded)."""
    raw = json.loads(Path(path).read_text())
    problems = validate_coco(raw, None, check_images=False, source=str(path))
    bad_images = {int(p.where.split()[1]) for p in problems if p.where.startswith("image ") and p.where.split()[1].isdigit()}
    bad_anns = {int(p.where.split()[1]) for p in problems
                if p.where.startswith("annotation ") and p.where.split()[1].lstrip("-").isdigit()}
    if any(not (p.where.startswith(("image ", "annotation ", "category "))) for p in problems):
        raise ValueError(f"{path}: not a usable COCO file: " + "; ".join(str(p) for p in problems[:5]))
    raw["images"] = [im for im in raw["images"] if im.get("id") not in bad_images]
    raw["annotations"] = [a for a in raw["annotations"] if isinstance(a, dict) and a.get("id") not in bad_anns
                          and a.get("image_id") not in bad_images]
    ds = dataset_from_coco_dict(raw, source=str(path))
    return ds.with_(info={**dict(ds.info), "problems": [{"file": str(path), "error": str(p)} for p in problems]})


def build_bank_for(cfg: GenerateConfig) -> CutoutBank:
    """The cut-out bank of a run: saved banks are loaded, other sources are built from their files."""
    saved = [CutoutBank.load(c.path) for c in cfg.cutouts if c.kind == "bank"]
    built = build_bank([c.model_dump() for c in cfg.cutouts if c.kind != "bank"])
    bank = CutoutBank.concat([built, *saved])
    missing = sorted(set(cfg.insert.categories) - set(bank.categories)) if cfg.insert else []
    if missing:
        raise ValueError(f"no cut-outs for categories {missing}; the cut-out sources give {sorted(bank.categories)}")
    return bank


def output_categories(cfg: GenerateConfig, sources: Sources) -> list[str]:
    """The output dataset's categories in id order: the sources', then inserted and restyled-into ones
    (case-insensitive names; the first spelling wins)."""
    names: list[str] = []
    for ds, _ in sources:  # a pseudo-labelling source lists its detector's output classes among these
        names += [c.name for c in ds.categories]
    names += list(cfg.insert.categories) if cfg.insert else []
    names += [s.category for s in cfg.restyle.styles if s.category] if cfg.restyle else []
    seen: dict[str, str] = {}
    for n in names:
        seen.setdefault(n.lower(), n)
    return list(seen.values())


class PseudoLabeller:
    """The detectors of the scene sources that ask for pseudo-labels: one per source, loaded on first use,
    kept for the process (Ultralytics is imported only here, and only when a source names weights)."""

    def __init__(self, cfg: GenerateConfig):
        self.cfg = cfg
        self._models: dict[int, object] = {}
        self._lock = threading.Lock()  # task-runner threads share a worker; one prediction at a time

    def __call__(self, source_index: int, rgb: np.ndarray) -> list:
        pl = self.cfg.scenes[source_index].pseudo_labels
        with self._lock:
            det = self._models.get(source_index)
            if det is None:
                from roadsynth.detectors.yolo_ultralytics import NamedYolo

                det = self._models[source_index] = NamedYolo(pl.weights, imgsz=pl.imgsz, conf=pl.min_score,
                                                             device=pl.device)
            return det([rgb])[0]
