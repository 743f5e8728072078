"""Dataset generation: sample road frames, place objects, insert them, write a COCO dataset.

The unit of work is a *chunk* of output images. Every output image `i` is fully determined by the
config and `i` (its background frame, its seed), never by chunking or by which worker runs it, so a
resumed or scaled-out run writes the same dataset as a single uninterrupted one. A chunk writes its
images, then its records as `chunks/NNNNN.json` (atomically, last): a chunk file on disk means the
chunk is complete.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from roadsynth.config import Config, GenerateConfig, SceneSource, save_config
from roadsynth.datasets.coco import dataset_to_coco_dict, read_coco, write_coco
from roadsynth.datasets.io import atomic_write_json, load_image, save_image_atomic
from roadsynth.datasets.label_maps import read_label_map, read_label_map_frames, road_mask
from roadsynth.datasets.records import Annotation, Box, Category, Dataset, ImageRecord
from roadsynth.datasets.sampling import SceneFilter, select_images
from roadsynth.datasets.yolo import read_yolo
from roadsynth.generators.base import Insertion, Rejection
from roadsynth.generators.cutouts import CutoutBank, build_bank
from roadsynth.generators.paste import PasteInserter
from roadsynth.scenes import SceneFrame, ground_model, ground_region, place_for_frame


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
    if src.format in ("label_maps", "folder"):
        ds = read_label_map_frames(
            src.path, src.label_maps, object_values=src.object_values, min_object_px=src.min_object_px,
            scene_regex=src.scene_regex, source_name=src.name,
        )
        return ds, src.path
    if src.format == "coco":
        if src.images_root is None:
            raise ValueError(f"scene source `{src.name}`: `images_root` is required for format coco")
        return read_coco(src.path), src.images_root
    ds, root = read_yolo(src.path)
    return ds, root


def build_bank_for(cfg: GenerateConfig) -> CutoutBank:
    """The cut-out bank of a run: saved banks are loaded, other sources are built from their files."""
    saved = [CutoutBank.load(c.path) for c in cfg.cutouts if c.kind == "bank"]
    built = build_bank([c.model_dump() for c in cfg.cutouts if c.kind != "bank"])
    bank = CutoutBank.concat([built, *saved])
    missing = sorted(set(cfg.insert.categories) - set(bank.categories))
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


def output_categories(cfg: GenerateConfig, sources: list[tuple[Dataset, Path]]) -> list[str]:
    names: list[str] = []
    for ds, _ in sources:
        names += [c.name for c in ds.categories]
    names += list(cfg.insert.categories)
    seen: dict[str, str] = {}
    for n in names:
        seen.setdefault(n.lower(), n)
    return list(seen.values())


def run_chunk(
    cfg: Config, chunk_index: int, jobs: list[FrameJob], out_dir: Path, bank: CutoutBank,
    sources: list[tuple[Dataset, Path]] | None = None,
) -> dict:
    """Generate one chunk of images; returns (and writes) the chunk's records and failures."""
    g = cfg.generate
    sources = sources if sources is not None else load_scene_sources(g)
    inserter = PasteInserter(
        bank, blend=g.insert.blend, feather_px=g.insert.feather_px, harmonize=g.insert.harmonize, shadow=g.insert.shadow
    )
    cat_names = output_categories(g, sources)
    images, failures = [], []
    for job in jobs:
        ds, root = sources[job.scene_source]
        try:
            images.append(_generate_one(cfg, job, ds, root, inserter, cat_names, out_dir))
        except Exception as e:  # noqa: BLE001 - a bad frame is reported, the run goes on
            rec = next(im for im in ds.images if im.id == job.frame_id)
            failures.append({
                "index": job.index, "source": g.scenes[job.scene_source].name, "file": str(root / rec.file_name),
                "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc(limit=3),
            })
    payload = {"chunk": chunk_index, "images": images, "failures": failures}
    atomic_write_json(chunk_path(out_dir, chunk_index), payload)
    return payload


def _generate_one(cfg: Config, job: FrameJob, ds: Dataset, root: Path, inserter: PasteInserter,
                  cat_names: list[str], out_dir: Path) -> dict:
    g = cfg.generate
    src = g.scenes[job.scene_source]
    rec = next(im for im in ds.images if im.id == job.frame_id)
    existing = [a for a in ds.annotations if a.image_id == rec.id]
    id_to_name = {c.id: c.name for c in ds.categories}
    rgb = load_image(root / rec.file_name)
    h, w = rgb.shape[:2]
    rng = np.random.default_rng(job.seed)
    frame = SceneFrame(record=rec, width=w, height=h, boxes=[(a.id, a.bbox) for a in existing])
    camera = ground_model(src.camera, w, h)
    region = ground_region(frame, src, g.placement)
    lo, hi = g.insert.objects_per_image
    n = int(rng.integers(lo, hi + 1))
    names = list(g.insert.categories)
    weights = np.array([g.insert.categories[c] for c in names], dtype=float)
    requests = [names[i] for i in rng.choice(len(names), size=n, p=weights / weights.sum())]
    placements, unplaced = place_for_frame(frame, camera, region, requests, rng, g.placement)
    out_rgb, results = inserter.insert(rgb, placements, rng)

    file_name = f"{job.index + 1:06d}.jpg"
    save_image_atomic(out_dir / "images" / file_name, out_rgb, quality=g.jpeg_quality)
    cat_index = {n.lower(): i + 1 for i, n in enumerate(cat_names)}
    anns = [
        {"category_id": cat_index[id_to_name[a.category_id].lower()], "bbox": a.bbox.xywh(),
         "attributes": dict(a.attributes), "iscrowd": 0}
        for a in existing
    ]
    rejected = []
    for r in results:
        if isinstance(r, Insertion):
            anns.append({
                "category_id": cat_index[r.placement.category.lower()], "bbox": r.box.xywh(), "iscrowd": 0,
                "provenance": {**r.provenance.to_dict(), "placement": r.placement.to_dict(),
                               "verifier": _jsonable(r.scores)},
            })
        else:
            rejected.append({"category": r.placement.category, "reason": r.reason})
    rejected += [{"category": c, "reason": why} for c, why in unplaced]
    return {
        "id": job.index + 1, "file_name": file_name, "width": w, "height": h,
        "attributes": {"scene": rec.scene, "source": src.name, "background": rec.file_name, "seed": job.seed,
                       "generated": True, "camera": camera.describe(), "rejected": rejected},
        "annotations": anns,
    }


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


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
                    id=len(anns) + 1, image_id=im["id"], category_id=a["category_id"], bbox=box, area=box.area,
                    iscrowd=0, provenance=_provenance(prov), attributes=a.get("attributes", {}),
                ))
    ds = Dataset(tuple(images), tuple(anns), categories, info={
        "description": f"roadsynth generated dataset `{cfg.name}`", "config_digest": cfg.digest(),
    })
    write_coco(ds, out_dir / "annotations.json")
    generated = [a for a in anns if a.provenance is not None]
    manifest = {
        "name": cfg.name, "config_digest": cfg.digest(), "images": len(images), "annotations": len(anns),
        "generated_objects": len(generated),
        "generated_per_category": {c.name: sum(a.category_id == c.id for a in generated) for c in categories},
        "rejected_objects": sum(len(im.attributes.get("rejected", [])) for im in images),
        "failures": failures, "chunks": n_chunks,
    }
    atomic_write_json(out_dir / "manifest.json", manifest, indent=2)
    return ds


def _provenance(d: dict | None):
    from roadsynth.datasets.records import Provenance

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
    for ci, jobs in enumerate(chunks):
        if not chunk_path(out_dir, ci).exists():
            run_chunk(cfg, ci, jobs, out_dir, bank, sources)
        if progress:
            progress(ci + 1, len(chunks), time.perf_counter() - t0)
    return assemble(cfg, out_dir, len(chunks), sources)
