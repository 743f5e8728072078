"""What a generation run reads: its scene sources (background frames and their labels) and its cut-out bank."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from roadsynth.config import GenerateConfig, SceneSource
from roadsynth.datasets.coco import dataset_from_coco_dict
from roadsynth.datasets.io import MAX_PIXELS, read_json
from roadsynth.datasets.label_maps import read_label_map_frames
from roadsynth.datasets.records import Category, Dataset
from roadsynth.datasets.validate import validate_coco
from roadsynth.datasets.yolo import read_yolo
from roadsynth.generators.cutouts import CutoutBank
from roadsynth.generators.cutout_sources import build_bank

Sources = list[tuple[Dataset, Path]]  # per scene source: its frames and the folder their file names are in


def load_scene_sources(cfg: GenerateConfig) -> Sources:
    return [load_scene_source(src, cfg.max_image_pixels) for src in cfg.scenes]


def load_scene_source(src: SceneSource, max_pixels: int | None = MAX_PIXELS) -> tuple[Dataset, Path]:
    """A scene source as a Dataset (with the categories its pseudo-labeller can add); broken records are
    dropped and listed in `info["problems"]`."""
    ds, root = _read_scene_source(src, max_pixels)
    if src.pseudo_labels is not None:
        have = {c.name.lower() for c in ds.categories}
        extra = [n for n in dict.fromkeys(src.pseudo_labels.classes.values()) if n.lower() not in have]
        start = max((c.id for c in ds.categories), default=0) + 1
        ds = ds.with_(categories=ds.categories + tuple(Category(start + k, n) for k, n in enumerate(extra)))
    return ds, root


def _read_scene_source(src: SceneSource, max_pixels: int | None) -> tuple[Dataset, Path]:
    if src.format in ("label_maps", "folder"):
        ds = read_label_map_frames(
            src.path, src.label_maps, object_values=src.object_values, min_object_px=src.min_object_px,
            scene_regex=src.scene_regex, source_name=src.name, max_pixels=max_pixels,
        )
        return ds, src.path
    if src.format == "coco":
        if src.images_root is None:
            raise ValueError(f"scene source `{src.name}`: `images_root` is required for format coco")
        return read_coco_lenient(src.path), src.images_root
    if src.format != "yolo":  # the public driving datasets' layouts; each reader lists what it could not read
        from roadsynth.datasets.formats import read_format

        options = src.reader_options()
        if src.format == "bdd100k" and src.label_maps:
            options["drivable_maps"] = src.label_maps
        split = read_format(src.format, src.path, src.images_root, **options)
        problems = [{"file": str(src.path), "error": p} for p in split.dataset.info.get("problems", [])]
        return split.dataset.with_(info={**dict(split.dataset.info), "problems": problems}), Path(split.images_root)
    ds, root = read_yolo(src.path, strict=False, max_pixels=max_pixels)
    problems = [{"file": p.split(":")[0], "error": p} for p in ds.info.get("problems", [])]
    return ds.with_(info={**dict(ds.info), "problems": problems}), root


def read_coco_lenient(path: Path) -> Dataset:
    """COCO scene source minus the records the validator objects to, each listed with its problem (image
    files are checked later, per frame, when they are loaded). Only a file with nothing usable (not JSON,
    no `images`/`categories` list, no valid category) is an error for the whole file."""
    try:
        raw = read_json(path, "COCO scene source")
    except OSError as e:
        raise ValueError(f"{path}: not a readable COCO file ({type(e).__name__}: {e})") from None
    problems = validate_coco(raw, None, check_images=False, source=str(path))
    fatal = [p for p in problems if not p.where.startswith(("image ", "annotation ", "category "))]
    if fatal:
        raise ValueError(f"{path}: not a usable COCO file: " + "; ".join(str(p) for p in fatal[:5]))
    images, anns, cats = _usable(raw["images"]), _usable(raw["annotations"]), _usable(raw["categories"])
    bad_images = _ids_named(problems, "image")
    bad_cats = _ids_named(problems, "category")
    cats = {i: c for i, c in cats.items() if i not in bad_cats}
    if not cats:
        raise ValueError(f"{path}: not a usable COCO file: no valid category")
    images = {i: im for i, im in images.items() if i not in bad_images}
    bad_anns = _ids_named(problems, "annotation")
    anns = {i: a for i, a in anns.items() if i not in bad_anns and a.get("image_id") in images
            and a.get("category_id") in cats}
    raw = {**raw, "images": list(images.values()), "annotations": list(anns.values()), "categories": list(cats.values())}
    ds = dataset_from_coco_dict(raw, source=str(path))
    return ds.with_(info={**dict(ds.info), "problems": [{"file": str(path), "error": str(p)} for p in problems]})


def _usable(records: list) -> dict[int, dict]:
    """Records with a positive integer id, the first of each id (a later duplicate never drops the original)."""
    out: dict[int, dict] = {}
    for r in records:
        i = r.get("id") if isinstance(r, dict) else None
        if isinstance(i, int) and not isinstance(i, bool) and i > 0 and i not in out:
            out[i] = r
    return out


def _ids_named(problems, kind: str) -> set[int]:
    """Ids of `kind` records with a problem other than being a duplicate (the first of an id stays)."""
    out = set()
    for p in problems:
        parts = p.where.split()
        if parts[0] == kind and len(parts) > 1 and parts[1].isdigit() and p.message != "duplicate id":
            out.add(int(parts[1]))
    return out


def build_bank_for(cfg: GenerateConfig) -> CutoutBank:
    """The cut-out bank of a run: saved banks are loaded, other sources are built from their files."""
    saved = [CutoutBank.load(c.path) for c in cfg.cutouts if c.kind == "bank"]
    built = build_bank([c.model_dump() for c in cfg.cutouts if c.kind != "bank"])
    bank = CutoutBank.concat([built, *saved])
    if cfg.insert is not None and cfg.insert.cutout_min_quality is not None:
        bank = bank.gate(cfg.insert.cutout_min_quality)
    missing = sorted(c for c in cfg.insert.categories if not bank.by_category(c)) if cfg.insert else []
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
