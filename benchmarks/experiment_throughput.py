"""Experiment throughput: the quickstart's arm x seed trainings one at a time, side by side, and on a
2-worker local Dask cluster, in one run; wall times, their ratio, and whether the metrics matched.

Each setting is a whole `roadsynth experiment` in a fresh process and folder, from the same config with
`reuse: false` (nothing comes from the training cache), so every setting trains every arm x seed. The
trainings' wall time is the flow's own measurement (`timings.json`: from the first training submitted
to the last one scored); the whole command's wall time is printed beside it. "Identical" compares every
run's training key, mAP50, mAP50-95 and per-class AP across settings.

Target (issue 24): serial / parallel wall time of the trainings >= 1.7x on 2 cores, identical metrics.

    python benchmarks/experiment_throughput.py [--config configs/quickstart.yaml] [--no-dask] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def settings(dask: bool) -> dict[str, dict]:
    out = {"serial": {"experiment": {"parallel": 1}}, "parallel": {"experiment": {}}}
    if dask:
        out["dask_2_workers"] = {"experiment": {}, "orchestration": {"task_runner": "dask", "workers": 2}}
    return out


def write_config(base: Path, changes: dict, path: Path) -> Path:
    from roadsynth.config import load_config

    cfg = load_config(base).model_dump(mode="json")  # paths resolved, so the copy may live anywhere
    cfg["experiment"].update(reuse=False, **changes.get("experiment", {}))
    cfg["orchestration"].update(changes.get("orchestration", {}))
    path.write_text(yaml.safe_dump(cfg))
    return path


def scores(out: Path) -> dict:
    runs = json.loads((out / "metrics.json").read_text())["runs"]
    return {f"{r['arm']} seed {r['seed']}": [r["training_key"], r["mAP50"], r["mAP50_95"], r["per_class"]]
            for r in runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "quickstart.yaml")
    ap.add_argument("--no-dask", action="store_true", help="skip the 2-worker Dask setting")
    ap.add_argument("--keep", type=Path, help="write the experiment folders here instead of a temp folder")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="roadsynth-throughput-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_HOME": str(work / "prefect")}  # one warm database for every setting
    result, seen = {"config": str(args.config), "cores": len(os.sched_getaffinity(0)), "settings": {}}, {}
    for name, changes in settings(not args.no_dask).items():
        cfg = write_config(args.config, changes, work / f"{name}.yaml")
        out = work / name
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "roadsynth.cli", "experiment", str(cfg), "--out", str(out)],
                              env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{name}: roadsynth experiment failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        (work / f"{name}.console.txt").write_text(proc.stdout + proc.stderr)  # what a user would have seen
        t = json.loads((out / "timings.json").read_text())
        seen[name] = scores(out)
        result["settings"][name] = {"trainings_s": t["trainings_s"], "command_s": round(wall, 1),
                                    "generation_s": t["splits_and_generation_s"], "report_s": t["report_s"],
                                    "parallel": t["parallel"], "threads_per_training": t["threads_per_training"],
                                    "task_runner": t["task_runner"], "trainings": len(seen[name]),
                                    "console_lines": len((proc.stdout + proc.stderr).splitlines())}
    s = result["settings"]
    for name in s:
        if name != "serial":
            result[f"serial_over_{name}"] = {"ratio": round(s["serial"]["trainings_s"] / s[name]["trainings_s"], 2),
                                             "serial_trainings_s": s["serial"]["trainings_s"],
                                             f"{name}_trainings_s": s[name]["trainings_s"]}
            result[f"identical_{name}_vs_serial"] = seen[name] == seen["serial"]
    result["target"] = "serial / parallel >= 1.7 with identical metrics"
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
