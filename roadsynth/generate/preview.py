"""`roadsynth place`: placements of the first planned frames drawn over them, without inserting anything."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from roadsynth.config import Config
from roadsynth.datasets.io import atomic_write_json, save_image_atomic
from roadsynth.generate.plan import frame_geometry, object_requests, plan_jobs
from roadsynth.generate.sources import PseudoLabeller, build_bank_for, load_scene_sources
from roadsynth.geometry.overlay import draw_overlay
from roadsynth.generate.scenes import place_for_frame


def place_preview(cfg: Config, out_dir: Path, n: int = 8) -> list[dict]:
    """Placements (no insertion) for the first `n` planned frames: placements.json + overlay images."""
    g = cfg.generate
    if g.insert is None:
        raise ValueError("`roadsynth place` previews insertion: the config needs a `generate.insert` section")
    sources = load_scene_sources(g)
    bank = build_bank_for(g)
    fits: dict = {}
    labeller = PseudoLabeller(g)
    rows = []
    for job in plan_jobs(g, sources)[:n]:
        geo = frame_geometry(g, job, sources, fits, labeller)
        rng = np.random.default_rng(job.seed)
        placements, unplaced, side = place_for_frame(geo.frame, geo.camera, geo.region,
                                                     object_requests(g, bank, rng), rng, g.placement, geo.ego)
        name = f"overlay_{job.index + 1:06d}.jpg"
        save_image_atomic(out_dir / name, draw_overlay(geo.rgb, geo.camera, geo.region, placements, geo.frame.boxes,
                                                       side), quality=90)
        fit = fits.get(job.scene_source)
        rows.append({"index": job.index, "source": geo.src.name, "background": geo.rec.file_name, "overlay": name,
                     "camera": geo.camera.describe(), "region_source": geo.region.source,
                     "fit": None if fit is None else {"ok": fit.ok, "reason": fit.reason,
                                                      "residual_rms_rel": fit.residual_rms_rel},
                     "placements": [p.to_dict() for p in placements],
                     "unplaced": [{"category": c, "reason": r} for c, r in unplaced]})
    atomic_write_json(out_dir / "placements.json", rows, indent=1)
    return rows
