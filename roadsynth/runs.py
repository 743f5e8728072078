"""Runs the way the command line starts them: which engine, a generation progress bar, the experiment's
progress display (trainings done, each running one's epoch and ETA, the whole run's ETA)."""

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
def _every(interval: float, fn):
    """Call `fn` every `interval` seconds on a daemon thread while the block runs (the display watchers)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            fn()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextmanager
def chunk_progress(out: Path, total: int, what: str, console: Console):
    """A progress bar fed by the chunk files a run writes (so it works under either engine)."""
    def done() -> int:
        return min(len(list((Path(out) / "chunks").glob("[0-9]*.json"))), total)

    with progress_bar(console) as progress:
        task = progress.add_task(what, total=total)
        try:
            with _every(0.5, lambda: progress.update(task, completed=done())):
                yield
        finally:
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


def _read(path: Path) -> dict | None:
    from roadsynth.datasets.io import read_json_record  # not at import: it loads numpy and Pillow

    return read_json_record(path, "progress file")


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


def experiment_snapshot(out: Path, cfg, now: float | None = None) -> dict:
    """Where an experiment folder stands, from the files its flow writes: generation chunks, the training plan
    (`runs/plan.json`), each training's `progress.json` and `metrics.json`. Works for any task runner whose
    workers write to this folder."""
    import time

    now = time.time() if now is None else now
    out = Path(out)
    plan = _read(out / "runs" / "plan.json")
    if plan is None:
        total = math.ceil(cfg.generate.n_images / cfg.generate.chunk_size)
        folders = [p for p in out.glob("generated*") if p.is_dir()]
        chunks = sum(len(list((p / "chunks").glob("[0-9]*.json"))) for p in folders)
        return {"phase": "generation", "chunks": chunks, "chunks_total": total * max(1, len(folders))}
    from roadsynth.experiment import arm_dirname

    done, running, waiting = [], [], []
    for t in plan["trainings"]:
        run = out / "runs" / arm_dirname(t["arm"], t["seed"])
        row, prog = _read(run / "metrics.json"), _read(run / "progress.json")
        item = {"arm": t["arm"], "seed": t["seed"], "steps": t["steps"], "epochs": t["epochs"]}
        # A metrics.json older than the progress file is an earlier run's: this folder is training again.
        if row is not None and (prog is None or prog["updated"] <= _mtime(run / "metrics.json")):
            done.append({**item, "seconds": row.get("train_seconds"), "reused": row.get("reused")})
        elif prog is not None:
            elapsed = max(1e-6, prog["updated"] - prog["started"])
            rate = prog["steps_done"] / elapsed if prog["steps_done"] else None
            left = (t["steps"] - prog["steps_done"]) / rate if rate else None
            running.append({**item, "epoch": prog["epoch"], "steps_done": prog["steps_done"],
                            "eta_s": None if left is None else left - (now - prog["updated"]),
                            "seconds_per_step": 1 / rate if rate else None})
        else:
            waiting.append(item)
    timed = [d["seconds"] / d["steps"] for d in done if not d["reused"] and d["seconds"]]
    per_step = (sum(timed) / len(timed)) if timed else next(
        (r["seconds_per_step"] for r in running if r["seconds_per_step"]), None)
    eta = None
    if per_step is not None:
        left = sum(w["steps"] for w in waiting) * per_step
        slots = max(1, int(plan.get("parallel", 1)))
        # A training that has only just started has no rate of its own yet: the finished ones' rate stands in.
        running_left = [max(0.0, r["eta_s"]) if r["eta_s"] is not None else (r["steps"] - r["steps_done"]) * per_step
                        for r in running]
        eta = (left + sum(running_left)) / slots if waiting else max(running_left, default=0.0)
    return {"phase": "training", "done": done, "running": running, "waiting": waiting,
            "total": len(plan["trainings"]), "parallel": plan.get("parallel"),
            "threads": plan.get("threads_per_training"), "eta_s": eta}


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def snapshot_lines(s: dict) -> list[str]:
    """The snapshot as short lines: a headline, then one line per running training."""
    if s["phase"] == "generation":
        return [f"generating: {s['chunks']}/{s['chunks_total']} chunks"]
    head = (f"trainings {len(s['done'])}/{s['total']} done, {len(s['running'])} running "
            f"({s['parallel']} at a time, {s['threads']} threads each), eta {_minutes(s['eta_s'])}")
    return [head] + [f"  {r['arm']} seed {r['seed']}: epoch {min(r['epoch'] + 1, r['epochs'])}/{r['epochs']}, "
                     f"step {r['steps_done']}/{r['steps']}, eta {_minutes(r['eta_s'])}" for r in s["running"]]


@contextmanager
def experiment_progress(out: Path, cfg, console: Console, interval: float = 1.0):
    """The experiment's progress: a live panel on a terminal; elsewhere (logs, CI) one line whenever a
    training starts or finishes."""
    from rich.live import Live
    from rich.text import Text

    live = Live(Text(""), console=console, refresh_per_second=2, transient=True) if console.is_terminal else None
    seen: dict[str, tuple] = {}

    def tick() -> None:
        s = experiment_snapshot(out, cfg)
        lines = snapshot_lines(s)
        if live is not None:
            live.update(Text("\n".join(lines)))
            return
        key = ("generation",) if s["phase"] == "generation" else (
            len(s["done"]), tuple(sorted((r["arm"], r["seed"]) for r in s["running"])))
        if seen.get("last") != key:  # a training started or finished
            seen["last"] = key
            console.print(lines[0])

    def safe_tick() -> None:
        try:
            tick()
        except Exception:  # noqa: BLE001 - a display glitch must never stop an experiment
            pass

    if live is not None:
        live.start()
    try:
        with _every(interval, safe_tick):
            yield
    finally:
        if live is not None:
            live.stop()
        else:  # the last trainings can finish between two ticks: the log always ends on the final count
            safe_tick()
