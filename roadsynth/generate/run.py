"""One generation run into one folder, whoever drives it.

`GenerationRun` holds the steps every caller shares: read the inputs (before anything is written, so a
typo in a path leaves no half-made output folder), claim the folder, sweep roadsynth's own temp files,
save the resolved config beside the output, and plan the chunks. Then the chunks still to do are run, here
(`run_here`, the local loop) or as tasks on other processes (flows/generate.py submits `todo()` and each
task process builds its own `Worker` from `config_path`), and `finish` assembles the dataset. An
interactive run (the UI) has no plan: each frame a person picks is one more chunk (`add`).
"""

from __future__ import annotations

from pathlib import Path

from roadsynth.config import Config, save_config
from roadsynth.datasets.outdir import claim
from roadsynth.datasets.records import Dataset
from roadsynth.generate.assemble import assemble, read_chunks
from roadsynth.generate.chunk import Worker
from roadsynth.generate.plan import FrameJob, chunked, plan_jobs
from roadsynth.generate.resume import chunk_done, sweep_temp_files
from roadsynth.generate.sources import Sources, load_scene_sources


class GenerationRun:
    """A prepared generation: `out_dir` claimed and swept, `config_path` written, `chunks` planned.

    `interactive`: no plan; the caller adds one chunk at a time (`add`), as the UI does for the frames a
    person picks. Such a folder is claimed without the config's digest (each sample may vary the insertion),
    and an earlier session's samples in it are kept and read once."""

    def __init__(self, cfg: Config, out_dir: str | Path, *, overwrite: bool = False, sources: Sources | None = None,
                 interactive: bool = False):
        self.cfg = cfg
        self.out = Path(out_dir)
        self.digest = cfg.digest()
        self.sources = sources if sources is not None else load_scene_sources(cfg.generate)  # inputs first
        claim(self.out, "generate", None if interactive else self.digest, overwrite=overwrite)
        self.swept = sweep_temp_files(self.out)
        self.config_path = self.out / "config.yaml"
        save_config(cfg, self.config_path)
        self.records: list[dict] | None = None  # the chunks' records, when this process holds them all
        if interactive:
            self.records = read_chunks(self.out, len(list(self.out.glob("chunks/*.json"))))
            self.chunks: list[list[FrameJob]] = [[] for _ in self.records]  # their jobs are in their records
        else:
            self.chunks = chunked(plan_jobs(cfg.generate, self.sources), cfg.generate.chunk_size)

    def todo(self) -> list[int]:
        """Indices of the chunks not yet finished by this config and roadsynth version."""
        return [i for i in range(len(self.chunks)) if not chunk_done(self.out, i, self.digest)]

    def run_here(self) -> Dataset:
        """Every chunk still to do, in this process, then `finish`."""
        worker = Worker(self.cfg, sources=self.sources)
        for i in self.todo():
            worker.run_chunk(i, self.chunks[i], self.out)
        return self.finish()

    def add(self, worker: Worker, jobs: list[FrameJob]) -> Dataset:
        """An interactive run's next chunk: `jobs` made by `worker` (which may vary the insertion), then the
        dataset so far assembled."""
        if self.records is None:
            raise ValueError("`add` is for interactive runs; a planned run's chunks are `todo()`")
        self.chunks.append(list(jobs))
        self.records.append(worker.run_chunk(len(self.chunks) - 1, jobs, self.out))
        save_config(self.cfg, self.config_path)
        return self.finish()

    def finish(self) -> Dataset:
        """annotations.json, manifest.json and the quarantine from the finished chunks."""
        return assemble(self.cfg, self.out, len(self.chunks), self.sources, self.records)
