"""Prefect flow for dataset generation: one task per chunk of output images (thin wiring over `roadsynth.generate`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from roadsynth import generate as gen
from roadsynth.config import Config, load_config, save_config
from roadsynth.flows._prefect import NO_CACHE, flow, get_run_logger, task


@lru_cache(maxsize=4)
def _worker_state(config_path: str, digest: str):
    """Scene index and cut-out bank, loaded once per worker process and config (not per task)."""
    cfg = load_config(config_path)
    sources = gen.load_scene_sources(cfg.generate)
    bank = gen.build_bank_for(cfg.generate)
    return cfg, sources, bank


@task(name="generate-chunk", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def generate_chunk(config_path: str, digest: str, out_dir: str, chunk_index: int, jobs: list) -> dict:
    out = Path(out_dir)
    done = gen.chunk_path(out, chunk_index)
    if done.exists():  # resume: a chunk file is written last, so its presence means the chunk is complete
        return {"chunk": chunk_index, "skipped": True}
    cfg, sources, bank = _worker_state(config_path, digest)
    payload = gen.run_chunk(cfg, chunk_index, [gen.FrameJob(**j) for j in jobs], out, bank, sources)
    return {"chunk": chunk_index, "images": len(payload["images"]), "failures": len(payload["failures"])}


@task(name="assemble-dataset", retries=1, cache_policy=NO_CACHE)
def assemble_dataset(config_path: str, out_dir: str, n_chunks: int) -> dict:
    cfg = load_config(config_path)
    sources = gen.load_scene_sources(cfg.generate)
    ds = gen.assemble(cfg, Path(out_dir), n_chunks, sources)
    return {"images": len(ds.images), "annotations": len(ds.annotations)}


@flow(name="generate-dataset")
def generate_dataset(config_path: str, out_dir: str) -> dict:
    """Generate `out_dir/annotations.json` + `images/` + `manifest.json` from a roadsynth config."""
    log = get_run_logger()
    cfg: Config = load_config(config_path)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    resolved = out / "config.yaml"
    save_config(cfg, resolved)
    sources = gen.load_scene_sources(cfg.generate)
    chunks = gen.chunked(gen.plan_jobs(cfg.generate, sources), cfg.generate.chunk_size)
    log.info("%d images in %d chunks -> %s", cfg.generate.n_images, len(chunks), out)
    futures = [
        generate_chunk.submit(str(resolved), cfg.digest(), str(out), i, [j.__dict__ for j in jobs])
        for i, jobs in enumerate(chunks)
    ]
    results = [f.result() for f in futures]
    summary = assemble_dataset(str(resolved), str(out), len(chunks))
    log.info("wrote %s (%d images, %d annotations)", out / "annotations.json", summary["images"], summary["annotations"])
    return {**summary, "chunks": results}
