"""Dose-response: a class's AP against the number of generated images, and the trend of that curve.

One dose cannot resolve the 1-3 AP points copy-paste is known to give; a curve pools every dose into one
slope, whose interval is much narrower than any single comparison's.

- `curve_rows`: one row per class, metric, method and dose: the mean, std and number of seeds (dose 0 is
  the `real` arm, the start of every method's line).
- `trend`: the least-squares slope of AP against log2(dose) over a method's positive doses, in AP per
  doubling, with two 95 % intervals, as for a comparison (evaluation/comparisons.py):
  - test images: a paired bootstrap; each resample of the test images scores every dose of the method,
    and the slope is fitted to the seed-averaged APs;
  - trainings: the ordinary least-squares interval over every (dose, seed) training (t with n - 2 degrees
    of freedom). Each training is one draw of the training noise; a seed's shared share across doses
    only widens this interval (it stays in the residuals), so it errs on the safe side.
  `mdd` is the half-width of the wider one; a verdict needs both to exclude 0 (stats.combined_verdict).
- `measured_budget`: the smallest dose whose mean AP lies within the seed interval of the best dose.
Numpy and scipy only; AP values in [0, 1].
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from roadsynth.evaluation.stats import combined_verdict, nan_mean, paired_bootstrap_diff

METRICS = {"AP50": "mAP50", "AP50_95": "mAP50_95"}  # per-class metric in the report -> PerImageEval.ap() key


def slope(doses: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of `values` against log2(`doses`): the change per doubling."""
    x, y = np.log2(np.asarray(doses, float)), np.asarray(values, float)
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 2 or np.ptp(x) == 0:
        return math.nan
    return float(np.polyfit(x, y, 1)[0])


def slope_interval(doses: Sequence[float], values: Sequence[float], alpha: float = 0.05) -> tuple[float, float, float]:
    """(slope, low, high): the OLS slope of `values` on log2(`doses`) (repeated doses: several seeds) with its
    t-interval; NaN bounds with fewer than 3 finite points or no spread in dose."""
    from scipy.stats import t as student_t

    x, y = np.log2(np.asarray(doses, float)), np.asarray(values, float)
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 2 or np.ptp(x) == 0:
        return math.nan, math.nan, math.nan
    b = float(np.polyfit(x, y, 1)[0])
    if x.size < 3:
        return b, math.nan, math.nan
    resid = y - (y.mean() + b * (x - x.mean()))
    se = math.sqrt(float(resid @ resid) / (x.size - 2) / float(((x - x.mean()) ** 2).sum()))
    half = float(student_t.ppf(1 - alpha / 2, x.size - 2)) * se
    return b, b - half, b + half


def method_arms(arms: Sequence[str]) -> dict[str, dict[int, str]]:
    """{method: {dose: arm}} for the dosed arms (`real+generated@32`), each method starting at the `real` arm."""
    from roadsynth.arms import parse_arm

    out: dict[str, dict[int, str]] = {}
    for arm in arms:
        method, dose = parse_arm(arm)
        if "@" in arm and dose is not None:
            out.setdefault(method, {0: "real"})[dose] = arm
    return {m: dict(sorted(d.items())) for m, d in out.items() if len(d) > 2 and "real" in arms}


def curve_rows(evals: dict[str, list], arms: Sequence[str], targets: Sequence[tuple[str, int]],
               alpha: float = 0.05) -> list[dict[str, Any]]:
    """Per target class, metric, method and dose: mean, std, n seeds and the seed t-interval of the mean."""
    from scipy.stats import t as student_t

    rows = []
    for method, by_dose in method_arms([a for a in arms if a in evals]).items():
        for name, cid in targets:
            for label, key in METRICS.items():
                for dose, arm in by_dose.items():
                    v = np.array([e.ap(None, [cid])[key] for e in evals[arm]], float)
                    v = v[np.isfinite(v)]
                    mean = float(v.mean()) if v.size else math.nan
                    std = float(v.std(ddof=1)) if v.size > 1 else math.nan
                    half = float(student_t.ppf(1 - alpha / 2, v.size - 1)) * std / math.sqrt(v.size) \
                        if v.size > 1 else math.nan
                    rows.append({"class": name, "metric": label, "method": method, "dose": dose, "arm": arm,
                                 "mean": mean, "std": std, "n_seeds": int(v.size),
                                 "seed_ci_low": mean - half, "seed_ci_high": mean + half})
    return rows


def trends(evals: dict[str, list], arms: Sequence[str], targets: Sequence[tuple[str, int]], *, n_boot: int = 500,
           seed: int = 0) -> list[dict[str, Any]]:
    """The slope per doubling of each target class's AP50 and AP50-95, per method, with both intervals.

    `evals[arm]` are per-seed evaluations on the same test images; wrapped in comparisons' `_KeptAP`, the
    resamples (same bootstrap seed) are the comparisons' own, so their APs are computed once.
    """
    out = []
    for method, by_dose in method_arms([a for a in arms if a in evals]).items():
        doses = [d for d in by_dose if d > 0]
        runs = [evals[by_dose[d]] for d in doses]
        n_img = len(runs[0][0].image_ids)
        for name, cid in targets:
            for label, key in METRICS.items():
                def fit(sample: np.ndarray) -> float:
                    w = None if sample.size == n_img and np.array_equal(sample, np.arange(n_img)) else \
                        np.bincount(sample, minlength=n_img).astype(float)
                    return slope(doses, [nan_mean([e.ap(w, [cid])[key] for e in rs]) for rs in runs])

                b, lo, hi = paired_bootstrap_diff(fit, np.arange(n_img), n_boot=max(n_boot, 1), seed=seed)
                xs = [d for d, rs in zip(doses, runs) for _ in rs]
                ys = [e.ap(None, [cid])[key] for rs in runs for e in rs]
                _, slo, shi = slope_interval(xs, ys)
                verdict, reason = combined_verdict((lo, hi), (slo, shi))
                widths = [h - l for l, h in ((lo, hi), (slo, shi))]
                out.append({"class": name, "metric": label, "method": method, "doses": doses,
                            "slope_per_doubling": b, "ci_low": lo, "ci_high": hi,
                            "seed_ci_low": slo if math.isfinite(slo) else None,
                            "seed_ci_high": shi if math.isfinite(shi) else None,
                            "mdd": float(max(widths) / 2) if all(np.isfinite(widths)) else None,
                            "verdict": {"improves": "rises", "worse": "falls"}.get(verdict, "no significant trend"),
                            "verdict_reason": reason, "trainings": len(xs), "n_boot": n_boot})
    return out


def lead_trend(trend_rows: Sequence[dict[str, Any]], targets: Sequence[str]) -> dict[str, Any] | None:
    """The trend the report leads with: the first target class's AP50, geometry placement's (else the first)."""
    for name in targets:
        rows = [t for t in trend_rows if t["class"] == name and t["metric"] == "AP50"]
        if rows:
            return next((t for t in rows if t["method"] == "real+generated"), rows[0])
    return None


def measured_budget(curves: Sequence[dict[str, Any]], trend_rows: Sequence[dict[str, Any]], cls: str,
                    method: str = "real+generated", metric: str = "AP50") -> dict[str, Any] | None:
    """The smallest dose whose mean AP lies within the seed interval of the best dose, read off the curve;
    `still_rising` when the best dose is the largest one and the trend rises (more may help)."""
    rows = [r for r in curves if r["class"] == cls and r["method"] == method and r["metric"] == metric
            and math.isfinite(r["mean"])]
    if not rows:
        return None
    best = max(rows, key=lambda r: r["mean"])
    floor = best["seed_ci_low"] if math.isfinite(best["seed_ci_low"]) else best["mean"]
    pick = min((r for r in rows if r["mean"] >= floor), key=lambda r: r["dose"])
    tr = next((t for t in trend_rows if t["class"] == cls and t["method"] == method and t["metric"] == metric), None)
    rising = best["dose"] == max(r["dose"] for r in rows) and tr is not None and tr["verdict"] == "rises"
    return {"class": cls, "method": method, "metric": metric, "dose": pick["dose"], "best_dose": best["dose"],
            "best_mean": best["mean"], "best_seed_ci_low": best["seed_ci_low"], "still_rising": rising,
            "rule": "the smallest dose whose mean is within the best dose's 95 % seed interval"}


def markdown(trend_rows: Sequence[dict[str, Any]], curves: Sequence[dict[str, Any]],
             budget: dict[str, Any] | None) -> list[str]:
    """The report's trend lines and curve table (AP x100)."""
    lines = []
    for t in trend_rows:
        seed = "n/a" if t["seed_ci_low"] is None else f"[{t['seed_ci_low'] * 100:+.2f}, {t['seed_ci_high'] * 100:+.2f}]"
        image = "n/a" if not math.isfinite(t["ci_low"]) else f"[{t['ci_low'] * 100:+.2f}, {t['ci_high'] * 100:+.2f}]"
        mdd = "" if t["mdd"] is None else f", detectable ≥ {t['mdd'] * 100:.1f} per doubling"
        lines.append(f"- **{t['method']}**, {t['class']} {t['metric']}: {t['slope_per_doubling'] * 100:+.2f} points "
                     f"per doubling of the generated images (doses {t['doses']}), 95 % CI over test images {image}, "
                     f"over trainings {seed}{mdd} → **{t['verdict']}** ({t['verdict_reason']}).")
    shown = [r for r in curves if r["metric"] == "AP50"]
    if shown:
        doses = sorted({r["dose"] for r in shown})
        keys = list(dict.fromkeys((r["class"], r["method"]) for r in shown))
        lines += ["", "| class | method | " + " | ".join(f"dose {d}" for d in doses) + " |",
                  "|---|---|" + "---:|" * len(doses)]
        for cls, method in keys:
            cell = {r["dose"]: r for r in shown if r["class"] == cls and r["method"] == method}
            lines.append(f"| {cls} | {method} | " + " | ".join(
                f"{cell[d]['mean'] * 100:.2f} ± {cell[d]['std'] * 100:.2f}" if d in cell and math.isfinite(
                    cell[d]["std"]) else (f"{cell[d]['mean'] * 100:.2f}" if d in cell else "") for d in doses) + " |")
        lines += ["", "AP50 x100, mean ± std over seeds; dose = generated images added to the real train split "
                  "(dose 0 is the `real` arm). The slope is fitted to log2(dose) over the positive doses."]
    if budget:
        head = f"**Measured budget** ({budget['class']} {budget['metric']}, {budget['method']}): "
        if budget["dose"] == 0:
            lines += ["", head + "none of the doses measured is better than the real data beyond the seed noise "
                      f"(the real arm's mean lies within the 95 % seed interval of the best dose, {budget['best_dose']})."]
        else:
            lines += ["", head + f"{budget['dose']} generated images ({budget['rule']}; best dose {budget['best_dose']})"
                      + (". The curve is still rising at the largest dose: larger doses may help more." if
                         budget["still_rising"] else ".")]
    return lines
