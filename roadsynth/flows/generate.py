"""Prefect flow for dataset generation: one task per chunk of output images (thin wiring over `roadsynth.generate`).

The flow prepares a `GenerationRun` and maps `Worker.run_chunk` over its chunks still to do; each task
process builds its worker once.

Resume: a chunk whose file exists and carries the config's digest is finished and is not submitted
again; a killed run re-run over the same folder produces the same annotations.json as an uninterrupted
one. At most `orchestration.max_in_flight` chunks are submitted at a time, so a 100k-image run does not
put thousands of futures on the scheduler.
"""

from __future__ import annotations

from collections import deque
from contextlib import nullcontext
from functools import lru_cache
from pathlib import Path

from roadsynth.config import Config, run_config
from roadsynth.datasets.io import read_json
from roadsynth.flows._prefect import NO_CACHE, embedded_run_settings, flow, get_run_logger, task
from roadsynth.flows.runners import make_task_runner
from roadsynth.generate import FrameJob, GenerationRun, Worker
from roadsynth.generate.assemble import assemble
from roadsynth.generate.resume import chunk_done
from roadsynth.generate.sources import load_scene_sources


def scene_sources(config_path: str, digest: str):
    """The scene index (every frame header, label maps' blob boxes), read once per process and generate
    section (the digest: the same section under another file name is the same index). Planning and
    assembling need only this, so the flow's own process never loads an inserter."""
    if digest not in _SOURCES:
        _SOURCES.clear()  # one run's index at a time
        _SOURCES[digest] = load_scene_sources(run_config(config_path).generate)
    return _SOURCES[digest]


_SOURCES: dict = {}


@lru_cache(maxsize=2)
def worker(config_path: str, digest: str) -> Worker:
    """The worker of a task-running process: cut-out bank, inserter and restylers (e.g. diffusion
    pipelines) loaded once and kept for the process's lifetime."""
    return Worker(run_config(config_path), sources=scene_sources(config_path, digest))


@task(name="generate-chunk", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def generate_chunk(config_path: str, digest: str, out_dir: str, chunk_index: int, jobs: list) -> dict:
    out = Path(out_dir)
    if chunk_done(out, chunk_index, digest):
        return {"chunk": chunk_index, "skipped": True}
    payload = worker(config_path, digest).run_chunk(chunk_index, [FrameJob(**j) for j in jobs], out)
    return {"chunk": chunk_index, "images": len(payload["images"]), "failures": len(payload["failures"])}


@task(name="assemble-dataset", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def assemble_dataset(config_path: str, digest: str, out_dir: str, n_chunks: int) -> dict:
    ds = assemble(run_config(config_path), Path(out_dir), n_chunks, scene_sources(config_path, digest))
    failures = read_json(Path(out_dir) / "manifest.json", "generation manifest")["failures"]
    return {"images": len(ds.images), "annotations": len(ds.annotations), "failures": len(failures)}


def _submit_options(cfg: Config):
    o = cfg.orchestration
    if o.task_runner == "ray" and o.gpus_per_task > 0:
        import ray
        from prefect_ray.context import remote_options

        # Ray would queue GPU tasks forever on a cluster without GPUs; say so instead of hanging.
        gpus = ray.cluster_resources().get("GPU", 0) if ray.is_initialized() else None
        if gpus is not None and gpus < o.gpus_per_task:
            raise RuntimeError(f"`orchestration.gpus_per_task` is {o.gpus_per_task}, but the Ray cluster has {gpus:g} GPUs")
        return remote_options(num_gpus=o.gpus_per_task)
    return nullcontext()


@flow(name="generate-dataset")
def generation_flow(config_path: str, out_dir: str, overwrite: bool = False) -> dict:
    """Generate `out_dir/annotations.json` + `images/` + `manifest.json` from a roadsynth config: the
    `GenerationRun` is prepared here, its chunks still to do run as tasks, the assembly as a last task."""
    log = get_run_logger()
    cfg = run_config(config_path)
    digest = cfg.digest()
    run = GenerationRun(cfg, Path(out_dir).resolve(), overwrite=overwrite, sources=scene_sources(config_path, digest))
    if run.swept:
        log.info("removed %d temp files left by an interrupted run", run.swept)
    todo = run.todo()
    log.info("%d images in %d chunks (%d already done) -> %s", cfg.generate.n_images, len(run.chunks),
             len(run.chunks) - len(todo), run.out)
    resolved, out = str(run.config_path), str(run.out)
    results, pending = [], deque()
    with _submit_options(cfg):
        for i in todo:
            if len(pending) >= cfg.orchestration.max_in_flight:
                results.append(pending.popleft().result())
            pending.append(generate_chunk.submit(resolved, digest, out, i, [j.__dict__ for j in run.chunks[i]]))
        results += [f.result() for f in pending]
    summary = assemble_dataset(resolved, digest, out, len(run.chunks))
    log.info("wrote %s (%d images, %d annotations)", run.out / "annotations.json", summary["images"],
             summary["annotations"])
    if summary["failures"]:
        log.warning("%d bad inputs skipped and quarantined in %s (reasons in failures.json)", summary["failures"],
                    run.out / "quarantine")
    return {**summary, "chunks_run": len(todo), "chunks": results}


def run_generate(config_path: str, out_dir: str, overwrite: bool = False) -> dict:
    """The flow with the task runner the config asks for."""
    cfg = run_config(config_path)
    with embedded_run_settings():
        return generation_flow.with_options(task_runner=make_task_runner(cfg.orchestration))(
            config_path, out_dir, overwrite)
