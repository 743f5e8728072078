"""A generation run the way the command line starts it: which engine, and a progress bar with ETA."""

from __future__ import annotations

import math
import os
import threading
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def engine_for(engine: str, cfg) -> str:
    """`auto`: the Prefect flow when a Prefect server is configured or the config scales out (Dask, Ray),
    else the same chunks in-process: on one machine the embedded server's start-up (10-30 s) buys nothing."""
    if engine != "auto":
        return engine
    if os.environ.get("PREFECT_API_URL") or cfg.orchestration.task_runner != "threads":
        return "prefect"
    return "local"


def progress_bar(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console)


@contextmanager
def chunk_progress(out: Path, total: int, what: str, console: Console):
    """A progress bar fed by the chunk files a run writes (so it works under either engine)."""
    stop = threading.Event()

    def done() -> int:
        return min(len(list((Path(out) / "chunks").glob("[0-9]*.json"))), total)

    with progress_bar(console) as progress:
        task = progress.add_task(what, total=total)

        def watch() -> None:
            while not stop.wait(0.5):
                progress.update(task, completed=done())

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            progress.update(task, completed=done())


def run_generation(config_path: Path, cfg, out: Path, engine: str, what: str, overwrite: bool,
                   console: Console) -> tuple[int, int]:
    """One generation run (flow or in-process) over a saved config; (images, annotations)."""
    total = math.ceil(cfg.generate.n_images / cfg.generate.chunk_size)
    if engine_for(engine, cfg) == "prefect":
        from roadsynth.flows.generate import run_generate

        with chunk_progress(out, total, what, console):
            summary = run_generate(str(Path(config_path).resolve()), str(out), overwrite=overwrite)
        return summary["images"], summary["annotations"]
    from roadsynth.generate import generate_dataset

    with chunk_progress(out, total, what, console):
        ds = generate_dataset(cfg, out, overwrite=overwrite)
    return len(ds.images), len(ds.annotations)
