"""Prefect flows for the A/B experiment (thin wiring over `roadsynth.experiment`)."""

from __future__ import annotations

from pathlib import Path

from roadsynth import experiment as ex
from roadsynth.config import save_config
from roadsynth.datasets.outdir import claim
from roadsynth.flows._prefect import NO_CACHE, flow, get_run_logger, task
from roadsynth.flows.generate import generate_dataset, run_config
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
                       run_dir: str, compute: dict[str, int]) -> dict:
    return ex.run_arm_seed(run_config(config_path), arm, seed, Path(train_path), Path(val_path), Path(test_path),
                           Path(run_dir), compute)


@task(name="write-report", cache_policy=NO_CACHE)
def report(config_path: str, out_dir: str, rows: list[dict]) -> dict:
    return ex.finish_report(run_config(config_path), Path(out_dir), rows)


@flow(name="augmentation-experiment")
def augmentation_experiment(config_path: str, out_dir: str, overwrite: bool = False) -> dict:
    """Real splits -> generated data -> detector per arm x seed (equal compute) -> COCO metrics -> report."""
    log = get_run_logger()
    cfg = run_config(config_path)
    out = Path(out_dir).resolve()
    claim(out, "experiment", ex.config_digest(cfg), overwrite=overwrite)
    resolved = out / "config.yaml"
    save_config(cfg, resolved)
    splits = prepare_splits(str(resolved), str(out))
    gen_configs = prepare_generation(str(resolved), str(out), splits["train"])
    runner = make_task_runner(cfg.orchestration)
    for folder, gen_config in gen_configs.items():
        generate_dataset.with_options(task_runner=runner)(gen_config, str(out / folder))
    arms = materialize_arms(str(resolved), str(out), splits["train"])
    plan = ex.plan_compute(cfg, {arm: len(ex.load_split(Path(p)).dataset.images) for arm, p in arms.items()})
    rows = []
    # Sequential on purpose: each training already uses every core; parallel runs would only thrash.
    for arm, arm_path in arms.items():
        for seed in cfg.experiment.seeds:
            run_dir = out / "runs" / ex.arm_dirname(arm, seed)
            log.info("training arm %s seed %d (%d epochs, %d steps)", arm, seed, plan[arm]["epochs"],
                     plan[arm]["steps"])
            rows.append(train_and_evaluate(str(resolved), arm, seed, arm_path, splits["val"], splits["test"],
                                           str(run_dir), plan[arm]))
    metrics = report(str(resolved), str(out), rows)
    log.info("report: %s", out / "report.md")
    return metrics
