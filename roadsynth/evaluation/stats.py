"""A/B statistics: is the difference between two arms bigger than the noise?

Two sources of noise matter: which test images you happened to have, and which training seed you
happened to use.
- `paired_bootstrap_diff` resamples test images (with replacement) and scores both arms on the SAME
  sample, so image difficulty cancels out of the difference; percentile interval.
- `seed_bootstrap_diff` compares per-seed numbers with a Welch t-interval (see there for why not a
  bootstrap at 3 seeds).
- `paired_bootstrap` is the composition the experiment uses: seed-averaged COCO AP of two arms under a
  paired image bootstrap, from `PerImageEval`s (per-image COCO matching, evaluation/coco_metrics.py).
- `combined_verdict` claims a change only when both intervals agree.
Numpy only (scipy for one t quantile); nothing here knows about COCO files or detectors.
"""

from __future__ import annotations

import math
from typing import Callable, Protocol, Sequence

import numpy as np

class _WeightedAP(Protocol):
    image_ids: list[int]

    def ap(self, weights: np.ndarray | None = None, category_ids: Sequence[int] | None = None) -> dict[str, float]: ...


def paired_bootstrap_diff(metric_fn: Callable[[np.ndarray], float], image_ids: Sequence[int], n_boot: int = 1000,
                          seed: int = 0, alpha: float = 0.05) -> tuple[float, float, float]:
    """(difference, ci_low, ci_high): `metric_fn(sample)` returns metric(arm b) - metric(arm a) on a sample of
    image ids (with repeats); the difference is on all images, the CI the percentile interval over
    `n_boot` resamples. Resamples where the metric is undefined (NaN, e.g. no ground truth drawn) are
    dropped; the CI is NaN if fewer than half remain.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"`alpha` must be in (0, 1), but got {alpha}")
    if n_boot < 1:
        raise ValueError(f"`n_boot` must be >= 1, but got {n_boot}")
    ids = np.asarray(image_ids)
    if ids.size == 0:
        raise ValueError("`image_ids` must not be empty")
    rng = np.random.default_rng(seed)
    point = float(metric_fn(ids))
    boots = np.array([metric_fn(ids[rng.integers(0, ids.size, ids.size)]) for _ in range(n_boot)], float)
    boots = boots[np.isfinite(boots)]
    if boots.size < n_boot / 2:
        return point, math.nan, math.nan
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return point, float(lo), float(hi)


def paired_bootstrap(arm_a: Sequence[_WeightedAP], arm_b: Sequence[_WeightedAP], *, n_boot: int = 500,
                     seed: int = 0, metric: str = "mAP50_95", alpha: float = 0.05,
                     category_ids: Sequence[int] | None = None) -> dict[str, float | int | str]:
    """Difference (b - a) of seed-averaged `metric` with a percentile CI over resampled test images.

    Every run of both arms must have been evaluated on the same test images (same order). With
    `category_ids` the metric is computed over those classes only (one id: that class's AP).
    """
    n_img = len(arm_a[0].image_ids)
    if any(e.image_ids != arm_a[0].image_ids for e in [*arm_a, *arm_b]):
        raise ValueError("all runs must be evaluated on the same test images in the same order")

    def diff(sample: np.ndarray) -> float:
        weights = None if sample.size == n_img and np.array_equal(sample, np.arange(n_img)) else \
            np.bincount(sample, minlength=n_img).astype(float)
        a = nan_mean([e.ap(weights, category_ids)[metric] for e in arm_a])
        b = nan_mean([e.ap(weights, category_ids)[metric] for e in arm_b])
        return float(b - a)

    point, lo, hi = paired_bootstrap_diff(diff, np.arange(n_img), n_boot=n_boot, seed=seed, alpha=alpha)
    return {"difference": point, "ci_low": lo, "ci_high": hi, "n_boot": n_boot, "alpha": alpha,
            "verdict": verdict(lo, hi)}


def nan_mean(values: Sequence[float]) -> float:
    """Mean of the finite values; NaN when there are none. A resample without any object of a rare class has
    an undefined AP in every run: expected (the bootstrap drops it), so numpy's warning is not printed."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def seed_bootstrap_diff(a_values: Sequence[float], b_values: Sequence[float], alpha: float = 0.05,
                        paired: bool = False) -> tuple[float, float, float]:
    """(mean(b) - mean(a), ci_low, ci_high) over per-seed results, from a Student t-interval.

    Why not a bootstrap: with the usual 3 seeds per arm a resample has at most 10 distinct values, and
    the percentile interval is systematically too narrow (it ignores the t tails and shrinks the variance
    by (n-1)/n). The t-interval is the honest small-n choice. Unpaired (Welch) by default: the arms
    train on different data, so "seed 1 of arm a" and "seed 1 of arm b" share little beyond the
    initial weights; `paired=True` uses per-seed differences (requires equal lengths, same seeds).
    With fewer than 2 values in an arm the CI is NaN (no spread can be estimated).
    """
    from scipy.stats import t as student_t

    a = np.asarray([v for v in a_values if np.isfinite(v)], float)
    b = np.asarray([v for v in b_values if np.isfinite(v)], float)
    if a.size == 0 or b.size == 0:
        return math.nan, math.nan, math.nan
    diff = float(b.mean() - a.mean())
    if paired:
        if len(a_values) != len(b_values) or a.size != len(a_values) or b.size != len(b_values):
            raise ValueError(f"paired seeds need equal-length finite lists, but got {len(a_values)} and {len(b_values)}")
        d = b - a
        if d.size < 2:
            return diff, math.nan, math.nan
        se, df = float(d.std(ddof=1) / math.sqrt(d.size)), d.size - 1
    else:
        if a.size < 2 or b.size < 2:
            return diff, math.nan, math.nan
        va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
        se = float(math.sqrt(va + vb))
        # Welch-Satterthwaite degrees of freedom
        df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1)) if se > 0 else a.size + b.size - 2
    half = float(student_t.ppf(1 - alpha / 2, df)) * se
    return diff, diff - half, diff + half


def verdict(ci_low: float, ci_high: float) -> str:
    """"improves" / "worse" only when the whole CI is on one side of 0; an undefined CI never claims a change."""
    if not (np.isfinite(ci_low) and np.isfinite(ci_high)):
        return "no significant change"
    if ci_low > 0:
        return "improves"
    if ci_high < 0:
        return "worse"
    return "no significant change"


def combined_verdict(image_ci: tuple[float, float], seed_ci: tuple[float, float]) -> tuple[str, str]:
    """(verdict, reason) when both sources of noise must agree before a change is claimed.

    The paired image bootstrap of the seed-averaged mAP only sees test-set noise: two arms whose seeds
    scatter widely can still get a narrow image interval. So "improves" / "worse" needs the image CI and
    the per-seed interval (`seed_bootstrap_diff`) on the same side of 0; with one seed per arm the
    training noise is unmeasured and no change is claimed.
    """
    image, seed = verdict(*image_ci), verdict(*seed_ci)
    if not all(np.isfinite(seed_ci)):
        return "no significant change", "one seed per arm, so the training noise is not measured; add seeds"
    if image == seed:
        reason = {"improves": "both the test-image and the per-seed intervals lie above 0",
                  "worse": "both the test-image and the per-seed intervals lie below 0",
                  "no significant change": "both intervals include 0"}[image]
        return image, reason
    if seed == "no significant change":
        return "no significant change", "the test-image interval excludes 0 but the per-seed one does not; add seeds"
    return "no significant change", "the per-seed interval excludes 0 but the test-image one does not; use more test images"


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (ddof=1) of the finite values; std 0 for one value, both NaN for none."""
    v = np.asarray([x for x in values if np.isfinite(x)], float)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def suggest_budget(per_class_ap: dict[str, float | None], train_counts: dict[str, int], *,
                   objects_per_unit_gap: int = 200, cap: int = 2000) -> dict[str, int]:
    """How many objects to generate per class next run (a heuristic, stated as such in the report).

    The gap of a class is its AP shortfall relative to the best-detected class of the real arm; the
    suggestion grows with the gap and with rarity (fewer real training instances than the median class):
    n = objects_per_unit_gap * gap / best * median_count / max(count, 1), capped.
    """
    aps = {c: ap for c, ap in per_class_ap.items() if ap is not None and np.isfinite(ap)}
    if not aps:
        return {}
    best = max(aps.values())
    median = float(np.median([max(v, 1) for v in train_counts.values()])) if train_counts else 1.0
    out = {}
    for c, ap in aps.items():
        gap = (best - ap) / best if best > 0 else 1.0
        rarity = median / max(train_counts.get(c, 0), 1)
        out[c] = int(min(cap, round(objects_per_unit_gap * gap * rarity)))
    return out
