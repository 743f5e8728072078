"""Arm-vs-arm comparisons: overall and per target class, each with both intervals and its detectable size.

Every comparison entry (one per pair of arms, scope and metric) carries
- `difference`: seed-averaged metric of `arm` minus `baseline`, on all test images;
- `ci_low`/`ci_high`: paired bootstrap over test images (test-set noise);
- `seed_ci_low`/`seed_ci_high`: Welch t-interval over the per-seed metrics (training noise; null with
  one seed per arm);
- `verdict`: a change is claimed only when both intervals lie on the same side of 0;
- `mdd`: the minimum detectable difference, the half-width of the wider interval (null when an interval
  cannot be estimated): differences smaller than this cannot be told from noise by this run;
- `class`: the class name for per-class entries, null for the overall (mean over classes) ones.
All values are in [0, 1] AP units.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from roadsynth.evaluation.stats import combined_verdict, paired_bootstrap, seed_bootstrap_diff

# metric name in the report -> key of PerImageEval.ap()
OVERALL = {"mAP50_95": "mAP50_95", "mAP50": "mAP50"}
PER_CLASS = {"AP50": "mAP50", "AP50_95": "mAP50_95"}


def arm_pairs(arms: Sequence[str]) -> list[tuple[str, str]]:
    """(arm, baseline) pairs worth reporting: every arm against `real`; at each dose, geometry against random
    placement (does context matter?) and against the cut-outs' source photos (is pasting better than adding
    the photos?); generated data against the longer-trained real control."""
    pairs = [(a, "real") for a in arms if a != "real"]
    for arm in arms:
        method, at, dose = arm.partition("@")
        if method != "real+generated":
            continue
        for base in ("real+random", "real+sources") + (() if at else ("real-more-epochs",)):
            b = f"{base}@{dose}" if at and base != "real-more-epochs" else base
            if b in arms:
                pairs.append((arm, b))
    return pairs


class _KeptAP:
    """A per-image evaluation whose `ap()` results are kept. Every comparison draws the same resamples (one
    bootstrap seed), and `ap()` returns all metrics at once, so an arm's AP on a resample is computed once
    instead of once per comparison and metric (12 comparisons of 3 arms: 4x fewer COCO accumulations)."""

    def __init__(self, ev: Any):
        self.ev, self.image_ids, self._kept = ev, ev.image_ids, {}

    def ap(self, weights: np.ndarray | None = None, category_ids: Sequence[int] | None = None) -> dict[str, float]:
        key = (None if weights is None else weights.tobytes(), None if category_ids is None else tuple(category_ids))
        if key not in self._kept:
            self._kept[key] = self.ev.ap(weights, category_ids)
        return self._kept[key]

    def __getattr__(self, name: str) -> Any:  # everything else (pr_curve, ...) is the evaluation's own
        return getattr(self.ev, name)


def compare(evals: dict[str, list], pairs: Sequence[tuple[str, str]], targets: Sequence[tuple[str, int]], *,
            n_boot: int = 500, seed: int = 0) -> list[dict[str, Any]]:
    """All comparison entries. `evals[arm]` holds one `PerImageEval` per seed (same test images);
    `targets` are (class name, test category id)."""
    evals = {arm: [e if isinstance(e, _KeptAP) else _KeptAP(e) for e in runs] for arm, runs in evals.items()}
    out = []
    for arm, base in pairs:
        if arm not in evals or base not in evals:
            continue
        scopes = [(None, None, OVERALL)] + [(name, [cid], PER_CLASS) for name, cid in targets]
        for name, cats, metrics in scopes:
            for label, key in metrics.items():
                out.append(_entry(evals[base], evals[arm], arm, base, name, cats, label, key, n_boot, seed))
    return out


def _entry(ev_a: list, ev_b: list, arm: str, base: str, cls: str | None, cats: list[int] | None, label: str,
           key: str, n_boot: int, seed: int) -> dict[str, Any]:
    c = {"arm": arm, "baseline": base, "class": cls, "metric": label, "seeds": len(ev_b),
         **paired_bootstrap(ev_a, ev_b, n_boot=max(n_boot, 1), seed=seed, metric=key, category_ids=cats)}
    per_seed_a = [e.ap(None, cats)[key] for e in ev_a]
    per_seed_b = [e.ap(None, cats)[key] for e in ev_b]
    _, lo, hi = seed_bootstrap_diff(per_seed_a, per_seed_b)
    c["image_verdict"] = c["verdict"]
    c["verdict"], c["verdict_reason"] = combined_verdict((c["ci_low"], c["ci_high"]), (lo, hi))
    seed_ok = math.isfinite(lo) and math.isfinite(hi)
    c["seed_ci_low"], c["seed_ci_high"] = (lo, hi) if seed_ok else (None, None)
    c["per_seed"] = {base: per_seed_a, arm: per_seed_b}
    c["mdd"] = minimum_detectable_difference((c["ci_low"], c["ci_high"]), (lo, hi))
    return c


def minimum_detectable_difference(image_ci: tuple[float, float], seed_ci: tuple[float, float]) -> float | None:
    """Half-width of the wider of the two 95 % intervals; None when either cannot be estimated."""
    widths = [hi - lo for lo, hi in (image_ci, seed_ci)]
    if not all(np.isfinite(widths)):
        return None
    return float(max(widths) / 2)


def headline(comparisons: Sequence[dict[str, Any]], targets: Sequence[str]) -> dict[str, Any] | None:
    """The comparison the report leads with: the first target class's AP50, generated (its largest dose) vs
    real (else the first arm vs real); overall mAP50 when there is no target class."""
    def pick(cls: str | None, metric: str) -> dict[str, Any] | None:
        cands = [c for c in comparisons if c["class"] == cls and c["metric"] == metric and c["baseline"] == "real"]
        gen = [c for c in cands if c["arm"].partition("@")[0] == "real+generated"]  # its largest dose
        return max(gen, key=lambda c: int(c["arm"].partition("@")[2] or 0)) if gen else (cands[0] if cands else None)

    for name in targets:
        if (c := pick(name, "AP50")) is not None:
            return c
    return pick(None, "mAP50")
