"""Prefect flows for the A/B experiment (thin wiring over `roadsynth.experiment`).

The arm x seed trainings are independent, so they fan out: on the default threads runner `parallel` of
them run at once, each in its own child process with `threads_per_training` threads
(`experiment.plan_parallelism`); with `orchestration.task_runner: dask|ray` they go to the same cluster as
generation, each asking for its CPUs (and GPUs) there. The reuse cache (`experiment.reuse_dir`, a shared
path on a cluster) and each run folder's `training.json` keep finished trainings across re-runs.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

from roadsynth import experiment as ex
from roadsynth.config import Config, save_config
from roadsynth.datasets.io import atomic_write_json
from roadsynth.datasets.outdir import claim
from roadsynth.flows._prefect import NO_CACHE, flow, get_run_logger, task
from roadsynth.flows.generate import generation_flow, run_config
from roadsynth.flows.runners import make_task_runner


@task(name="prepare-splits", retries=1, cache_policy=NO_CACHE)
def prepare_splits(config_path: str, out_dir: str) -> dict[str, str]:
    paths = ex.prepare_splits(run_config(config_path), Path(out_dir))
    return {k: str(v) for k, v in paths.items()}


@task(name="prepare-generation", retries=1, cache_policy=NO_CACHE)
def prepare_generation(config_path: str, out_dir: str, train_path: str) -> dict[str, str]:
    paths = ex.prepare_generation(run_config(config_path), Path(out_dir), Path(train_path))
    return {k: str(v) for k, v in paths.items()}


@task(name="materialize-arms", cache_policy=NO_CACHE)
def materialize_arms(config_path: str, out_dir: str, train_path: str) -> dict[str, str]:
    arms = ex.materialize_arms(run_config(config_path), Path(out_dir), Path(train_path))
    return {k: str(v) for k, v in arms.items()}


@task(name="train-and-evaluate", cache_policy=NO_CACHE)
def train_and_evaluate(config_path: str, arm: str, seed: int, train_path: str, val_path: str, test_path: str,
                       run_dir: str, compute: dict[str, int], threads: int = 1, verbose: bool = False) -> dict:
    return ex.run_arm_seed(run_config(config_path), arm, seed, Path(train_path), Path(val_path), Path(test_path),
                           Path(run_dir), compute, threads=threads, verbose=verbose)


@task(name="write-report", cache_policy=NO_CACHE)
def report(config_path: str, out_dir: str, rows: list[dict]) -> dict:
    return ex.finish_report(run_config(config_path), Path(out_dir), rows)


@flow(name="train-arms")
def train_arms(config_path: str, jobs: list[dict], threads: int, verbose: bool = False) -> list[dict]:
    """Every arm x seed training of `jobs`, submitted at once to the flow's task runner; rows in job order."""
    cfg = run_config(config_path)
    with _training_resources(cfg, threads):
        futures = [train_and_evaluate.submit(config_path, threads=threads, verbose=verbose, **job) for job in jobs]
    return [f.result() for f in futures]


def training_runner(cfg: Config, parallel: int):
    """The threads runner with `parallel` slots (each slot waits on its child process), or the cluster's."""
    if cfg.orchestration.task_runner == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=parallel)
    return make_task_runner(cfg.orchestration)


def training_threads(cfg: Config, n_trainings: int) -> tuple[int, int]:
    """(trainings at once, threads each): the local plan, or a cluster's cores shared by its workers."""
    o, e = cfg.orchestration, cfg.experiment
    if o.task_runner == "threads":
        plan = ex.plan_parallelism(cfg, n_trainings)
        return plan["parallel"], plan["threads_per_training"]
    return o.workers, e.threads_per_training or max(1, ex.usable_cores() // o.workers)


@contextmanager
def _training_resources(cfg: Config, threads: int):
    """What each training asks of a cluster: Ray CPUs and GPUs, a Dask worker resource `GPU`."""
    o, gpus = cfg.orchestration, cfg.experiment.gpus_per_training
    if o.task_runner == "ray":
        import ray
        from prefect_ray.context import remote_options

        have = ray.cluster_resources().get("GPU", 0) if ray.is_initialized() else None
        if gpus and have is not None and have < gpus:  # Ray would queue the trainings forever
            raise RuntimeError(f"`experiment.gpus_per_training` is {gpus}, but the Ray cluster has {have:g} GPUs")
        # Ray sets CUDA_VISIBLE_DEVICES to the GPUs it granted, so device 0 of a training is its own GPU.
        with remote_options(num_cpus=threads, num_gpus=gpus):
            yield
    elif o.task_runner == "dask" and gpus:
        import dask

        # Dask grants nothing itself: start one worker per GPU with `--resources GPU=1` and its own
        # CUDA_VISIBLE_DEVICES (dask-cuda's workers do both), so a training sees only its worker's GPU.
        with dask.annotate(resources={"GPU": gpus}):
            yield
    else:
        yield


@flow(name="augmentation-experiment")
def augmentation_experiment(config_path: str, out_dir: str, overwrite: bool = False, verbose: bool = False) -> dict:
    """Real splits -> generated data -> detector per arm x seed (equal compute) -> COCO metrics -> report."""
    log = get_run_logger()
    cfg = run_config(config_path)
    out = Path(out_dir).resolve()
    claim(out, "experiment", ex.config_digest(cfg), overwrite=overwrite)
    resolved = out / "config.yaml"
    save_config(cfg, resolved)
    timings, t0 = {}, time.perf_counter()
    splits = prepare_splits(str(resolved), str(out))
    gen_configs = prepare_generation(str(resolved), str(out), splits["train"])
    runner = make_task_runner(cfg.orchestration)
    for folder, gen_config in gen_configs.items():
        generation_flow.with_options(task_runner=runner)(gen_config, str(out / folder))
    arms = materialize_arms(str(resolved), str(out), splits["train"])
    timings["splits_and_generation_s"] = round(time.perf_counter() - t0, 1)
    plan = ex.plan_compute(cfg, {arm: len(ex.load_split(Path(p)).dataset.images) for arm, p in arms.items()})
    jobs = [{"arm": arm, "seed": seed, "train_path": arm_path, "val_path": splits["val"], "test_path": splits["test"],
             "run_dir": str(out / "runs" / ex.arm_dirname(arm, seed)), "compute": plan[arm]}
            for arm, arm_path in arms.items() for seed in cfg.experiment.seeds]
    parallel, threads = training_threads(cfg, len(jobs))
    log.info("%d trainings, %d at a time, %d threads each", len(jobs), parallel, threads)
    atomic_write_json(out / "runs" / "plan.json", {"trainings": [{"arm": j["arm"], "seed": j["seed"], **j["compute"]}
                                                                  for j in jobs],
                                                   "parallel": parallel, "threads_per_training": threads,
                                                   "task_runner": cfg.orchestration.task_runner})
    t1 = time.perf_counter()
    rows = train_arms.with_options(task_runner=training_runner(cfg, parallel))(str(resolved), jobs, threads, verbose)
    timings["trainings_s"] = round(time.perf_counter() - t1, 1)
    t2 = time.perf_counter()
    metrics = report(str(resolved), str(out), rows)
    timings["report_s"] = round(time.perf_counter() - t2, 1)
    atomic_write_json(out / "timings.json", {**timings, "parallel": parallel, "threads_per_training": threads,
                                             "task_runner": cfg.orchestration.task_runner}, indent=1)
    log.info("report: %s", out / "report.md")
    return metrics
