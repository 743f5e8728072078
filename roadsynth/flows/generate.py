"""Prefect flow for dataset generation: one task per chunk of output images (thin wiring over `roadsynth.generate`).

Resume: a chunk whose file exists and carries the config's digest is finished and is not submitted
again; a killed run re-run over the same folder produces the same annotations.json as an uninterrupted
one. At most `orchestration.max_in_flight` chunks are submitted at a time, so a 100k-image run does not
put thousands of futures on the scheduler.
"""

from __future__ import annotations

import json
from collections import deque
from contextlib import nullcontext
from functools import lru_cache
from pathlib import Path

from roadsynth import generate as gen
from roadsynth.appearance import Appearance
from roadsynth.config import Config, load_config, save_config
from roadsynth.flows._prefect import NO_CACHE, embedded_run_settings, flow, get_run_logger, task
from roadsynth.flows.runners import make_task_runner


@lru_cache(maxsize=2)
def _scene_sources(config_path: str, digest: str):
    """The scene index (every frame header, label maps' blob boxes) read once per process and config."""
    return gen.load_scene_sources(load_config(config_path).generate)


@lru_cache(maxsize=2)
def _worker_state(config_path: str, digest: str):
    """Scene index, cut-out bank, inserter and restylers (e.g. diffusion pipelines), loaded once per worker process."""
    cfg = load_config(config_path)
    sources = _scene_sources(config_path, digest)
    bank = gen.build_bank_for(cfg.generate)
    appearance = Appearance(cfg.generate, gen.output_categories(cfg.generate, sources))
    return cfg, sources, bank, gen.make_inserter(cfg.generate, bank), appearance


@task(name="generate-chunk", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def generate_chunk(config_path: str, digest: str, out_dir: str, chunk_index: int, jobs: list) -> dict:
    out = Path(out_dir)
    if gen.chunk_done(out, chunk_index, digest):
        return {"chunk": chunk_index, "skipped": True}
    cfg, sources, bank, inserter, appearance = _worker_state(config_path, digest)
    payload = gen.run_chunk(cfg, chunk_index, [gen.FrameJob(**j) for j in jobs], out, bank, sources, inserter,
                            appearance)
    return {"chunk": chunk_index, "images": len(payload["images"]), "failures": len(payload["failures"])}


@task(name="assemble-dataset", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def assemble_dataset(config_path: str, out_dir: str, n_chunks: int) -> dict:
    cfg = load_config(config_path)
    ds = gen.assemble(cfg, Path(out_dir), n_chunks, _scene_sources(config_path, cfg.digest()))
    failures = json.loads((Path(out_dir) / "manifest.json").read_text())["failures"]
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
def generate_dataset(config_path: str, out_dir: str) -> dict:
    """Generate `out_dir/annotations.json` + `images/` + `manifest.json` from a roadsynth config."""
    log = get_run_logger()
    cfg: Config = load_config(config_path)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if swept := gen.sweep_temp_files(out):
        log.info("removed %d temp files left by an interrupted run", swept)
    resolved = out / "config.yaml"
    save_config(cfg, resolved)
    digest = cfg.digest()
    sources = _scene_sources(str(resolved), digest)
    chunks = gen.chunked(gen.plan_jobs(cfg.generate, sources), cfg.generate.chunk_size)
    todo = [i for i in range(len(chunks)) if not gen.chunk_done(out, i, digest)]
    log.info("%d images in %d chunks (%d already done) -> %s", cfg.generate.n_images, len(chunks),
             len(chunks) - len(todo), out)
    results, pending = [], deque()
    with _submit_options(cfg):
        for i in todo:
            if len(pending) >= cfg.orchestration.max_in_flight:
                results.append(pending.popleft().result())
            pending.append(generate_chunk.submit(str(resolved), digest, str(out), i,
                                                 [j.__dict__ for j in chunks[i]]))
        results += [f.result() for f in pending]
    summary = assemble_dataset(str(resolved), str(out), len(chunks))
    log.info("wrote %s (%d images, %d annotations)", out / "annotations.json", summary["images"], summary["annotations"])
    if summary["failures"]:
        log.warning("%d bad inputs skipped and quarantined in %s (reasons in failures.json)", summary["failures"],
                    out / "quarantine")
    return {**summary, "chunks_run": len(todo), "chunks": results}


def run_generate(config_path: str, out_dir: str) -> dict:
    """The flow with the task runner the config asks for."""
    cfg = load_config(config_path)
    with embedded_run_settings():
        return generate_dataset.with_options(task_runner=make_task_runner(cfg.orchestration))(config_path, out_dir)
