"""Experiment throughput with real (tiny) trainings: a run killed with -9 mid-training keeps its finished
trainings, its console is quiet, and one-at-a-time, side-by-side, 2-worker Dask and 2-worker Ray runs give
the same detectors and the same metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.test_quickstart_e2e import reduced_quickstart

METRICS = ("mAP50", "mAP50_95", "training_key", "epochs", "steps")


def config(tmp_path: Path, name: str, **changes) -> Path:
    path = reduced_quickstart(tmp_path, name)
    cfg = yaml.safe_load(path.read_text())
    # One thread per training whatever the machine: a training's key (and weights) depend on its threads.
    cfg["experiment"].update(arms=["real", "real+generated"], reuse=False, threads_per_training=1,
                             **changes.pop("experiment", {}))
    cfg.update(changes)
    path.write_text(yaml.safe_dump(cfg))
    return path


def rows(out: Path) -> dict:
    runs = json.loads((out / "metrics.json").read_text())["runs"]
    return {(r["arm"], r["seed"]): {k: r[k] for k in METRICS} | {"per_class": r.get("per_class")} for r in runs}


def cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "roadsynth.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True, **kw)


@pytest.mark.slow
def test_killed_experiment_resumes_quietly_and_every_runner_trains_the_same_detectors(tmp_path, prefect_harness,
                                                                                     network_audit):
    from typer.testing import CliRunner

    from roadsynth.cli import app

    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    parallel, out = config(tmp_path, "parallel.yaml", experiment={"parallel": 2}), tmp_path / "parallel"
    proc = cli("experiment", str(parallel), "--out", str(out), env=env)
    deadline = time.time() + 300
    while not list((out / "runs").glob("*/training.json")):  # the first training finished
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read()
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the flow, its Prefect server and the running trainings
    proc.wait()
    finished = {p.parent.name for p in (out / "runs").glob("*/training.json")}
    assert 1 <= len(finished) < 4

    again = cli("experiment", str(parallel), "--out", str(out), env=env)
    console, _ = again.communicate(timeout=600)
    assert again.returncode == 0, console
    assert "Ultralytics" not in console and "Freezing layer" not in console, console  # all in runs/*/train.log
    assert len(console.splitlines()) <= 60, console
    assert "trainings 4/4 done" in console and "## Verdict: Ambulance AP50" in console
    got = json.loads((out / "metrics.json").read_text())["runs"]
    from roadsynth.experiment import arm_dirname

    for r in got:  # the finished ones were kept, the others retrained
        assert (r["reused_from"] == "run folder") == (arm_dirname(r["arm"], r["seed"]) in finished), r
    assert "Freezing layer" in (out / "runs" / "real_seed0" / "train.log").read_text()

    # One at a time: the same trainings, the same numbers.
    serial = tmp_path / "serial"
    result = CliRunner().invoke(app, ["experiment", str(config(tmp_path, "serial.yaml", experiment={"parallel": 1})),
                                      "--out", str(serial)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert rows(serial) == rows(out)
    # On a 2-worker local Dask cluster and a 2-worker local Ray cluster (seed 0 only: a training depends on its
    # arm, seed, data and threads, not on which other trainings share the run): the same seed-0 trainings.
    seed0 = {k: v for k, v in rows(out).items() if k[1] == 0}
    for name in ("dask", "ray"):
        cfg = config(tmp_path, f"{name}.yaml", experiment={"seeds": [0]},
                     orchestration={"task_runner": name, "workers": 2})
        result = CliRunner().invoke(app, ["experiment", str(cfg), "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output + repr(result.exception)
        assert rows(tmp_path / name) == seed0 and len(seed0) == 2
        assert json.loads((tmp_path / name / "timings.json").read_text())["task_runner"] == name
    assert network_audit.events == [], network_audit.events
