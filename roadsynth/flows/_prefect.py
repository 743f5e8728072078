"""The one place that imports Prefect, after applying offline defaults a user can still override."""

from __future__ import annotations

import os
from pathlib import Path


def _apply_offline_defaults() -> None:
    # Ephemeral mode needs a writable home; reuse one per user so the SQLite migrations (~20 s) run once.
    # The folder itself is made when a flow runs (`ensure_home`), not at import.
    os.environ.setdefault("PREFECT_HOME", str(Path.home() / ".cache" / "roadsynth" / "prefect"))
    # The server's telemetry is its only outbound connection (offline-facts §5); DO_NOT_TRACK alone does not stop it.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_UI_ENABLED", "false")


_apply_offline_defaults()  # environment defaults only, just before importing Prefect (a user's own values win)

import warnings  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from typing import Iterator  # noqa: E402

with warnings.catch_warnings():
    # Prefect makes PREFECT_HOME at import without its parents, so on a fresh machine (no ~/.cache yet) it
    # warns that it could not; `ensure_home` makes it, parents included, before any flow runs.
    warnings.filterwarnings("ignore", message="Failed to create the Prefect home directory", category=UserWarning)
    from prefect import flow, get_run_logger, task  # noqa: E402
    from prefect.cache_policies import NO_CACHE  # noqa: E402


def ensure_home() -> Path:
    """PREFECT_HOME, created with its parents (Prefect creates only the last path component)."""
    home = Path(os.environ["PREFECT_HOME"]).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


@contextmanager
def embedded_run_settings() -> Iterator[None]:
    """Settings for a flow run on the embedded (ephemeral) server: no flow-run heartbeats.

    Heartbeats let a real server spot crashed runs; the embedded server dies with the process, so they
    have nobody to tell, and their thread (sleeping in 1 s steps, joined at exit) adds up to 1 s to every
    flow run. With `PREFECT_API_URL` set (a real server) nothing changes.
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    ensure_home()
    if PREFECT_API_URL.value():
        yield
        return
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


__all__ = ["flow", "task", "get_run_logger", "NO_CACHE", "embedded_run_settings", "ensure_home"]
