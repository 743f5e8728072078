"""Dataset generation: sample road frames, place objects, insert them, write a COCO dataset.

The unit of work is a *chunk* of output images. Every output image `i` is fully determined by the
config and `i` (its background frame, its seed), never by chunking or by which worker runs it, so a
resumed or scaled-out run writes the same dataset as a single uninterrupted one. A chunk writes its
images, then its records as `chunks/NNNNN.json` (atomically, last): a chunk file on disk means the
chunk is complete.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from roadsynth import __version__
from roadsynth.appearance import Appearance
from roadsynth.config import Config, DetectorCheckConfig, GenerateConfig, SceneSource, save_config
from roadsynth.datasets.coco import dataset_from_coco_dict, mask_polygons, write_coco
from roadsynth.datasets.validate import validate_coco
from roadsynth.datasets.io import (
    IMAGE_SUFFIXES,
    atomic_write_bytes,
    atomic_write_json,
    jsonable,
    load_image,
    save_image_atomic,
)
from roadsynth.datasets.label_maps import read_label_map_frames
from roadsynth.datasets.records import Annotation, Box, Category, Dataset, ImageRecord, Provenance
from roadsynth.datasets.sampling import SceneFilter, select_images
from roadsynth.datasets.yolo import read_yolo
from roadsynth.generators.base import Insertion
from roadsynth.generators.cutouts import CutoutBank, build_bank
from roadsynth.generators.paste import PasteInserter
from roadsynth.geometry.fit import FitResult
from roadsynth.geometry.overlay import draw_overlay
from roadsynth.geometry.placement import ObjectRequest
from roadsynth.scenes import SceneFrame, fit_source_camera, ground_model, ground_region, place_for_frame


@dataclass(frozen=True)
class FrameJob:
    index: int  # output image index, 0-based; output image id = index + 1
    scene_source: int  # index into cfg.scenes
    frame_id: int  # image id inside that source's dataset
    seed: int


def load_scene_sources(cfg: GenerateConfig) -> list[tuple[Dataset, Path]]:
    out = []
    for src in cfg.scenes:
        out.append(load_scene_source(src))
    return out


def load_scene_source(src: SceneSource) -> tuple[Dataset, Path]:
    """A scene source as a Dataset; broken records are dropped and listed in `info["problems"]`."""
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


def plan_jobs(cfg: GenerateConfig, sources: list[tuple[Dataset, Path]]) -> list[FrameJob]:
    """Background frame and seed of every output image; round-robin over sources, shuffled frames."""
    rng = np.random.default_rng(cfg.seed)
    orders = []
    for src, (ds, _) in zip(cfg.scenes, sources):
        f = src.filter
        flt = SceneFilter(tuple(f.require_categories), tuple(f.exclude_categories), f.min_box_area, f.max_objects,
                          f.min_width, f.min_height, f.attributes)
        orders.append(rng.permutation([im.id for im in select_images(ds, flt)]).tolist())
    if not any(orders):
        raise ValueError(f"no background frames pass the filters of any scene source ({[s.name for s in cfg.scenes]})")
    seeds = np.random.SeedSequence(cfg.seed).generate_state(cfg.n_images, dtype=np.uint32)
    jobs = []
    usable = [i for i, o in enumerate(orders) if o]
    for k in range(cfg.n_images):
        s = usable[k % len(usable)]
        order = orders[s]
        jobs.append(FrameJob(k, s, int(order[(k // len(usable)) % len(order)]), int(seeds[k])))
    return jobs


def chunked(jobs: list[FrameJob], size: int) -> list[list[FrameJob]]:
    return [jobs[i : i + size] for i in range(0, len(jobs), size)]


def chunk_path(out_dir: Path, chunk_index: int) -> Path:
    return out_dir / "chunks" / f"{chunk_index:05d}.json"


def sweep_temp_files(out_dir: Path) -> int:
    """Remove atomic-write temp files (`.<name>.<random>.tmp`) a killed run left behind.

    A SIGKILL can land mid-write, where no cleanup runs; the final files were never replaced, so the
    resumed run rewrites them. Only for a folder no other run is writing to.
    """
    stale = [p for sub in ("images", "chunks") for p in (out_dir / sub).glob(".*.tmp")]
    stale += list(out_dir.glob(".*.tmp"))
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def chunk_done(out_dir: Path, chunk_index: int, digest: str) -> bool:
    """A chunk file is written last and atomically; it counts only if the same config and the same
    roadsynth version produced it (new code may draw different pixels from the same config)."""
    path = chunk_path(out_dir, chunk_index)
    if not path.exists():
        return False
    try:
        payload = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return payload.get("config_digest") == digest and payload.get("roadsynth_version") == __version__


def output_categories(cfg: GenerateConfig, sources: list[tuple[Dataset, Path]]) -> list[str]:
    names: list[str] = []
    for ds, _ in sources:
        names += [c.name for c in ds.categories]
    names += list(cfg.insert.categories) if cfg.insert else []
    names += [s.category for s in cfg.restyle.styles if s.category] if cfg.restyle else []
    seen: dict[str, str] = {}
    for n in names:
        seen.setdefault(n.lower(), n)
    return list(seen.values())


def make_inserter(cfg: GenerateConfig, bank: CutoutBank):
    i = cfg.insert
    if i is None:
        return None
    if i.method == "paste":
        return PasteInserter(bank, blend=i.blend, feather_px=i.feather_px, harmonize=i.harmonize, shadow=i.shadow)
    from roadsynth.generators.inpaint_diffusers import InpaintInserter  # torch/diffusers only for this method

    d = i.inpaint
    return InpaintInserter(
        d.model, d.prompts, steps=d.steps, guidance_scale=d.guidance_scale, strength=d.strength, native=d.native,
        context=d.context, min_window_px=d.min_window_px, batch_size=d.batch_size, mask_shape=d.mask_shape,
        bank=bank, feather_px=d.feather_px, negative_prompt=d.negative_prompt, device=d.device,
        config=str(d.config) if d.config else None)


_DETECTOR_CHECKS: dict[str, object] = {}


def make_detector_check(d: DetectorCheckConfig, categories: Sequence[str]):
    """The configured detector check; weights are loaded once per process and config (chunks reuse it)."""
    # Per thread too: an Ultralytics model must not predict from two task-runner threads at once.
    key = f"{threading.get_ident()}:{d.model_dump_json()}:{sorted(categories)}"
    if key not in _DETECTOR_CHECKS:
        from roadsynth.detectors.yolo_ultralytics import NamedYolo  # ultralytics only when configured
        from roadsynth.generators.detector_check import DetectorCheck

        det = NamedYolo(d.weights, imgsz=d.imgsz, conf=min(0.05, d.min_score), device=d.device)
        _DETECTOR_CHECKS[key] = DetectorCheck(det, det.names, categories, class_map=d.class_map,
                                              min_score=d.min_score, min_iou=d.min_iou, source=str(d.weights))
    return _DETECTOR_CHECKS[key]


def run_chunk(
    cfg: Config, chunk_index: int, jobs: list[FrameJob], out_dir: Path, bank: CutoutBank,
    sources: list[tuple[Dataset, Path]] | None = None, inserter=None, appearance: Appearance | None = None,
) -> dict:
    """Generate one chunk of images; returns (and writes) the chunk's records and failures.

    Planning and writing are per frame; insertion is per chunk, so an inserter with `insert_many`
    (diffusion) batches the objects of all the chunk's frames together. Vehicle restyle runs before
    insertion and weather after it (see `roadsynth.appearance`).
    """
    g = cfg.generate
    sources = sources if sources is not None else load_scene_sources(g)
    inserter = inserter or make_inserter(g, bank)
    cat_names = output_categories(g, sources)
    appearance = appearance or Appearance(g, cat_names)
    plans, failures, fits = [], [], {}

    def fail(job: FrameJob, e: Exception) -> None:
        ds, root = sources[job.scene_source]
        rec = next(im for im in ds.images if im.id == job.frame_id)
        failures.append({"index": job.index, "source": g.scenes[job.scene_source].name, "file": str(root / rec.file_name),
                         "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc(limit=3)})

    cat_index = {n.lower(): i + 1 for i, n in enumerate(cat_names)}
    for job in jobs:
        try:
            plan = plan_frame(g, job, sources, fits, bank)
            names = {c.id: c.name for c in plan.ds.categories}
            plan.existing = [replace(a, category_id=cat_index[names[a.category_id].lower()]) for a in plan.existing]
            plan.rgb, plan.existing, plan.restyle = appearance.restyle_vehicles(plan.rgb, plan.existing, job.seed)
            plans.append(plan)
        except Exception as e:  # noqa: BLE001 - a bad frame is reported, the run goes on
            fail(job, e)
    if inserter is None:
        inserted = [(p.rgb, []) for p in plans]
    elif hasattr(inserter, "insert_many"):
        inserted = inserter.insert_many([p.rgb for p in plans], [p.placements for p in plans], [p.rng for p in plans],
                                        occluders=[p.occluders for p in plans])
    else:
        inserted = [inserter.insert(p.rgb, p.placements, p.rng, occluders=p.occluders) for p in plans]
    if g.insert is not None and g.insert.detector_check is not None and inserted:
        check = make_detector_check(g.insert.detector_check, list(g.insert.categories))
        scored = check.score([rgb for rgb, _ in inserted], [rs for _, rs in inserted])
        inserted = [(rgb, rs) for (rgb, _), rs in zip(inserted, scored)]
    images = []
    for plan, (out_rgb, results) in zip(plans, inserted):
        try:
            images.append(_finish_frame(g, plan, out_rgb, results, sources, cat_index, out_dir, appearance))
        except Exception as e:  # noqa: BLE001
            fail(plan.job, e)
    failures.sort(key=lambda f: f["index"])
    payload = {"chunk": chunk_index, "config_digest": cfg.digest(), "roadsynth_version": __version__,
               "images": images, "failures": failures}
    atomic_write_json(chunk_path(out_dir, chunk_index), payload)
    return payload


@dataclass
class FramePlan:
    job: FrameJob
    src: SceneSource
    ds: Dataset
    rec: ImageRecord
    existing: list[Annotation]
    rgb: np.ndarray
    camera: object
    region_source: str
    placements: list
    unplaced: list[tuple[str, str]]
    occluders: dict[int, Box]
    rng: np.random.Generator
    restyle: dict | None = None  # vehicle restyle record (edits, refusals) when that step ran


def plan_frame(g: GenerateConfig, job: FrameJob, sources: list[tuple[Dataset, Path]], fits: dict,
               bank: CutoutBank) -> FramePlan:
    src, ds, rec, existing, rgb, frame, camera, region = _frame_geometry(g, job, sources, fits)
    rng = np.random.default_rng(job.seed)
    if g.insert is None:
        placements, unplaced = [], []
    else:
        placements, unplaced, _ = place_for_frame(frame, camera, region, _requests(g, bank, rng), rng, g.placement)
    boxes = dict(frame.boxes)
    occluders = {i: boxes[i] for p in placements for i in p.occluders}
    return FramePlan(job, src, ds, rec, existing, rgb, camera, region.source, placements, unplaced, occluders, rng)


def _frame_geometry(cfg: GenerateConfig, job: FrameJob, sources: list[tuple[Dataset, Path]],
                    fits: dict[int, FitResult | None]):
    """Everything placement needs for one job's background frame, deterministically from the job's seed."""
    src = cfg.scenes[job.scene_source]
    ds, root = sources[job.scene_source]
    rec = next(im for im in ds.images if im.id == job.frame_id)
    existing = [a for a in ds.annotations if a.image_id == rec.id]
    names = {c.id: c.name for c in ds.categories}
    rgb = load_image(root / rec.file_name)
    h, w = rgb.shape[:2]
    if job.scene_source not in fits:
        fits[job.scene_source] = fit_source_camera(ds, src.camera)
    frame = SceneFrame(rec, w, h, [(a.id, a.bbox) for a in existing], [(names[a.category_id], a.bbox) for a in existing])
    camera = ground_model(src.camera, w, h, fits[job.scene_source])
    region = ground_region(frame, src, camera, rgb)
    return src, ds, rec, existing, rgb, frame, camera, region


def _requests(cfg: GenerateConfig, bank: CutoutBank, rng: np.random.Generator) -> list[ObjectRequest]:
    """What to insert: categories by weight, each with its cut-out chosen now so placement knows its shape."""
    lo, hi = cfg.insert.objects_per_image
    names = list(cfg.insert.categories)
    weights = np.array([cfg.insert.categories[c] for c in names], dtype=float)
    out = []
    for i in rng.choice(len(names), size=int(rng.integers(lo, hi + 1)), p=weights / weights.sum()):
        cut = bank.sample(names[i], rng)
        out.append(ObjectRequest(names[i], cut.aspect if cut else None, {"cutout_id": cut.id} if cut else {}))
    return out


def _finish_frame(g: GenerateConfig, plan: FramePlan, out_rgb: np.ndarray, results: list, sources,
                  cat_index: dict[str, int], out_dir: Path, appearance: Appearance) -> dict:
    """`cat_index`: lower-cased output category name -> id; `plan.existing` already carries those ids."""
    out_rgb, existing, tags = appearance.apply_weather(out_rgb, plan.existing, plan.job.seed)
    file_name = f"{plan.job.index + 1:06d}.jpg"
    save_image_atomic(out_dir / "images" / file_name, out_rgb, quality=g.jpeg_quality)
    anns = []
    for a in existing:
        d = {"category_id": a.category_id, "bbox": a.bbox.xywh(), "attributes": dict(a.attributes), "iscrowd": 0}
        if a.segmentation is not None:  # the source's instance mask; restyle and weather keep geometry
            d.update(segmentation=a.segmentation, area=a.area)
        if a.provenance is not None:  # a restyled vehicle
            d["provenance"] = jsonable(a.provenance.to_dict())
        anns.append(d)
    rejected = []
    for r in results:
        if isinstance(r, Insertion):
            ann = {
                "category_id": cat_index[r.placement.category.lower()], "bbox": r.box.xywh(), "iscrowd": 0,
                "attributes": {"occluded": bool(r.placement.occluders), "truncated": bool(r.placement.truncated)},
                "provenance": {**r.provenance.to_dict(), "placement": r.placement.to_dict(),
                               "verifier": jsonable(r.scores)},
            }
            if r.mask_is_silhouette:  # visible pixels after occlusion, for instance-segmentation training
                ann.update(segmentation=mask_polygons(r.mask, r.window[:2]), area=float(np.count_nonzero(r.mask)))
            anns.append(ann)
        else:
            rejected.append({"category": r.placement.category, "reason": r.reason})
    rejected += [{"category": c, "reason": why} for c, why in plan.unplaced]
    h, w = out_rgb.shape[:2]
    root = sources[plan.job.scene_source][1]
    return {
        "id": plan.job.index + 1, "file_name": file_name, "width": w, "height": h,
        "attributes": {"scene": plan.rec.scene, "source": plan.src.name, "background": plan.rec.file_name,
                       "background_path": str((root / plan.rec.file_name).resolve()), "seed": plan.job.seed,
                       "generated": True, "camera": plan.camera.describe(), "region_source": plan.region_source,
                       "rejected": rejected, **tags, **({"restyle": plan.restyle} if plan.restyle else {})},
        "annotations": anns,
    }


def place_preview(cfg: Config, out_dir: Path, n: int = 8) -> list[dict]:
    """Placements (no insertion) for the first `n` planned frames: placements.json + overlay images."""
    g = cfg.generate
    sources = load_scene_sources(g)
    bank = build_bank_for(g)
    fits: dict = {}
    rows = []
    for job in plan_jobs(g, sources)[:n]:
        src, ds, rec, existing, rgb, frame, camera, region = _frame_geometry(g, job, sources, fits)
        rng = np.random.default_rng(job.seed)
        placements, unplaced, side = place_for_frame(frame, camera, region, _requests(g, bank, rng), rng, g.placement)
        name = f"overlay_{job.index + 1:06d}.jpg"
        save_image_atomic(out_dir / name, draw_overlay(rgb, camera, region, placements, frame.boxes, side), quality=90)
        rows.append({"index": job.index, "source": src.name, "background": rec.file_name, "overlay": name,
                     "camera": camera.describe(), "region_source": region.source,
                     "fit": None if fits.get(job.scene_source) is None else {
                         "ok": fits[job.scene_source].ok, "reason": fits[job.scene_source].reason,
                         "residual_rms_rel": fits[job.scene_source].residual_rms_rel},
                     "placements": [p.to_dict() for p in placements],
                     "unplaced": [{"category": c, "reason": r} for c, r in unplaced]})
    atomic_write_json(out_dir / "placements.json", rows, indent=1)
    return rows


def assemble(cfg: Config, out_dir: Path, n_chunks: int, sources: list[tuple[Dataset, Path]]) -> Dataset:
    """Merge chunk files (in index order) into annotations.json + manifest.json."""
    g = cfg.generate
    cat_names = output_categories(g, sources)
    categories = tuple(Category(i + 1, n) for i, n in enumerate(cat_names))
    images, anns, failures = [], [], []
    for ci in range(n_chunks):
        payload = json.loads(chunk_path(out_dir, ci).read_text())
        failures += payload["failures"]
        for im in payload["images"]:
            images.append(ImageRecord(im["id"], im["file_name"], im["width"], im["height"], im["attributes"]))
            for a in im["annotations"]:
                box = Box(*a["bbox"])
                prov = a.get("provenance")
                anns.append(Annotation(
                    id=len(anns) + 1, image_id=im["id"], category_id=a["category_id"], bbox=box,
                    area=a.get("area") or box.area, iscrowd=0, segmentation=a.get("segmentation"),
                    provenance=_provenance(prov), attributes=a.get("attributes", {}),
                ))
    ds = Dataset(tuple(images), tuple(anns), categories, info={
        "description": f"roadsynth generated dataset `{cfg.name}`", "config_digest": cfg.digest(),
    })
    write_coco(ds, out_dir / "annotations.json")
    generated = [a for a in anns if a.provenance is not None and a.provenance.method != "restyle"]  # inserted
    for src, (sds, _) in zip(g.scenes, sources):  # frames that could not even be indexed
        failures += [{"index": None, "source": src.name, "file": pr["file"], "error": pr["error"]}
                     for pr in sds.info.get("problems", []) if isinstance(pr, dict)]
    failures = quarantine(out_dir, failures)
    manifest = {
        "name": cfg.name, "config_digest": cfg.digest(), "images": len(images), "annotations": len(anns),
        "generated_objects": len(generated),
        "generated_per_category": {c.name: sum(a.category_id == c.id for a in generated) for c in categories},
        "rejected_objects": sum(len(im.attributes.get("rejected", [])) for im in images),
        "restyled_objects": sum(len(im.attributes.get("restyle", {}).get("edits", [])) for im in images),
        "restyle_refused": sum(len(im.attributes.get("restyle", {}).get("rejected", [])) for im in images),
        "conditions": dict(sorted(Counter(str(im.attributes["condition"]) for im in images
                                          if "condition" in im.attributes).items())),
        "failures": failures, "chunks": n_chunks,
    }
    atomic_write_json(out_dir / "manifest.json", manifest, indent=2)
    return ds


QUARANTINE_MAX_BYTES = 64 * 2**20


def quarantine(out_dir: Path, failures: list[dict]) -> list[dict]:
    """Copy each bad input file into `out_dir/quarantine/` beside a `failures.json` listing its error.

    The run went on without them; the copies let a person open exactly what failed even after the source
    folder changes. Returns the failures with a `quarantined` path (relative to `out_dir`) where copied.
    """
    qdir = out_dir / "quarantine"
    if not failures:
        if (qdir / "failures.json").exists():  # a resumed run that no longer fails keeps no stale list
            atomic_write_json(qdir / "failures.json", [], indent=1)
        return failures
    qdir.mkdir(exist_ok=True)
    out, names = [], {}
    for f in failures:
        src = Path(f["file"])
        f = dict(f)
        # Image files are copied; a bad annotation's error names its record in the (unchanged) source file.
        if src.suffix.lower() in IMAGE_SUFFIXES and src.is_file() and src.stat().st_size <= QUARANTINE_MAX_BYTES:
            name = names.setdefault(str(src), f"{len(names) + 1:05d}_{src.name}")
            if not (qdir / name).exists():
                atomic_write_bytes(qdir / name, src.read_bytes())
            f["quarantined"] = f"quarantine/{name}"
        out.append(f)
    atomic_write_json(qdir / "failures.json", out, indent=1)
    return out


def _provenance(d: dict | None) -> Provenance | None:
    return None if d is None else Provenance.from_dict(d)


def generate_dataset(cfg: Config, out_dir: Path, *, progress=None) -> Dataset:
    """The whole generation in-process (the Prefect flow runs the same chunks as tasks)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out_dir / "config.yaml")
    g = cfg.generate
    sources = load_scene_sources(g)
    bank = build_bank_for(g)
    chunks = chunked(plan_jobs(g, sources), g.chunk_size)
    t0 = time.perf_counter()
    inserter = make_inserter(g, bank)
    appearance = Appearance(g, output_categories(g, sources))
    digest = cfg.digest()
    sweep_temp_files(out_dir)
    for ci, jobs in enumerate(chunks):
        if not chunk_done(out_dir, ci, digest):
            run_chunk(cfg, ci, jobs, out_dir, bank, sources, inserter, appearance)
        if progress:
            progress(ci + 1, len(chunks), time.perf_counter() - t0)
    return assemble(cfg, out_dir, len(chunks), sources)
