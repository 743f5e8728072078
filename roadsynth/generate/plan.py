"""Planning: which background frame and seed each output image gets, and where its objects go.

Every output image `i` is fully determined by the config and `i` (its background frame, its seed),
never by chunking or by which worker runs it, so a resumed or scaled-out run writes the same dataset
as a single uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from roadsynth.config import GenerateConfig, SceneSource
from roadsynth.datasets.io import inside, load_image
from roadsynth.datasets.records import PSEUDO_LABEL, Annotation, Box, Dataset, ImageRecord, Provenance
from roadsynth.datasets.sampling import select_images
from roadsynth.detectors.base import Prediction
from roadsynth.generate.follow import Followed, followed_requests
from roadsynth.generate.sources import Sources
from roadsynth.generators.cutouts import CutoutBank
from roadsynth.generators.harmonize import jpeg_quality
from roadsynth.geometry.camera import GroundModel
from roadsynth.geometry.fit import FitResult
from roadsynth.geometry.placement import ObjectRequest
from roadsynth.geometry.records import Placement
from roadsynth.geometry.regions import GroundRegion
from roadsynth.geometry.ego import EGO_KEY, EgoMask
from roadsynth.generate.scenes import SceneFrame, ego_mask, fit_source_camera, ground_model, ground_region, place_for_frame


MIN_FRAME_SIDE = 32  # a background frame smaller than this is a thumbnail or a broken file, not a road scene


@dataclass(frozen=True)
class FrameJob:
    index: int  # output image index, 0-based; output image id = index + 1
    scene_source: int  # index into cfg.scenes
    frame_id: int  # image id inside that source's dataset
    seed: int


def plan_jobs(cfg: GenerateConfig, sources: Sources) -> list[FrameJob]:
    """Background frame and seed of every output image; round-robin over sources, shuffled frames."""
    rng = np.random.default_rng(cfg.seed)
    orders = [rng.permutation([im.id for im in select_images(ds, src.filter)]).tolist()
              for src, (ds, _) in zip(cfg.scenes, sources)]
    if not any(orders):
        raise ValueError(f"no background frames pass the filters of any scene source ({[s.name for s in cfg.scenes]})")
    seeds = np.random.SeedSequence(cfg.seed).generate_state(cfg.n_images, dtype=np.uint32)
    usable = [i for i, o in enumerate(orders) if o]
    jobs = []
    for k in range(cfg.n_images):
        s = usable[k % len(usable)]
        order = orders[s]
        jobs.append(FrameJob(k, s, int(order[(k // len(usable)) % len(order)]), int(seeds[k])))
    return jobs


def chunked(jobs: list[FrameJob], size: int) -> list[list[FrameJob]]:
    return [jobs[i : i + size] for i in range(0, len(jobs), size)]


@dataclass(frozen=True)
class FrameGeometry:
    """Everything placement needs for one background frame."""

    src: SceneSource
    ds: Dataset
    root: Path  # the source's images folder
    rec: ImageRecord
    existing: list[Annotation]
    rgb: np.ndarray = field(repr=False)
    frame: SceneFrame
    camera: GroundModel
    ego: EgoMask
    region: GroundRegion | None  # None when nothing is inserted (restyle / weather only): no region is needed
    jpeg_quality: int | None = None  # the frame file's own, for texture matching


@dataclass
class FramePlan:
    """A frame ready for insertion; `rgb` and `existing` change as the appearance steps run."""

    job: FrameJob
    geometry: FrameGeometry
    existing: list[Annotation]
    rgb: np.ndarray = field(repr=False)
    placements: list[Placement]
    unplaced: list[tuple[str, str]]
    occluders: dict[int, Box | np.ndarray]  # nearer existing objects (boxes) and the ego vehicle (a mask)
    rng: np.random.Generator
    restyle: dict | None = None  # vehicle restyle record (edits, refusals) when that step ran
    requests: list[ObjectRequest] = field(default_factory=list)  # what placement was asked for


Labeller = Callable[[int, np.ndarray], list[Prediction]]  # (source index, RGB) -> detections


def frame_geometry(cfg: GenerateConfig, job: FrameJob, sources: Sources, fits: dict[int, FitResult | None],
                   labeller: Labeller | None = None) -> FrameGeometry:
    """The job's background frame with its ground model and drivable region; `fits` caches per-source fits.
    A source with `pseudo_labels` gets its existing objects from `labeller` (the Worker's detector)."""
    src = cfg.scenes[job.scene_source]
    ds, root = sources[job.scene_source]
    rec = ds.image(job.frame_id)
    existing = ds.annotations_of(rec.id)
    names = {c.id: c.name for c in ds.categories}
    path = inside(root, rec.file_name, f"scene source `{src.name}` image {rec.id}")
    rgb = load_image(path, max_pixels=cfg.max_image_pixels)
    if min(rgb.shape[:2]) < MIN_FRAME_SIDE:
        raise ValueError(f"scene source `{src.name}` image {rec.id} ({rec.file_name}) is {rgb.shape[1]}x{rgb.shape[0]}: "
                         f"too small to be a road frame (under {MIN_FRAME_SIDE} px)")
    if (rgb.shape[1], rgb.shape[0]) != (rec.width, rec.height):
        raise ValueError(f"scene source `{src.name}` image {rec.id} ({rec.file_name}): the record says "
                         f"{rec.width}x{rec.height} but the file is {rgb.shape[1]}x{rgb.shape[0]}; its boxes would "
                         "land at the wrong scale (fix the record or the file)")
    if src.pseudo_labels is not None and labeller is not None:
        existing += pseudo_labels(src, rec.id, ds, labeller(job.scene_source, rgb))
    h, w = rgb.shape[:2]
    if job.scene_source not in fits:
        fits[job.scene_source] = fit_source_camera(ds, src.camera)
    frame = SceneFrame(rec, w, h, [(a.id, a.bbox) for a in existing], [(names[a.category_id], a.bbox) for a in existing])
    calibration = rec.attributes.get("camera") if isinstance(rec.attributes.get("camera"), dict) else None
    camera = ground_model(src.camera, w, h, fits[job.scene_source], calibration)
    ego = ego_mask(src, rec, w, h)
    # Only placement needs the drivable region: a restyle- or weather-only run must not skip a frame (a close-up
    # vehicle photo, say) because its road cannot be found.
    region = ground_region(frame, src, camera, rgb, ego) if cfg.insert is not None else None
    return FrameGeometry(src, ds, root, rec, existing, rgb, frame, camera, ego, region, jpeg_quality(path))


def pseudo_labels(src: SceneSource, image_id: int, ds: Dataset, found: list[Prediction]) -> list[Annotation]:
    """A detector's finds as labels of the source's categories, marked as pseudo-labels (ids above the
    source's own, so they never collide with a real annotation id)."""
    ids = {c.name.lower(): c.id for c in ds.categories}
    first = max((a.id for a in ds.annotations), default=0) + 1
    out = []
    for d in found:
        name = src.pseudo_labels.classes.get(d.name)
        if name is None or d.score < src.pseudo_labels.min_score:
            continue
        prov = Provenance(PSEUDO_LABEL, str(src.pseudo_labels.weights), 0,
                          {"score": round(float(d.score), 4), "detector_class": d.name})
        out.append(Annotation(first + len(out), image_id, ids[name.lower()], d.box, provenance=prov))
    return out


def object_requests(cfg: GenerateConfig, bank: CutoutBank, rng: np.random.Generator) -> list[ObjectRequest]:
    """What to insert: categories by weight, each with its cut-out chosen now so placement knows its shape."""
    lo, hi = cfg.insert.objects_per_image
    names = list(cfg.insert.categories)
    weights = np.array([cfg.insert.categories[c] for c in names], dtype=float)
    out, used = [], set()
    for i in rng.choice(len(names), size=int(rng.integers(lo, hi + 1)), p=weights / weights.sum()):
        cut = bank.sample(names[i], rng, exclude=used)  # one cut-out at most once per frame
        if cut is not None:
            used.add(cut.id)
        out.append(ObjectRequest(names[i], cut.aspect if cut else None, {"cutout_id": cut.id} if cut else {}))
    return out


def plan_frame(cfg: GenerateConfig, job: FrameJob, sources: Sources, fits: dict, bank: CutoutBank,
               labeller: Labeller | None = None, followed: Followed | None = None) -> FramePlan:
    """`followed`: the objects of the dataset `insert.same_objects_as` names (generate.follow)."""
    geo = frame_geometry(cfg, job, sources, fits, labeller)
    rng = np.random.default_rng(job.seed)
    requests: list[ObjectRequest] = []
    if cfg.insert is None or geo.region is None:
        placements, unplaced = [], []
    else:
        requests = (followed_requests(followed, job.index, job.seed, bank) if followed is not None
                    else object_requests(cfg, bank, rng))
        placements, unplaced, _ = place_for_frame(geo.frame, geo.camera, geo.region, requests, rng, cfg.placement,
                                                  geo.ego)
    return FramePlan(job, geo, list(geo.existing), geo.rgb, placements, unplaced,
                     frame_occluders(geo.frame, placements, geo.ego), rng, requests=requests)


def frame_occluders(frame: SceneFrame, placements: list[Placement], ego: EgoMask) -> dict[int, Box | np.ndarray]:
    """What the inserter must leave untouched: the nearer existing objects the placements list (boxes) and the
    ego vehicle (a mask)."""
    boxes = dict(frame.boxes)
    occluders: dict[int, Box | np.ndarray] = {i: boxes[i] for p in placements for i in p.occluders}
    if ego.any:  # nearer than anything: it hides what stands behind its edge, and nothing is drawn on it
        occluders[EGO_KEY] = ego.mask
    return occluders
