"""One chunk of output images: plan each frame, restyle, insert (batched over the chunk), verify, weather,
and write the chunk's records.

`Worker` holds everything a process needs for that (scene index, cut-out bank, inserter, appearance
steps, optional detector check) and is built the same way by the local loop, the Prefect tasks and the
UI. A chunk writes its images, then its records as `chunks/NNNNN.json` (atomically, last): a chunk file
on disk means the chunk is complete.
"""

from __future__ import annotations

import threading
import traceback
from dataclasses import replace
from pathlib import Path

import numpy as np

from roadsynth import __version__
from roadsynth.generate.appearance import Appearance
from roadsynth.config import Config
from roadsynth.datasets.coco import annotation_to_dict, image_to_dict, mask_polygons
from roadsynth.datasets.io import atomic_write_json, jsonable, save_image_atomic
from roadsynth.datasets.records import Annotation, ImageRecord, Provenance
from roadsynth.generate.follow import fill_in, load_followed, with_boxes
from roadsynth.generate.plan import FrameJob, FramePlan, frame_occluders, plan_frame
from roadsynth.generate.resume import CHUNK_FORMAT, chunk_path
from roadsynth.generate.sources import (
    PseudoLabeller,
    Sources,
    build_bank_for,
    load_scene_sources,
    output_categories,
)
from roadsynth.generators import make_inserter
from roadsynth.generators.base import Insertion
from roadsynth.generators.cutouts import CutoutBank
from roadsynth.generators.realism import frame_is_dark, object_scores
from roadsynth.geometry.regions import RegionError
from roadsynth.generate.scenes import place_for_frame


class Worker:
    """Per-process generation state. Pass `sources`/`bank`/`inserter` to share them between workers of one
    process (the UI builds one worker per insertion method over the same scenes and cut-outs)."""

    def __init__(self, cfg: Config, *, sources: Sources | None = None, bank: CutoutBank | None = None,
                 inserter=None):
        g = cfg.generate
        self.cfg = cfg
        self.digest = cfg.digest()
        self.sources = sources if sources is not None else load_scene_sources(g)
        self.bank = bank if bank is not None else build_bank_for(g)
        self.categories = output_categories(g, self.sources)
        self.cat_index = {n.lower(): i + 1 for i, n in enumerate(self.categories)}
        if inserter is None and g.insert is not None:
            inserter = make_inserter(g.insert, self.bank)
        self.inserter = inserter
        self.appearance = Appearance(g, self.categories)
        self.labeller = PseudoLabeller(g)
        follow = g.insert.same_objects_as if g.insert is not None else None
        self.followed = load_followed(follow) if follow is not None else None
        self.fits: dict = {}  # per scene source: its fitted ground model (one per camera, not per frame)
        self._check = None
        # Task-runner threads share a worker; an Ultralytics model must not predict from two at once.
        self._check_lock = threading.Lock()

    def detector_check(self):
        """The configured detector check (insert.detector_check), loaded on first use."""
        if self._check is None:
            from roadsynth.detectors import make_detector  # the detector's library only when configured
            from roadsynth.generators.detector_check import DetectorCheck

            d, cats = self.cfg.generate.insert.detector_check, list(self.cfg.generate.insert.categories)
            det = make_detector(d).load(d.weights, min(0.05, d.min_score))
            self._check = DetectorCheck(det, det.names, cats, class_map=d.class_map, min_score=d.min_score,
                                        min_iou=d.min_iou, source=str(d.weights))
        return self._check

    def run_chunk(self, chunk_index: int, jobs: list[FrameJob], out_dir: Path) -> dict:
        """Generate one chunk of images; returns (and writes) the chunk's records and failures.

        Planning and writing are per frame; insertion is per chunk, so a diffusion inserter batches the
        objects of all the chunk's frames together. Vehicle restyle runs before insertion and weather after
        it (see `roadsynth.generate.appearance`).
        """
        g = self.cfg.generate
        plans, failures = [], []
        for job in jobs:
            try:
                plans.append(self._plan(job))
            except RegionError as e:
                if g.scenes[job.scene_source].region_failure == "fail":
                    raise RegionError(f"{self._failure(job, e)['file']}: {e} (the scene source's "
                                      "`region_failure: fail` stops the run)") from None
                failures.append(self._failure(job, e))
            except Exception as e:  # noqa: BLE001 - a bad frame is reported, the run goes on
                failures.append(self._failure(job, e))
        if self.inserter is None:
            inserted = [(p.rgb, []) for p in plans]
        else:
            inserted = self.inserter.insert_many([p.rgb for p in plans], [p.placements for p in plans],
                                                 [p.rng for p in plans], [p.occluders for p in plans],
                                                 [p.geometry.jpeg_quality for p in plans])
            if self.followed is not None:  # as many objects per frame as the followed dataset holds
                inserted = [self._fill_in(p, rgb, results) for p, (rgb, results) in zip(plans, inserted)]
        if g.insert is not None and g.insert.detector_check is not None and inserted:
            with self._check_lock:
                scored = self.detector_check().score([rgb for rgb, _ in inserted], [rs for _, rs in inserted])
            inserted = [(rgb, rs) for (rgb, _), rs in zip(inserted, scored)]
        images, anns = [], []
        for plan, (out_rgb, results) in zip(plans, inserted):
            try:
                rec, frame_anns = self._finish(plan, out_rgb, results, Path(out_dir))
            except Exception as e:  # noqa: BLE001
                failures.append(self._failure(plan.job, e))
                continue
            images.append(rec)
            anns += [replace(a, id=len(anns) + 1) for a in frame_anns]
        failures.sort(key=lambda f: f["index"])
        if chunk_index == 0:  # cut-out files the bank could not use: listed once per run, with the frames' failures
            failures += [{"index": None, "source": "cutouts", "file": p.split(": ")[0], "error": p}
                         for p in self.bank.problems]
        payload = {"format": CHUNK_FORMAT, "chunk": chunk_index, "config_digest": self.digest,
                   "roadsynth_version": __version__, "images": [image_to_dict(im) for im in images],
                   "annotations": [annotation_to_dict(a) for a in anns], "failures": failures,
                   **({"cutouts_refused": self.bank.refused} if chunk_index == 0 else {})}
        payload = jsonable(payload)
        atomic_write_json(chunk_path(out_dir, chunk_index), payload)
        return payload

    def _plan(self, job: FrameJob) -> FramePlan:
        plan = plan_frame(self.cfg.generate, job, self.sources, self.fits, self.bank, self.labeller, self.followed)
        names = {c.id: c.name for c in plan.geometry.ds.categories}
        plan.existing = [replace(a, category_id=self.cat_index[names[a.category_id].lower()]) for a in plan.existing]
        plan.rgb, plan.existing, plan.restyle = self.appearance.restyle_vehicles(plan.rgb, plan.existing, job.seed)
        return plan

    def _fill_in(self, plan: FramePlan, rgb: np.ndarray, results: list) -> tuple[np.ndarray, list]:
        """Place again (around what is in) and insert again the requests not yet inserted in this frame."""
        geo, out = plan.geometry, [rgb]

        def place(pending, inserted):
            placed, unplaced, _ = place_for_frame(with_boxes(geo.frame, inserted), geo.camera, geo.region, pending,
                                                  plan.rng, self.cfg.generate.placement, geo.ego)
            return placed, unplaced

        def insert(placements, inserted):  # an object inserted earlier and nearer hides the new one, like a source's
            occluders = frame_occluders(with_boxes(geo.frame, inserted), placements, geo.ego)
            (out[0], more), = self.inserter.insert_many([out[0]], [placements], [plan.rng], [occluders],
                                                       [geo.jpeg_quality])
            return more

        results, plan.unplaced = fill_in(plan.requests, results, place, insert)
        return out[0], results

    def _failure(self, job: FrameJob, e: Exception) -> dict:
        ds, root = self.sources[job.scene_source]
        rec = ds.image(job.frame_id)
        return {"index": job.index, "source": self.cfg.generate.scenes[job.scene_source].name,
                "file": str(root / rec.file_name), "error": f"{type(e).__name__}: {e}",
                "trace": traceback.format_exc(limit=3)}

    def _finish(self, plan: FramePlan, out_rgb: np.ndarray, results: list, out_dir: Path
                ) -> tuple[ImageRecord, list[Annotation]]:
        """Weather, the image file and the frame's records (annotation ids are assigned by the caller)."""
        g = self.cfg.generate
        # The realism audit's reference: the real objects of the same frame, scored like inserted ones.
        real = [{"category_id": a.category_id, **object_scores(plan.rgb, a.bbox)} for a in plan.existing]
        dark = frame_is_dark(plan.rgb)
        out_rgb, existing, tags = self.appearance.apply_weather(out_rgb, plan.existing, plan.job.seed)
        image_id = plan.job.index + 1
        file_name = f"{image_id:06d}.jpg"
        save_image_atomic(out_dir / "images" / file_name, out_rgb, quality=g.jpeg_quality)
        # A source annotation keeps its own instance mask and area (restyle and weather keep geometry).
        anns = [Annotation(0, image_id, a.category_id, a.bbox, area=(a.area if a.segmentation is not None else None)
                           or a.bbox.area, segmentation=a.segmentation, provenance=a.provenance,
                           attributes=dict(a.attributes)) for a in existing]
        rejected = []
        for r in results:
            if not isinstance(r, Insertion):
                rejected.append({"category": r.placement.category, "reason": r.reason})
                continue
            prov = Provenance(r.provenance.method, r.provenance.source, r.provenance.seed, {
                **dict(r.provenance.params), "placement": r.placement.to_dict(), "verifier": jsonable(r.scores)})
            seg, area = None, r.box.area
            if r.mask_is_silhouette:  # visible pixels after occlusion, for instance-segmentation training
                seg, area = mask_polygons(r.mask, r.window[:2]), float(np.count_nonzero(r.mask))
            anns.append(Annotation(0, image_id, self.cat_index[r.placement.category.lower()], r.box, area=area,
                                   segmentation=seg, provenance=prov, attributes={
                                       "occluded": bool(r.placement.occluders), "truncated": bool(r.placement.truncated)}))
        rejected += [{"category": c, "reason": why} for c, why in plan.unplaced]
        geo = plan.geometry
        h, w = out_rgb.shape[:2]
        attrs = {"scene": geo.rec.scene, "source": geo.src.name, "background": geo.rec.file_name,
                 "background_path": str((Path(geo.root) / geo.rec.file_name).resolve()), "seed": plan.job.seed,
                 "generated": True, "camera": geo.camera.describe(),
                 "region_source": geo.region.source if geo.region else None, "ego": geo.ego.describe(),
                 "labels_complete": geo.src.labels_known,
                 "labels_from": "pseudo-label" if geo.src.pseudo_labels else ("source" if geo.src.labels_known
                                                                            else "none"),
                 "rejected": rejected, "dark": dark, "realism_real": real,
                 **tags, **({"restyle": plan.restyle} if plan.restyle else {})}
        return ImageRecord(image_id, file_name, w, h, attrs), anns
