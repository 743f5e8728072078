"""Task runners from the config (flows/runners.py) and scheduled deployments (flows/deploy.py), without a server."""

from datetime import datetime, timezone

import pytest

from roadsynth.config import OrchestrationConfig


def test_task_runners_follow_the_config_without_starting_anything(monkeypatch):
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner
    from prefect_ray import RayTaskRunner

    from roadsynth.flows.runners import make_task_runner

    threads = make_task_runner(OrchestrationConfig(workers=3))
    assert isinstance(threads, ThreadPoolTaskRunner) and threads._max_workers == 3
    dask = make_task_runner(OrchestrationConfig(task_runner="dask", workers=2))
    assert isinstance(dask, DaskTaskRunner)
    assert dask.cluster_kwargs == {"n_workers": 2, "threads_per_worker": 1, "processes": True, "dashboard_address": None}
    assert make_task_runner(OrchestrationConfig(task_runner="dask", address="tcp://127.0.0.1:8786")).address \
        == "tcp://127.0.0.1:8786"
    monkeypatch.delenv("RAY_USAGE_STATS_ENABLED", raising=False)
    ray = make_task_runner(OrchestrationConfig(task_runner="ray", workers=2))
    assert isinstance(ray, RayTaskRunner)
    assert {k: ray.init_kwargs[k] for k in ("num_cpus", "include_dashboard")} == {"num_cpus": 2, "include_dashboard": False}
    import os

    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0"


def test_deploy_helpers_dated_folders_cron_and_server_check(monkeypatch, tmp_path):
    from roadsynth.flows.deploy import dated_folder, require_server, valid_cron

    when = datetime(2026, 11, 30, 2, 0, 5, tzinfo=timezone.utc)
    assert dated_folder(tmp_path, when) == tmp_path / "2026-11-30T020005Z"
    assert valid_cron("0 2 * * *") and not valid_cron("every night")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: None}):
        with pytest.raises(RuntimeError, match="schedules need a Prefect server"):
            require_server()
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        assert require_server() == "http://127.0.0.1:4200/api"
