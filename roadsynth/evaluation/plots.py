"""Matplotlib figures for the report (PNG bytes, so the HTML can embed them); pyplot is never used."""

from __future__ import annotations

import io
from typing import Any

import numpy as np


def _subplots(*grid: int, figsize: tuple[float, float], **kw):
    """A figure detached from pyplot: no backend is chosen or switched (a user's notebook keeps its own),
    nothing is registered globally, and `savefig` renders with Agg."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*grid, **kw)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def ap_per_class(arms: dict[str, Any], metric: str = "AP50_95") -> bytes:
    classes = list(dict.fromkeys(c for a in arms.values() for c in a["per_class"]))
    x = np.arange(len(classes))
    width = 0.8 / max(len(arms), 1)
    fig, ax = _subplots(figsize=(max(5, 1.1 * len(classes)), 3.2))
    for k, (name, a) in enumerate(arms.items()):
        means = [(a["per_class"].get(c, {}).get(metric) or 0) * 100 for c in classes]
        stds = [(a["per_class"].get(c, {}).get(f"{metric}_std") or 0) * 100 for c in classes]
        ax.bar(x + (k - (len(arms) - 1) / 2) * width, means, width, yerr=stds, capsize=3, label=name)
    ax.set_xticks(x, classes, rotation=20)
    ax.set_ylabel(f"{metric.replace('_', '-')} (x100)")
    ax.set_title("AP per class on the real test split (mean ± std over seeds)")
    ax.legend(fontsize=8)
    return _png(fig)


def pr_curves(curves: dict[str, dict[str, np.ndarray]]) -> bytes:
    """`curves[class][arm]` = precision at 101 recall points (IoU 0.5, averaged over seeds)."""
    classes = list(curves)
    cols = min(len(classes), 3) or 1
    rows = int(np.ceil(len(classes) / cols)) or 1
    fig, axes = _subplots(rows, cols, figsize=(3.3 * cols, 2.6 * rows), squeeze=False)
    recall = np.linspace(0, 1, 101)
    for ax, c in zip(axes.ravel(), classes):
        for arm, q in curves[c].items():
            ax.plot(recall, q, label=arm)
        ax.set_title(c, fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall", fontsize=8)
        ax.set_ylabel("precision", fontsize=8)
    for ax in axes.ravel()[len(classes):]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7)
    fig.suptitle("Precision-recall at IoU 0.5", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def bootstrap_ci(comparisons: list[dict[str, Any]]) -> bytes:
    """Each arm's difference to the baseline with both 95 % intervals: over test images and over seeds."""
    fig, ax = _subplots(figsize=(5.5, 1.1 + 0.6 * len(comparisons)))
    for k, c in enumerate(comparisons):
        d, lo, hi = c["difference"] * 100, c["ci_low"] * 100, c["ci_high"] * 100
        ax.errorbar([d], [k + 0.12], xerr=[[d - lo], [hi - d]], fmt="o", capsize=4, color="C0",
                    label="test images (paired bootstrap)" if k == 0 else None)
        if c.get("seed_ci_low") is not None and c.get("seed_ci_high") is not None:
            slo, shi = c["seed_ci_low"] * 100, c["seed_ci_high"] * 100
            ax.errorbar([d], [k - 0.12], xerr=[[d - slo], [shi - d]], fmt="s", capsize=4, color="C1",
                        label="seeds (Welch t)" if k == 0 else None)
    ax.axvline(0, color="grey", lw=1, ls="--")
    ax.set_yticks(range(len(comparisons)), [f"{c['arm']} - {c['baseline']}" + (
        f" [{c['class'] or 'all'} {c['metric']}]" if "class" in c else "") for c in comparisons])
    ax.set_ylim(-0.6, len(comparisons) - 0.4)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    metrics = sorted({c["metric"] for c in comparisons})
    ax.set_xlabel(f"difference in {', '.join(metrics)} (x100), 95 % intervals")
    return _png(fig)


def dose_curves(curves: list[dict[str, Any]], trends: list[dict[str, Any]] = (), mark: int | None = None) -> bytes:
    """AP against dose (log2 axis; dose 0, the real arm, drawn one step left of the smallest dose), one line
    per method with its 95 % seed band, one panel per target class and metric; `mark`: a dose to point at."""
    classes = list(dict.fromkeys(r["class"] for r in curves))
    metrics = list(dict.fromkeys(r["metric"] for r in curves))
    panels = [(c, m) for c in classes for m in metrics]  # a row per class, a column per metric
    fig, axes = _subplots(len(classes), len(metrics), figsize=(4.2 * len(metrics), 3.0 * len(classes)),
                          squeeze=False)
    positive = sorted({r["dose"] for r in curves if r["dose"] > 0})
    def at(d: int) -> float:
        return float(np.log2(d)) if d > 0 else float(np.log2(positive[0])) - 1
    for ax, (cls, metric) in zip(axes.ravel(), panels):
        for k, method in enumerate(dict.fromkeys(r["method"] for r in curves)):
            rows = sorted((r for r in curves if (r["class"], r["metric"], r["method"]) == (cls, metric, method)),
                          key=lambda r: r["dose"])
            if not rows:
                continue
            x = [at(r["dose"]) for r in rows]
            t = next((t for t in trends if (t["class"], t["metric"], t["method"]) == (cls, metric, method)), None)
            label = method + (f" ({t['slope_per_doubling'] * 100:+.1f}/doubling, {t['verdict']})" if t else "")
            ax.plot(x, [r["mean"] * 100 for r in rows], "o-", color=f"C{k}", label=label)
            lo = [r["seed_ci_low"] * 100 for r in rows]
            hi = [r["seed_ci_high"] * 100 for r in rows]
            if all(np.isfinite(lo + hi)):
                ax.fill_between(x, lo, hi, color=f"C{k}", alpha=0.15)
        ticks = [0, *positive]
        if mark is not None:
            ax.axvline(at(mark), color="grey", lw=1, ls="--")
        ax.set_xticks([at(d) for d in ticks], ["0 (real)", *map(str, positive)], fontsize=8)
        ax.set_xlabel("generated images added (log2 scale)", fontsize=8)
        ax.set_ylabel(f"{cls} {metric.replace('_', '-')} (x100)", fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle("AP against the amount of generated data (mean over seeds, 95 % seed band)", fontsize=10)
    fig.tight_layout()
    return _png(fig)
