"""The one place that imports Prefect, after applying offline defaults a user can still override.

Importing this module changes nothing: the defaults go into the environment in `import_prefect`, just
before Prefect's first import (Prefect reads PREFECT_HOME into its settings then, so later is too late).
The flow modules take `flow`, `task`, `get_run_logger` and `NO_CACHE` from here, and that lookup (module
`__getattr__`) is what imports Prefect: a process that never builds a flow never gets the variables.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


def apply_offline_defaults() -> None:
    """Environment defaults for Prefect (`setdefault`, so a user's own values win)."""
    # Ephemeral mode needs a writable home; reuse one per user so the SQLite migrations (~20 s) run once.
    # The folder itself is made when a flow runs (`ensure_home`), not here.
    os.environ.setdefault("PREFECT_HOME", str(Path.home() / ".cache" / "roadsynth" / "prefect"))
    # The server's telemetry is its only outbound connection (offline-facts §5); DO_NOT_TRACK alone does not stop it.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_UI_ENABLED", "false")
    # The embedded server gets 20 s to answer /health by default, counted in sleeps only. A two-core machine
    # that is also training (or starting Dask workers) has missed that and failed a whole experiment at start
    # ("Timed out while attempting to connect to ephemeral Prefect API server"); waiting longer costs nothing
    # when the server is quick.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def import_prefect() -> Any:
    """The `prefect` module, imported after `apply_offline_defaults`. Every use of Prefect goes through here."""
    apply_offline_defaults()
    with warnings.catch_warnings():
        # Prefect makes PREFECT_HOME at import without its parents, so on a fresh machine (no ~/.cache yet) it
        # warns that it could not; `ensure_home` makes it, parents included, before any flow runs.
        warnings.filterwarnings("ignore", message="Failed to create the Prefect home directory", category=UserWarning)
        import prefect
    return prefect


def __getattr__(name: str) -> Any:
    # `from roadsynth.flows._prefect import flow` lands here, so Prefect is imported when a flow module is.
    if name in ("flow", "task", "get_run_logger"):
        return getattr(import_prefect(), name)
    if name == "NO_CACHE":
        import_prefect()
        from prefect.cache_policies import NO_CACHE

        return NO_CACHE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def ensure_home() -> Path:
    """PREFECT_HOME, created with its parents (Prefect creates only the last path component)."""
    apply_offline_defaults()
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
    import_prefect()
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    ensure_home()
    if PREFECT_API_URL.value():
        yield
        return
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


__all__ = ["flow", "task", "get_run_logger", "NO_CACHE", "embedded_run_settings", "ensure_home", "import_prefect",
           "apply_offline_defaults"]
