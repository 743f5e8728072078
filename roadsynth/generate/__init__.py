"""Dataset generation: sample road frames, place objects, insert them, write a COCO dataset.

The path a run's config takes, one module per step:
- `sources`: scene sources (background frames and their labels) and the cut-out bank;
- `plan`: `FrameJob` (frame and seed of each output image) -> `FramePlan` (geometry and placements);
- `chunk`: `Worker.run_chunk`: restyle -> insert (batched over the chunk) -> verify -> weather -> records;
- `resume`: chunk files, done-markers and the sweep of roadsynth's own temp files;
- `assemble`: annotations.json, manifest.json and the quarantine.
- `run`: `GenerationRun`, the steps every caller shares (inputs, claim, sweep, resolved config, chunk plan).
`generate_dataset` below runs it in-process; the Prefect flow (flows/generate.py) maps `Worker.run_chunk`
over the same run's chunks still to do; the UI appends one-frame chunks.
"""

from __future__ import annotations

from pathlib import Path

from roadsynth.config import Config
from roadsynth.datasets.records import Dataset
from roadsynth.generate.chunk import Worker
from roadsynth.generate.plan import FrameJob
from roadsynth.generate.preview import place_preview
from roadsynth.generate.run import GenerationRun

__all__ = ["FrameJob", "GenerationRun", "Worker", "generate_dataset", "place_preview"]


def generate_dataset(cfg: Config, out_dir: Path, *, overwrite: bool = False) -> Dataset:
    """The whole generation in-process (the Prefect flow runs the same `GenerationRun`'s chunks as tasks)."""
    return GenerationRun(cfg, out_dir, overwrite=overwrite).run_here()
