"""faster-coco-eval vs pycocotools on the same synthetic data: identical numbers? how much faster?

    python benchmarks/coco_eval_speed.py        # prints JSON
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from roadsynth.evaluation.coco_metrics import evaluate_detections  # noqa: E402
from tests.unit.test_evaluation_stats import synthetic  # noqa: E402


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    out = []
    for n in (500, 5000):
        gt, dets = synthetic(n, 0, 0.5)
        fast = evaluate_detections(gt, dets, "faster")
        ref = evaluate_detections(gt, dets, "pycocotools")
        diff = max(abs(fast.stats[k] - ref.stats[k]) for k in fast.stats)
        t_ref = best_of(lambda: evaluate_detections(gt, dets, "pycocotools"))
        t_fast = best_of(lambda: evaluate_detections(gt, dets, "faster"))
        out.append({"images": n, "annotations": len(gt.annotations), "detections": len(dets),
                    "max_abs_stat_diff": diff, "pycocotools_s": round(t_ref, 3), "faster_coco_eval_s": round(t_fast, 3),
                    "speedup": round(t_ref / t_fast, 2)})
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
