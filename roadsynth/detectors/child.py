"""One training in a child process: `python -m roadsynth.detectors.child JOB.json`.

Why a child process, and why `subprocess` rather than `multiprocessing`:
- Ultralytics' augmentations draw from Python's global `random`, which other threads of a flow's process
  (the Prefect client's polling and retry jitter) draw from too, so a training inside the flow depended on
  their timing. A child owns its random state: the same inputs give the same weights, which is what the
  reuse cache's content key assumes.
- Dask and Ray workers are daemonic processes, and multiprocessing refuses to start children from those;
  a plain subprocess works on every runner.
- The child's output (Ultralytics' layer-freezing lines, bars, cache messages) goes to the run's own
  `train.log`; the parent shows it live only when asked (`verbose`), and passes warnings and errors on.
- Ultralytics sets the process's torch threads to min(8, cores - 1) whatever the caller wants; the child
  pins them to the job's `threads` (`yolo_ultralytics.pin_threads`), so parallel trainings share the cores
  as planned.

The child reports progress in `run_dir/progress.json` (epoch, batches done of the planned total), written
atomically at most once a second, which the console's progress display reads.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Callable

from roadsynth.datasets.io import atomic_write_json, read_json

PROGRESS = "progress.json"
LOG = "train.log"
# Lines of a child's output that reach the console even when it is quiet.
_LOUD = ("WARNING", "Error", "ERROR", "Traceback")


def run_training(job: dict, run_dir: Path, *, verbose: bool = False,
                 echo: Callable[[str], None] | None = None) -> Path:
    """Run `job` (see `main`) in a child process; returns the weights path it wrote.

    The child's output is written to `run_dir/train.log`; with `verbose` every line is echoed, otherwise only
    warnings and errors. A failed training raises with the log's last lines.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    job_path = run_dir / "job.json"
    atomic_write_json(job_path, job, indent=1)
    result_path = run_dir / "result.json"
    result_path.unlink(missing_ok=True)
    echo = echo or (lambda line: print(line, file=sys.stderr, flush=True))
    env = {**os.environ, **thread_env(int(job["threads"])), "PYTHONUNBUFFERED": "1"}
    # A Dask nanny starts its workers with MALLOC_TRIM_THRESHOLD_=65536 (return freed memory to the OS at
    # once). A training inheriting it pays a page fault for every freed activation buffer: 1.5 s instead of
    # 0.87 s per yolo11n step on one thread (benchmarks/experiment_throughput.py's Dask row, before this).
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    tail: deque[str] = deque(maxlen=20)
    label = job.get("label", run_dir.name)
    with open(run_dir / LOG, "w", encoding="utf-8") as log:
        proc = subprocess.Popen([sys.executable, "-m", "roadsynth.detectors.child", str(job_path)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, text=True, errors="replace", bufsize=1, preexec_fn=_die_with_parent)
        try:
            for line in proc.stdout:
                log.write(line)
                line = line.rstrip()
                tail.append(line)
                if verbose or any(word in line for word in _LOUD):
                    echo(f"[{label}] {line}")
            code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    if code != 0 or not result_path.is_file():
        # The exception's own line first: the command line shows a failure's first line only.
        reason = next((line for line in reversed(tail) if re.match(r"^[\w.]+(Error|Exception)\b", line)),
                      f"exit code {code}")
        raise RuntimeError(f"training {label} failed: {reason} (log: {run_dir / LOG})\n" + "\n".join(tail))
    return Path(read_json(result_path, "training result")["weights"])


def thread_env(threads: int) -> dict[str, str]:
    """The thread-pool variables a child must start with (they are read when torch/numpy load)."""
    n = str(max(1, threads))
    return {k: n for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def _die_with_parent() -> None:
    """Linux: the child gets SIGKILL when its parent dies (kill -9 of an experiment leaves no orphan training
    writing into the run folder that a re-run retrains)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class ProgressFile:
    """`progress.json` of one training: batches done of the planned total, throttled to one write a second."""

    def __init__(self, path: Path, epochs: int, steps: int):
        self.path, self.epochs, self.steps = Path(path), epochs, max(1, steps)
        self.started, self.done, self.epoch, self.last = time.time(), 0, 0, 0.0

    def batch(self) -> None:
        self.done += 1
        if time.time() - self.last >= 1.0:
            self.write()

    def epoch_end(self, epoch: int) -> None:
        self.epoch = epoch
        self.write()

    def write(self) -> None:
        self.last = time.time()
        atomic_write_json(self.path, {"epoch": self.epoch, "epochs": self.epochs, "steps_done": self.done,
                                      "steps": self.steps, "started": self.started, "updated": self.last})


def main(job_path: str) -> None:
    """The child: a job is {detector (a DetectorConfig dump), train, val (split files), run_dir, seed,
    threads, steps}; writes `result.json` with the weights path."""
    from roadsynth.config.experiment import DetectorConfig
    from roadsynth.detectors import make_detector
    from roadsynth.experiment import load_split

    job = read_json(job_path, "training job")
    run_dir = Path(job["run_dir"])
    cfg = DetectorConfig(**job["detector"])
    det = make_detector(cfg)
    if cfg.kind == "yolo":
        from roadsynth.detectors.yolo_ultralytics import pin_threads

        pin_threads(int(job["threads"]))
    progress = ProgressFile(run_dir / PROGRESS, cfg.epochs, int(job.get("steps", cfg.epochs)))
    progress.write()
    weights = det.train(load_split(Path(job["train"])), load_split(Path(job["val"])), run_dir,
                        seed=int(job["seed"]), progress=progress)
    atomic_write_json(run_dir / "result.json", {"weights": str(Path(weights).resolve())})


if __name__ == "__main__":
    main(sys.argv[1])
