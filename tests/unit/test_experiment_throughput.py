"""Experiment throughput without a detector: how trainings share the cores, the progress display's reading
of a run folder, the console summary, and the training cache under two writers at once."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

from roadsynth.cli import report_summary
from roadsynth.datasets.io import atomic_write_json
from roadsynth.detectors.reuse import TrainedCache
from roadsynth.experiment import config_digest, plan_parallelism
from roadsynth.runs import experiment_snapshot, snapshot_lines
from tests.unit.test_experiment_protocol import quickstart


def test_trainings_share_the_cores_and_threads_never_depend_on_parallel(tmp_path):
    cfg = quickstart(tmp_path)
    assert plan_parallelism(cfg, 6, cores=2) == {"parallel": 2, "threads_per_training": 1, "cores": 2}
    assert plan_parallelism(cfg, 6, cores=16) == {"parallel": 6, "threads_per_training": 2, "cores": 16}
    assert plan_parallelism(cfg, 1, cores=8)["threads_per_training"] == 8
    serial = quickstart(tmp_path, parallel=1)
    # One at a time trains with the same threads as side by side, so the weights are the same.
    assert plan_parallelism(serial, 6, cores=2) == {"parallel": 1, "threads_per_training": 1, "cores": 2}
    fixed = quickstart(tmp_path, threads_per_training=2)
    assert plan_parallelism(fixed, 6, cores=2)["parallel"] == 1
    gpu = quickstart(tmp_path, detector={**cfg.experiment.detector.model_dump(mode="json"), "device": "0"})
    assert plan_parallelism(gpu, 6, cores=16) == {"parallel": 1, "threads_per_training": 16, "cores": 16}


def test_a_run_resumes_with_other_parallelism_but_not_with_other_trainings(tmp_path):
    digest = config_digest(quickstart(tmp_path))
    assert config_digest(quickstart(tmp_path, parallel=1)) == digest
    assert config_digest(quickstart(tmp_path, gpus_per_training=1)) == digest
    # Threads are part of each training's key (CPU reductions may round differently): another experiment.
    assert config_digest(quickstart(tmp_path, threads_per_training=1)) != digest
    assert config_digest(quickstart(tmp_path, seeds=[0])) != digest


def test_progress_snapshot_reads_plan_progress_and_finished_runs(tmp_path):
    cfg = quickstart(tmp_path)
    out = tmp_path / "exp"
    assert experiment_snapshot(out, cfg)["phase"] == "generation"
    plan = [{"arm": a, "seed": s, "epochs": 5, "steps": 100} for a in ("real", "real+generated") for s in (0, 1)]
    atomic_write_json(out / "runs" / "plan.json", {"trainings": plan, "parallel": 2, "threads_per_training": 1})
    now = time.time()
    atomic_write_json(out / "runs" / "real_seed0" / "metrics.json", {"train_seconds": 50.0, "reused": False})
    atomic_write_json(out / "runs" / "real_seed1" / "progress.json",
                      {"epoch": 2, "epochs": 5, "steps_done": 40, "steps": 100, "started": now - 20, "updated": now})
    s = experiment_snapshot(out, cfg, now=now)
    assert (len(s["done"]), len(s["running"]), len(s["waiting"])) == (1, 1, 2)
    assert abs(s["running"][0]["eta_s"] - 30) < 1e-6  # 60 steps left at 2 steps/s
    # Two waiting trainings of 100 steps at 0.5 s/step (the finished one's pace) over 2 slots, plus the 30 s left.
    assert abs(s["eta_s"] - (2 * 100 * 0.5 + 30) / 2) < 1e-6
    lines = snapshot_lines(s)
    assert lines[0].startswith("trainings 1/4 done, 1 running (2 at a time, 1 threads each), eta 1:05")
    assert lines[1] == "  real seed 1: epoch 3/5, step 40/100, eta 0:30"
    # A training that has just started (no step yet) takes the finished ones' pace: the run's ETA stays known.
    atomic_write_json(out / "runs" / "real_plus_generated_seed0" / "progress.json",
                      {"epoch": 0, "epochs": 5, "steps_done": 0, "steps": 100, "started": now, "updated": now})
    s = experiment_snapshot(out, cfg, now=now)
    assert s["running"][1]["eta_s"] is None and abs(s["eta_s"] - (100 * 0.5 + 30 + 100 * 0.5) / 2) < 1e-6


def test_a_log_console_ends_on_the_final_count_when_the_last_trainings_finish_between_ticks(tmp_path):
    import io

    from rich.console import Console

    from roadsynth.runs import experiment_progress

    cfg = quickstart(tmp_path)
    out = tmp_path / "exp"
    plan = [{"arm": "real", "seed": s, "epochs": 1, "steps": 10} for s in (0, 1)]
    atomic_write_json(out / "runs" / "plan.json", {"trainings": plan, "parallel": 2, "threads_per_training": 1})
    stream = io.StringIO()
    with experiment_progress(out, cfg, Console(file=stream, force_terminal=False), interval=3600):
        for s in (0, 1):  # both finish long before the first tick
            atomic_write_json(out / "runs" / f"real_seed{s}" / "metrics.json", {"train_seconds": 1.0})
    assert stream.getvalue().splitlines()[-1].startswith("trainings 2/2 done, 0 running")


def test_console_summary_is_the_verdict_and_the_arms_table():
    md = "# title\n\n## Verdict: A\n\nline\n\n- **context**: x\n\n## Arms (COCO)\n\n| a |\n\n## Per class\n\nlots\n"
    summary = report_summary(md)
    assert summary.startswith("## Verdict: A") and "| a |" in summary and "Per class" not in summary


def test_training_cache_keeps_one_whole_entry_when_two_processes_finish_at_once(tmp_path):
    weights = []
    for k in range(8):
        w = tmp_path / f"w{k}" / "weights.pt"
        w.parent.mkdir()
        w.write_bytes(bytes([k]) * 4096)
        (w.parent / "classes.json").write_text("[]")
        weights.append(w)
    cache = TrainedCache(tmp_path / "cache")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda w: cache.put("k" * 32, w, {}, {}), weights))
    hit = cache.get("k" * 32)
    assert hit is not None and len(set(open(hit["weights"], "rb").read())) == 1  # one writer's bytes, whole
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["k" * 32]  # no temp folder left
    assert json.loads((tmp_path / "cache" / ("k" * 32) / "entry.json").read_text())["key"] == "k" * 32


def test_a_failed_training_names_its_exception_on_the_first_line_and_keeps_the_log(tmp_path):
    import pytest

    from roadsynth.detectors.child import run_training

    job = {"detector": {"imgsz": 33}, "train": "x", "val": "x", "run_dir": str(tmp_path), "seed": 0, "threads": 1,
           "label": "real seed 0"}
    with pytest.raises(RuntimeError) as err:
        run_training(job, tmp_path)
    first = str(err.value).splitlines()[0]
    assert first.startswith("training real seed 0 failed: ") and "ValidationError" in first, first
    assert str(tmp_path / "train.log") in first and "imgsz" in (tmp_path / "train.log").read_text()


def test_a_training_under_a_dask_nanny_does_not_inherit_its_malloc_trimming(tmp_path, monkeypatch):
    import subprocess

    import pytest

    from roadsynth.detectors import child

    seen = {}

    def popen(*args, env=None, **kw):
        seen.update(env)
        raise OSError("not started")

    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # what distributed's nanny sets in its workers
    monkeypatch.setattr(subprocess, "Popen", popen)
    job = {"detector": {}, "train": "x", "val": "x", "run_dir": str(tmp_path), "seed": 0, "threads": 3}
    with pytest.raises(OSError):
        child.run_training(job, tmp_path)
    assert "MALLOC_TRIM_THRESHOLD_" not in seen and seen["OMP_NUM_THREADS"] == "3"
