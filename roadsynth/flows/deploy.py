"""Scheduled runs: a Prefect deployment with a cron schedule, served by this process.

Schedules need a real Prefect server (the ephemeral one registers deployments but never schedules runs):
`prefect server start` (SQLite by default; Postgres via PREFECT_API_DATABASE_CONNECTION_URL for a team),
then `PREFECT_API_URL=http://127.0.0.1:4200/api roadsynth deploy ...`, or point PREFECT_API_URL at an
existing server. Every scheduled run writes to its own dated folder under `out_root`.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from roadsynth.config import load_config
from roadsynth.flows._prefect import ensure_home, flow, get_run_logger
from roadsynth.flows.generate import generation_flow
from roadsynth.flows.runners import make_task_runner


def dated_folder(out_root: str | Path, now: datetime | None = None) -> Path:
    now = now or datetime.now(timezone.utc)
    return Path(out_root) / now.strftime("%Y-%m-%dT%H%M%SZ")


@flow(name="scheduled-generate")
def scheduled_generate(config_path: str, out_root: str) -> dict:
    out = dated_folder(out_root)
    get_run_logger().info("scheduled run -> %s", out)
    cfg = load_config(config_path)
    return generation_flow.with_options(task_runner=make_task_runner(cfg.orchestration))(config_path, str(out))


@flow(name="scheduled-experiment")
def scheduled_experiment(config_path: str, out_root: str) -> dict:
    from roadsynth.flows.experiment import augmentation_experiment

    out = dated_folder(out_root)
    get_run_logger().info("scheduled experiment -> %s", out)
    return augmentation_experiment(config_path, str(out))


def valid_cron(cron: str) -> bool:
    from prefect.client.schemas.schedules import CronSchedule

    try:
        CronSchedule(cron=cron)
    except ValueError:  # pydantic's ValidationError is a ValueError
        return False
    return True


def require_server() -> str:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL")
    if not url:
        raise RuntimeError(
            "schedules need a Prefect server, and PREFECT_API_URL is not set. Start one with "
            "`prefect server start` and run `PREFECT_API_URL=http://127.0.0.1:4200/api roadsynth deploy ...`, "
            "or set PREFECT_API_URL to your team's server")
    return url


def serve_deployment(config_path: str, cron: str, out_root: str, name: str, kind: str = "generate") -> None:
    """Register the deployment and serve it (blocks; Ctrl-C / SIGTERM pauses the schedule and exits)."""
    from prefect import serve

    require_server()
    ensure_home()
    target = scheduled_generate if kind == "generate" else scheduled_experiment
    deployment = target.to_deployment(
        name=name, cron=cron, tags=["roadsynth", kind],
        parameters={"config_path": str(Path(config_path).resolve()), "out_root": str(Path(out_root).resolve())})
    serve(deployment)
