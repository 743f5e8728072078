"""What the review/demo UI does, without the UI: sample generation, box drawing, curation, detections.

`Studio` generates samples as an interactive `generate.GenerationRun` (the flows' own chunk code and assembly)
into a session folder that is itself a generated dataset; `Review` opens any generated dataset, draws its
boxes, lists each generated object with its provenance and verifier scores, and records accept/reject
decisions into `curated.json` (standard COCO minus the rejected objects, written atomically), which
FiftyOne and CVAT import as any COCO file. The Gradio adapter (`roadsynth.ui`) only wires widgets to these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from roadsynth.config import Config, DetectorConfig
from roadsynth.datasets.coco import dataset_to_coco_dict, read_coco
from roadsynth.datasets.io import atomic_write_json, inside, load_image, read_json, read_json_record
from roadsynth.datasets.records import Annotation, Dataset
from roadsynth.evaluation.draw import BoxMode, draw_boxes, draw_detections

Method = Literal["Original", "Ours (inpainting)", "Paste"]


@dataclass
class Review:
    """A generated dataset folder under review; decisions persist in `curated.json` beside it."""

    folder: Path
    # Folders the user declared (the scene sources of the config the UI was started with): the only places the
    # original frames may be read from. A dataset's own files (its config.yaml, background_path) are data, and
    # a crafted dataset must not make the UI show files from elsewhere.
    scene_roots: tuple[Path, ...] = ()
    dataset: Dataset = field(init=False)
    rejected: set[int] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.reload()

    def reload(self) -> None:
        self.dataset = read_coco(self.folder / "annotations.json")
        curated = self.folder / "curated.json"
        ids = {a.id for a in self.dataset.annotations if a.generated}
        if curated.exists():  # earlier decisions survive a restart of the UI
            info = read_json(curated, "curated annotations").get("info", {})
            self.rejected = set(info.get("rejected_annotation_ids", [])) & ids
        else:
            self.rejected &= ids

    @property
    def names(self) -> dict[int, str]:
        return {c.id: c.name for c in self.dataset.categories}

    def __len__(self) -> int:
        return len(self.dataset.images)

    def annotations(self, index: int) -> list[Annotation]:
        im = self.dataset.images[index]
        return self.dataset.annotations_of(im.id)

    def image(self, index: int) -> np.ndarray:
        im = self.dataset.images[index]
        return load_image(inside(self.folder / "images", im.file_name, f"image {im.id}"))

    def original(self, index: int) -> np.ndarray | None:
        """The background frame the sample was made from, when its recorded path lies inside one of
        `scene_roots` (None otherwise)."""
        p = self.dataset.images[index].attributes.get("background_path")
        if not p:
            return None
        path = Path(p).resolve()
        if not any(path.is_relative_to(root) for root in self.scene_roots) or not path.is_file():
            return None
        return load_image(path)

    def render(self, index: int, mode: BoxMode) -> np.ndarray:
        return draw_boxes(self.image(index), self.annotations(index), self.names, mode, self.rejected)

    def objects(self, index: int) -> list[dict[str, Any]]:
        """One row per generated object: id, category, decision, method/source, verifier scores."""
        rows = []
        for a in self.annotations(index):
            if not a.generated:
                continue
            p = a.provenance.to_dict()
            scores = p.get("verifier", {})
            rows.append({"id": a.id, "category": self.names.get(a.category_id), "status":
                         "rejected" if a.id in self.rejected else "accepted", "method": p.get("method"),
                         "source": p.get("source"), "prompt": p.get("prompt", ""), "seed": p.get("seed"),
                         "changed_frac_in_mask": scores.get("changed_frac_in_mask"),
                         "mean_change_in_mask": scores.get("mean_change_in_mask"),
                         "spill_frac": scores.get("spill_frac"),
                         # From the optional detector check (insert.detector_check); None without one.
                         "detector_score": scores.get("detector_score"), "detector_found": scores.get("detector_found"),
                         "box": [round(v, 1) for v in a.bbox.xywh()]})
        return rows

    def decide(self, annotation_id: int, accept: bool) -> Path:
        ids = {a.id for a in self.dataset.annotations if a.generated}
        if annotation_id not in ids:
            raise ValueError(f"annotation {annotation_id} is not a generated object of {self.folder / 'annotations.json'}")
        (self.rejected.discard if accept else self.rejected.add)(annotation_id)
        return self.write_curated()

    def write_curated(self) -> Path:
        """`curated.json`: the dataset minus rejected objects (atomic write); the decisions ride in `info`."""
        keep = tuple(a for a in self.dataset.annotations if a.id not in self.rejected)
        ds = self.dataset.with_(annotations=keep, info={**dict(self.dataset.info),
                                                        "rejected_annotation_ids": sorted(self.rejected),
                                                        "curated_from": "annotations.json"})
        path = self.folder / "curated.json"
        atomic_write_json(path, dataset_to_coco_dict(ds))
        return path


class Studio:
    """Generate one sample at a time from a config, through the flows' own chunk code."""

    def __init__(self, cfg: Config, session: Path, config_path: Path | None = None):
        if cfg.generate.insert is None:
            raise ValueError("the UI generates objects: the config needs `generate.insert`")
        from roadsynth.generate.run import GenerationRun
        from roadsynth.generate.sources import build_bank_for

        # One interactive GenerationRun: a new folder, or an earlier session's with its samples kept.
        self.run = GenerationRun(cfg, session, interactive=True)
        self.session, self.sources = self.run.out, self.run.sources
        self.config_path = Path(config_path) if config_path is not None else None  # the ego editor writes beside it
        # The scene folders of the user's config: where the Original view may read frames from.
        self.scene_roots = tuple(Path(p).resolve() for s in cfg.generate.scenes for p in (s.path, s.images_root) if p)
        self.frames = [(s, im) for s, (ds, _) in enumerate(self.sources) for im in ds.images]
        self.bank = build_bank_for(cfg.generate)
        self._workers: dict[tuple, Any] = {}

    @property
    def cfg(self) -> Config:
        """The config the session's next samples are made with (the ego editor may replace it)."""
        return self.run.cfg

    @property
    def samples(self) -> int:
        return len(self.run.chunks)

    def frame_labels(self) -> list[str]:
        return [f"{k}: {self.cfg.generate.scenes[s].name}/{im.file_name}" for k, (s, im) in enumerate(self.frames)]

    def generate(self, frame_index: int, n_objects: int, method: Method, prompt: str = "", strength: float = 0.7,
                 seed: int | None = None) -> Review:
        """Append one sample (the chosen frame with `n_objects` inserted) to the session dataset."""
        from roadsynth.generate import FrameJob, Worker

        if not 0 <= frame_index < len(self.frames):
            raise ValueError(f"`frame_index` must be in [0, {len(self.frames) - 1}], but got {frame_index}")
        if not 1 <= n_objects <= 20:
            raise ValueError(f"`n_objects` must be in [1, 20], but got {n_objects}")
        if method not in ("Original", "Paste", "Ours (inpainting)"):
            raise ValueError(f"`method` must be Original, Paste or Ours (inpainting), but got {method!r}")
        g = self.cfg.generate
        insert = g.insert.model_copy(update={"objects_per_image": (n_objects, n_objects), "method": "paste"})
        if method == "Ours (inpainting)":
            if g.insert.inpaint is None:
                raise ValueError("`Ours (inpainting)` needs `generate.insert.inpaint` in the config (a local checkpoint)")
            prompts = {c: prompt for c in g.insert.categories} if prompt.strip() else g.insert.inpaint.prompts
            insert = insert.model_copy(update={"method": "inpaint", "inpaint": g.insert.inpaint.model_copy(
                update={"prompts": prompts, "strength": strength})})
        if method == "Original":  # the frame as it is, through the same chunk code with insertion off
            insert = None
        cfg = self.cfg.model_copy(update={"generate": g.model_copy(update={"insert": insert})})
        key = (method, n_objects, prompt, strength)
        if key not in self._workers:
            self._workers[key] = Worker(cfg, sources=self.sources, bank=self.bank)
        s, im = self.frames[frame_index]
        index = self.samples
        job = FrameJob(index, s, im.id, int(seed if seed is not None else 1000 + index))
        # Category ids come from the scene sources plus the insert categories, the same for every sample.
        self.run.add(self._workers[key], [job])
        return Review(self.session, self.scene_roots)

    def frame_image(self, frame_index: int) -> np.ndarray:
        s, im = self.frames[frame_index]
        return load_image(inside(self.sources[s][1], im.file_name, f"scene source {self.cfg.generate.scenes[s].name}"))

    def ego_view(self, frame_index: int, points: list[tuple[float, float]]) -> np.ndarray:
        """The frame with its source's ego mask as configured now (shaded) and the polygon being drawn."""
        from roadsynth.evaluation.draw import draw_polygon, shade
        from roadsynth.generate.scenes import ego_mask

        s, im = self.frames[frame_index]
        rgb = self.frame_image(frame_index)
        current = ego_mask(self.cfg.generate.scenes[s], im, rgb.shape[1], rgb.shape[0])
        return draw_polygon(shade(rgb, current.mask), points)

    def save_ego(self, frame_index: int, points: list[tuple[float, float]]) -> Path:
        """Save `points` as the ego polygon of the frame's scene source into a config beside the user's
        (`config.edit`), and generate from it from now on; returns the written config's path."""
        from roadsynth.config import load_config
        from roadsynth.config.edit import with_ego_polygon

        if self.config_path is None:
            raise ValueError("the ego editor needs the config's file (start the UI with `--config`)")
        s, im = self.frames[frame_index]
        path = with_ego_polygon(self.config_path, self.cfg.generate.scenes[s].name, points, im.file_name)
        self.run.cfg, self.config_path = load_config(path), path
        self._workers.clear()  # workers hold the old scene sources' ego masks
        return path


def list_runs(experiment_dir: Path) -> list[dict[str, Any]]:
    """Finished detector runs of an experiment folder (arm, seed, weights, mAP).

    A run's weights path is read from its metrics.json, so it is resolved against the experiment folder
    and must stay inside it: a crafted metrics.json cannot make the UI load a pickle from elsewhere.
    """
    root = Path(experiment_dir).resolve()
    rows = []
    for p in sorted(root.glob("runs/*/metrics.json")):
        m = read_json(p, "run metrics")
        weights = (root / str(m.get("weights", ""))).resolve()
        if not weights.is_relative_to(root) or not weights.is_file():
            continue
        rows.append({"label": f"{m['arm']} seed {m['seed']} (mAP50-95 {m.get('mAP50_95', float('nan')):.3f})",
                     "weights": str(weights), "arm": m["arm"], "seed": m["seed"]})
    return rows


def detect(detector: DetectorConfig, weights: Path, rgb: np.ndarray, min_score: float = 0.25) -> np.ndarray:
    """A trained detector's boxes on one image (cyan), scores >= `min_score`: the experiment's own detector
    section (`make_detector`) loads the run's weights."""
    from roadsynth.detectors import make_detector

    [found] = make_detector(detector).load(Path(weights), min_score)([rgb])
    return draw_detections(rgb, found, min_score)


class DoseCurve:
    """An experiment's dose-response curve for the UI: the figure with one dose marked, what the curve says
    there, and the generated images that dose adds to the next smaller one (the doses are nested)."""

    def __init__(self, experiment_dir: Path):
        self.root = Path(experiment_dir).resolve()
        m = read_json_record(self.root / "metrics.json", "experiment metrics") or {}
        self.curves = [r for r in m.get("curves") or [] if r.get("metric") == "AP50"]
        self.trends = [t for t in m.get("trends") or [] if t.get("metric") == "AP50"]
        self.methods = list(dict.fromkeys(r["method"] for r in self.curves))
        self.doses = sorted({int(r["dose"]) for r in self.curves})
        self.target = self.curves[0]["class"] if self.curves else None

    def __bool__(self) -> bool:
        return bool(self.curves)

    def figure(self, method: str, dose: int) -> np.ndarray:
        import io

        from PIL import Image

        from roadsynth.evaluation.plots import dose_curves

        rows = [r for r in self.curves if r["class"] == self.target]  # every method: the choice is compared
        with Image.open(io.BytesIO(dose_curves(rows, self.trends, mark=dose))) as im:
            return np.asarray(im.convert("RGB"))

    def summary(self, method: str, dose: int) -> str:
        row = next((r for r in self.curves if r["class"] == self.target and r["method"] == method
                    and r["dose"] == dose), None)
        t = next((t for t in self.trends if t["class"] == self.target and t["method"] == method), None)
        text = "" if row is None else (
            f"**{method}, dose {dose}** ({'the real arm' if dose == 0 else f'{dose} generated images'}): "
            f"{self.target} AP50 {row['mean'] * 100:.2f}" + (f" ± {row['std'] * 100:.2f}" if row.get("std") is not None
                                                            else "") + f" over {row['n_seeds']} seeds.")
        if t is not None:
            text += (f" Trend {t['slope_per_doubling'] * 100:+.2f} points per doubling, 95 % CI over test images "
                     f"[{t['ci_low'] * 100:+.2f}, {t['ci_high'] * 100:+.2f}] → **{t['verdict']}**.")
        return text

    def examples(self, method: str, dose: int, n: int = 4) -> list[np.ndarray]:
        """Up to `n` of the images dose `dose` adds to the next smaller dose, generated boxes drawn."""
        from roadsynth.arms import GENERATED

        folder = self.root / ("sources" if method == "real+sources" else GENERATED.get(method, "generated"))
        if dose <= 0 or not (folder / "annotations.json").is_file():
            return []
        ds = read_coco(folder / "annotations.json")
        ids = sorted(im.id for im in ds.images)
        smaller = max([d for d in self.doses if d < dose], default=0)
        if method == "real+sources":  # whole photos for as many boxes as the dose pasted: show its first ones
            smaller = 0
        by_id, by_image = {im.id: im for im in ds.images}, ds.annotations_by_image()
        names = {c.id: c.name for c in ds.categories}
        out = []
        for i in ids[smaller:dose][:n]:
            rgb = load_image(inside(folder / "images", by_id[i].file_name, f"{folder} image {i}"))
            out.append(draw_boxes(rgb, by_image.get(i, []), names))
        return out
