"""Dataset generation: sample road frames, place objects, insert them, write a COCO dataset.

The path a run's config takes, one module per step:
- `sources`: scene sources (background frames and their labels) and the cut-out bank;
- `plan`: `FrameJob` (frame and seed of each output image) -> `FramePlan` (geometry and placements);
- `chunk`: `Worker.run_chunk`: restyle -> insert (batched over the chunk) -> verify -> weather -> records;
- `resume`: chunk files, done-markers and the sweep of roadsynth's own temp files;
- `assemble`: annotations.json, manifest.json and the quarantine.
`generate_dataset` below is the local loop; the Prefect flow (flows/generate.py) maps the same
`Worker.run_chunk` over the chunks still to do, and the UI appends one-frame chunks.
"""

from __future__ import annotations

import time
from pathlib import Path

from roadsynth.config import Config, save_config
from roadsynth.datasets.outdir import claim
from roadsynth.datasets.records import Dataset
from roadsynth.generate.assemble import assemble
from roadsynth.generate.chunk import Worker
from roadsynth.generate.plan import FrameJob, chunked, plan_jobs
from roadsynth.generate.preview import place_preview
from roadsynth.generate.resume import chunk_done, sweep_temp_files
from roadsynth.generate.sources import load_scene_sources

__all__ = ["FrameJob", "Worker", "generate_dataset", "place_preview"]


def generate_dataset(cfg: Config, out_dir: Path, *, progress=None, overwrite: bool = False) -> Dataset:
    """The whole generation in-process (the Prefect flow runs the same chunks as tasks). The inputs are read
    before anything is written, so a typo in a path leaves no half-made output folder."""
    out_dir = Path(out_dir)
    sources = load_scene_sources(cfg.generate)  # the inputs first: a bad path writes nothing
    claim(out_dir, "generate", cfg.digest(), overwrite=overwrite)
    worker = Worker(cfg, sources=sources)
    save_config(cfg, out_dir / "config.yaml")
    chunks = chunked(plan_jobs(cfg.generate, worker.sources), cfg.generate.chunk_size)
    t0 = time.perf_counter()
    sweep_temp_files(out_dir)
    for ci, jobs in enumerate(chunks):
        if not chunk_done(out_dir, ci, worker.digest):
            worker.run_chunk(ci, jobs, out_dir)
        if progress:
            progress(ci + 1, len(chunks), time.perf_counter() - t0)
    return assemble(cfg, out_dir, len(chunks), worker.sources)
