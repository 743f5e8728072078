"""Experiment throughput with real (tiny) trainings: a run killed with -9 mid-training keeps its finished
trainings and resumes with another `parallel`, its console is quiet, and one-at-a-time, side-by-side,
2-worker Dask and 2-worker Ray trainings give the same detectors and the same metrics."""

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

# One worker runs this module's tests (pytest-xdist): the cluster runs compare with the resumed run.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("experiment-runners")]

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


def generated(out: Path) -> dict:
    """The generated dataset less `info`, whose config digest covers the run folder's own cut-out bank path."""
    return {k: v for k, v in json.loads((out / "generated" / "annotations.json").read_text()).items() if k != "info"}


def cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "roadsynth.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True, **kw)


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, prefect_harness) -> tuple[Path, set[str], str]:
    """(run folder, trainings finished before the kill, the re-run's console): an experiment training one at a
    time, killed with -9 once its first training finished, re-run with two trainings side by side."""
    tmp = tmp_path_factory.mktemp("resume")
    env = {**os.environ, "PREFECT_HOME": str(tmp / "prefect")}
    out = tmp / "run"
    proc = cli("experiment", str(config(tmp, "serial.yaml", experiment={"parallel": 1})), "--out", str(out), env=env)
    deadline = time.time() + 300
    while not list((out / "runs").glob("*/training.json")):  # the first training finished
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read()
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the flow, its Prefect server and the running training
    proc.wait()
    finished = {p.parent.name for p in (out / "runs").glob("*/training.json")}

    # `parallel` says how the trainings run, not what they are: the same experiment, so the folder resumes.
    again = cli("experiment", str(config(tmp, "parallel.yaml", experiment={"parallel": 2})), "--out", str(out),
                env=env)
    console, _ = again.communicate(timeout=600)
    assert again.returncode == 0, console
    return out, finished, console


def test_a_killed_experiment_keeps_its_finished_trainings_and_resumes_quietly(resumed):
    out, finished, console = resumed
    assert finished == {"real_seed0"}, finished  # one at a time, in job order: the second one was running
    assert "Ultralytics" not in console and "Freezing layer" not in console, console  # all in runs/*/train.log
    assert len(console.splitlines()) <= 60, console
    assert "trainings 4/4 done" in console and "## Verdict: Ambulance AP50" in console
    got = json.loads((out / "metrics.json").read_text())["runs"]
    from roadsynth.experiment import arm_dirname

    for r in got:  # the finished one was kept, the others retrained
        assert (r["reused_from"] == "run folder") == (arm_dirname(r["arm"], r["seed"]) in finished), r
    assert "Freezing layer" in (out / "runs" / "real_seed0" / "train.log").read_text()
    assert json.loads((out / "runs" / "plan.json").read_text())["parallel"] == 2


@pytest.mark.parametrize("runner", ["dask", "ray"])
def test_a_cluster_trains_the_same_detectors_as_one_at_a_time_and_side_by_side(resumed, runner, tmp_path,
                                                                               network_audit):
    """On a 2-worker local cluster, seed 0 only (a training depends on its arm, seed, data and threads, not on
    which other trainings share the run): the same trainings as the resumed run, whose `real` seed 0 was
    trained alone before the kill and the rest two at a time, and the same generated data."""
    from typer.testing import CliRunner

    from roadsynth.cli import app

    reference, _, _ = resumed
    seed0 = {k: v for k, v in rows(reference).items() if k[1] == 0}
    assert len(seed0) == 2
    cfg = config(tmp_path, f"{runner}.yaml", experiment={"seeds": [0]},
                 orchestration={"task_runner": runner, "workers": 2})
    result = CliRunner().invoke(app, ["experiment", str(cfg), "--out", str(tmp_path / runner)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert rows(tmp_path / runner) == seed0
    assert json.loads((tmp_path / runner / "timings.json").read_text())["task_runner"] == runner
    assert generated(tmp_path / runner) == generated(reference)
    assert network_audit.events == [], network_audit.events
