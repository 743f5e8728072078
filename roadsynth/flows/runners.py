"""Prefect task runners from the config: threads (default), Dask, Ray. Their libraries load only when chosen."""

from __future__ import annotations

import os

from roadsynth.config import OrchestrationConfig


def make_task_runner(o: OrchestrationConfig):
    from roadsynth.flows._prefect import import_prefect

    import_prefect()  # the offline defaults before any Prefect module loads
    if o.task_runner == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=o.workers)
    if o.task_runner == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError:
            raise ImportError("`task_runner: dask` needs the dask extra: pip install 'roadsynth[dask]'") from None
        if o.address:
            return DaskTaskRunner(address=o.address)
        # Processes, not threads: generation is CPU-bound Python/NumPy; no dashboard (it would open a port).
        return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs={
            "n_workers": o.workers, "threads_per_worker": 1, "processes": True, "dashboard_address": None})
    # Ray reports usage statistics to its developers unless told not to (a network call per cluster start).
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        from prefect_ray import RayTaskRunner
    except ImportError:
        raise ImportError("`task_runner: ray` needs the ray extra: pip install 'roadsynth[ray]'") from None
    if o.address:
        return RayTaskRunner(address=o.address)
    # A local cluster: no dashboard (it would open a port), CPUs = workers; GPUs are detected by Ray.
    return RayTaskRunner(init_kwargs={"num_cpus": o.workers, "include_dashboard": False})
