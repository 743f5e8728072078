"""faster-coco-eval vs pycocotools on the same synthetic data: identical numbers? how much faster?
Also the cost of the experiment's image bootstrap (per-image matching once, then re-weighted AP), beside the
same resamples scored straight from COCO's definition (every detection's cumulative counts), and whether the
two agree exactly.

    python benchmarks/coco_eval_speed.py [--sizes 500 5000] [--out results.json]   # prints JSON
    python benchmarks/coco_eval_speed.py --experiment runs/quickstart   # the bootstrap on an experiment's runs

Timings are best of `--repeat` runs of the whole `evaluate_detections` call (build GT, loadRes,
evaluate, accumulate, summarize).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from roadsynth.datasets.io import atomic_write_json  # noqa: E402
from roadsynth.evaluation.coco_metrics import PerImageEval, evaluate_detections  # noqa: E402
from tests.unit.test_evaluation_coco_metrics import direct_ap, synthetic  # noqa: E402


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def resamples(n: int, n_boot: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [np.bincount(rng.integers(0, n, n), minlength=n).astype(float) for _ in range(n_boot)]


def both_ways(ev: PerImageEval, samples: list[np.ndarray]) -> tuple[float, float, bool]:
    """(seconds of `ev.ap`, seconds of the direct definition, identical?) over the same resamples."""
    t = time.perf_counter()
    fast = [ev.ap(w) for w in samples]
    t_fast = time.perf_counter() - t
    t = time.perf_counter()
    direct = [direct_ap(ev, w) for w in samples]
    return t_fast, time.perf_counter() - t, fast == direct


def run(n: int, repeat: int, n_boot: int) -> dict:
    gt, dets = synthetic(n, 0, 0.5)
    fast = evaluate_detections(gt, dets, "faster")
    ref = evaluate_detections(gt, dets, "pycocotools")
    stat_diff = max(abs(fast.stats[k] - ref.stats[k]) for k in fast.stats)
    class_diff = max(abs(fast.per_class[c][k] - ref.per_class[c][k]) for c in fast.per_class for k in ("AP50_95", "AP50"))
    t_ref = best_of(lambda: evaluate_detections(gt, dets, "pycocotools"), repeat)
    t_fast = best_of(lambda: evaluate_detections(gt, dets, "faster"), repeat)

    t = time.perf_counter()
    per_image = PerImageEval(gt, dets)
    t_build = time.perf_counter() - t
    t_boot, t_direct, identical = both_ways(per_image, resamples(n, n_boot))
    t_boot, t_direct = t_boot / n_boot, t_direct / n_boot
    return {"images": n, "annotations": len(gt.annotations), "detections": len(dets),
            "max_abs_stat_diff": stat_diff, "max_abs_per_class_ap_diff": class_diff,
            "pycocotools_s": round(t_ref, 3), "faster_coco_eval_s": round(t_fast, 3),
            "speedup": round(t_ref / t_fast, 2), "mAP50_95": round(fast.stats["mAP50_95"], 4),
            "per_image_eval_build_s": round(t_build, 3), "bootstrap_resample_ms": round(1000 * t_boot, 2),
            "bootstrap_resample_direct_ms": round(1000 * t_direct, 2),
            "bootstrap_speedup": round(t_direct / t_boot, 2), "bootstrap_identical": identical,
            "per_image_ap_minus_cocoeval": abs(per_image.ap()["mAP50_95"] - ref.stats["mAP50_95"])}


def experiment_bootstrap(folder: Path, n_boot: int) -> dict:
    """The report's workload: every run's test predictions, AP under the same image resamples, both ways."""
    from roadsynth.experiment import load_split

    test = load_split(folder / "splits" / "test.json").dataset
    n = len(test.images)
    samples = resamples(n, n_boot)
    runs, t_fast, t_direct, identical = [], 0.0, 0.0, True
    for pred in sorted(folder.glob("runs/*/predictions.json")):
        ev = PerImageEval(test, json.loads(pred.read_text()))
        fast, direct, same = both_ways(ev, samples)
        t_fast, t_direct, identical = t_fast + fast, t_direct + direct, identical and same
        runs.append({"run": pred.parent.name, "detections": sum(ce.scores.size for ce in ev.categories.values())})
    return {"experiment": str(folder), "test_images": n, "runs": runs, "resamples": n_boot,
            "ap_calls": n_boot * len(runs), "bootstrap_resample_ms": round(1000 * t_fast / (n_boot * len(runs)), 2),
            "bootstrap_resample_direct_ms": round(1000 * t_direct / (n_boot * len(runs)), 2),
            "bootstrap_speedup": round(t_direct / t_fast, 2), "bootstrap_identical": identical}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--n-boot", type=int, default=50, help="resamples timed for the bootstrap cost")
    parser.add_argument("--experiment", type=Path, help="an experiment folder: time its runs' bootstrap instead")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    if args.experiment:
        out = experiment_bootstrap(args.experiment, args.n_boot)
    else:
        out = [run(n, args.repeat, args.n_boot) for n in args.sizes]
    print(json.dumps(out, indent=2))
    if args.out:
        atomic_write_json(args.out, out, indent=2)


if __name__ == "__main__":
    main()
