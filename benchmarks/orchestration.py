"""Prefect orchestration overhead vs a plain loop over the same images, and peak memory vs run size.

Targets (issue 7): overhead <= 10 % at 200 images; peak RSS at 2000 images <= 1.2x that at 200 (flat).
Each measurement runs in a fresh subprocess (peak RSS is per process). The flow numbers are for a warm
ephemeral Prefect server (a first flow run pays its start-up once, reported separately).

    python benchmarks/orchestration.py [--small 200] [--large 2000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "sample"

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    from pathlib import Path
    mode, cfg, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    from roadsynth.config import load_config
    if mode == "loop":
        from roadsynth.generate import generate_dataset
        t = time.perf_counter(); generate_dataset(load_config(cfg), out); dt = time.perf_counter() - t
        startup = 0.0
    else:
        from roadsynth.flows.generate import run_generate
        from roadsynth.flows._prefect import flow
        @flow
        def warm(): return 1
        t0 = time.perf_counter(); warm(); startup = time.perf_counter() - t0
        t = time.perf_counter(); run_generate(cfg, str(out)); dt = time.perf_counter() - t
    print(json.dumps({"seconds": dt, "startup_s": startup,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")


# light: 480x360 CamVid frames, 1 object (~7 ms of work per image, a worst case for fixed overhead);
# typical: 960x540 highway frames, 3 objects (closer to a real 1-2 MP dashcam run).
WORKLOADS = {
    "light": (f"{{name: camvid, format: label_maps, path: {DATA}/camvid/images, label_maps: {DATA}/camvid/road_labels, "
              "camera: {horizon_frac: 0.47, height_m: 1.3}}", "[1, 1]"),
    "typical": (f"{{name: udacity, format: folder, path: {DATA}/udacity_lanelines/images, "
                "camera: {horizon_frac: 0.6, height_m: 1.4}}", "[3, 3]"),
}


def config(tmp: Path, n: int, workers: int, workload: str = "light") -> Path:
    scene, per_image = WORKLOADS[workload]
    p = tmp / f"c{n}_{workers}_{workload}.yaml"
    p.write_text(f"""
name: bench
generate:
  n_images: {n}
  chunk_size: 25
  scenes: [{scene}]
  cutouts: [{{kind: msrc, path: {DATA}/cutouts/msrc_v2_animals, categories: [sheep, cow]}}]
  insert: {{categories: {{sheep: 1.0, cow: 1.0}}, objects_per_image: {per_image}}}
  placement: {{roadside_prob: 0.0}}
orchestration: {{task_runner: threads, workers: {workers}}}
""")
    return p


def child(mode: str, cfg: Path, out: Path) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, mode, str(cfg), str(out)], capture_output=True, text=True,
                       cwd=ROOT, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    if r.returncode:
        raise RuntimeError(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=200)
    ap.add_argument("--large", type=int, default=2000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        overhead = {}
        for w in WORKLOADS:
            loop = child("loop", config(tmp, args.small, 1, w), tmp / f"loop_{w}")
            flow1 = child("flow", config(tmp, args.small, 1, w), tmp / f"flow1_{w}")
            flow2 = child("flow", config(tmp, args.small, 2, w), tmp / f"flow2_{w}")
            overhead[w] = {"plain_loop_s": round(loop["seconds"], 2), "prefect_1_worker_s": round(flow1["seconds"], 2),
                           "overhead_1_worker": round(flow1["seconds"] / loop["seconds"] - 1, 3),
                           "prefect_2_workers_s": round(flow2["seconds"], 2),
                           "overhead_2_workers": round(flow2["seconds"] / loop["seconds"] - 1, 3),
                           "prefect_ephemeral_startup_s": round(flow1["startup_s"], 1)}
        small = child("flow", config(tmp, args.small, 1), tmp / "small")
        large = child("flow", config(tmp, args.large, 1), tmp / "large")
    print(json.dumps({
        "images": args.small, "overhead": overhead, "overhead_target": 0.10,
        "peak_rss_mb": {str(args.small): round(small["peak_rss_mb"]), str(args.large): round(large["peak_rss_mb"])},
        "rss_ratio": round(large["peak_rss_mb"] / small["peak_rss_mb"], 3), "rss_target": 1.2,
    }, indent=2))


if __name__ == "__main__":
    main()
