"""What a generation run reads: its scene sources (background frames and their labels) and its cut-out bank."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from roadsynth.config import GenerateConfig, SceneSource
from roadsynth.datasets.io import MAX_PIXELS
from roadsynth.datasets.label_maps import read_label_map_frames
from roadsynth.datasets.records import Category, Dataset
from roadsynth.datasets.registry import FRAME_FORMATS, get_format, read_format
from roadsynth.detectors.base import Prediction
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
    if src.format in FRAME_FORMATS:
        ds = read_label_map_frames(
            src.path, src.label_maps, object_values=src.object_values, min_object_px=src.min_object_px,
            scene_regex=src.scene_regex, source_name=src.name, max_pixels=max_pixels,
        )
        return ds, src.path
    fmt = get_format(src.format)  # a SceneSource was checked for `images_root` when its config loaded
    options = src.reader_options()
    if fmt.label_maps_option and src.label_maps:
        options[fmt.label_maps_option] = src.label_maps
    if fmt.read_frames is not None:  # skips bad records itself, each listed with its file
        split = fmt.read_frames(src.path, src.images_root, max_pixels, **options)
        return split.dataset, Path(split.images_root)
    split = read_format(src.format, src.path, src.images_root, **options)
    problems = [{"file": str(src.path), "error": p} for p in split.dataset.info.get("problems", [])]
    return split.dataset.with_(info={**dict(split.dataset.info), "problems": problems}), Path(split.images_root)


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
    """The detectors of the scene sources that ask for pseudo-labels: one per source, loaded on first use
    (`make_detector(...).load`) and kept for the process; the detector's library is imported only when a
    source names weights."""

    def __init__(self, cfg: GenerateConfig):
        self.cfg = cfg
        self._models: dict[int, object] = {}
        self._lock = threading.Lock()  # task-runner threads share a worker; one prediction at a time

    def __call__(self, source_index: int, rgb: np.ndarray) -> list[Prediction]:
        pl = self.cfg.scenes[source_index].pseudo_labels
        with self._lock:
            det = self._models.get(source_index)
            if det is None:
                from roadsynth.detectors import make_detector

                det = self._models[source_index] = make_detector(pl).load(pl.weights, pl.min_score)
            return det([rgb])[0]
