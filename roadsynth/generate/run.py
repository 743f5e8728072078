"""One generation run into one folder, whoever drives it.

`GenerationRun` holds the steps every caller shares: read the inputs (before anything is written, so a
typo in a path leaves no half-made output folder), claim the folder, sweep roadsynth's own temp files,
save the resolved config beside the output, and plan the chunks. Then the chunks still to do are run, here
(`run_here`, the local loop) or as tasks on other processes (flows/generate.py submits `todo()` and each
task process builds its own `Worker` from `config_path`), and `finish` assembles the dataset.
"""

from __future__ import annotations

from pathlib import Path

from roadsynth.config import Config, save_config
from roadsynth.datasets.outdir import claim
from roadsynth.datasets.records import Dataset
from roadsynth.generate.assemble import assemble
from roadsynth.generate.chunk import Worker
from roadsynth.generate.plan import FrameJob, chunked, plan_jobs
from roadsynth.generate.resume import chunk_done, sweep_temp_files
from roadsynth.generate.sources import Sources, load_scene_sources


class GenerationRun:
    """A prepared generation: `out_dir` claimed and swept, `config_path` written, `chunks` planned."""

    def __init__(self, cfg: Config, out_dir: str | Path, *, overwrite: bool = False, sources: Sources | None = None):
        self.cfg = cfg
        self.out = Path(out_dir)
        self.digest = cfg.digest()
        self.sources = sources if sources is not None else load_scene_sources(cfg.generate)  # inputs first
        claim(self.out, "generate", self.digest, overwrite=overwrite)
        self.swept = sweep_temp_files(self.out)
        self.config_path = self.out / "config.yaml"
        save_config(cfg, self.config_path)
        self.chunks: list[list[FrameJob]] = chunked(plan_jobs(cfg.generate, self.sources), cfg.generate.chunk_size)

    def todo(self) -> list[int]:
        """Indices of the chunks not yet finished by this config and roadsynth version."""
        return [i for i in range(len(self.chunks)) if not chunk_done(self.out, i, self.digest)]

    def run_here(self) -> Dataset:
        """Every chunk still to do, in this process, then `finish`."""
        worker = Worker(self.cfg, sources=self.sources)
        for i in self.todo():
            worker.run_chunk(i, self.chunks[i], self.out)
        return self.finish()

    def finish(self) -> Dataset:
        """annotations.json, manifest.json and the quarantine from the finished chunks."""
        return assemble(self.cfg, self.out, len(self.chunks), self.sources)
