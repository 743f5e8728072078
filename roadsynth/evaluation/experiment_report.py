"""Assemble an experiment's report from its saved runs: comparisons, leakage, slices, plots, examples.

The experiment (roadsynth/experiment.py) gathers what is on disk into `ReportInputs`; everything a
person reads is computed and written here (metrics.json, runs.csv, report.md, report.html, plots/).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from roadsynth.datasets.records import Dataset, DatasetSplit


@dataclass(frozen=True)
class ReportInputs:
    title: str
    rows: list[dict[str, Any]]  # one per finished arm x seed (runs/*/metrics.json)
    predictions: dict[tuple[str, int], list[dict]]  # (arm, seed) -> COCO results on the test split
    train: DatasetSplit  # real train split (after thinning)
    test: DatasetSplit
    arms: list[str]
    targets: list[str]
    generated: dict[str, DatasetSplit] = field(default_factory=dict)  # folder name -> generated dataset
    manifests: dict[str, dict] = field(default_factory=dict)  # folder name -> its manifest.json
    starter: dict | None = None  # the starting weights' manifest (None: no weights, or weights without one)
    starter_weights: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    slice_by: list[str] = field(default_factory=list)
    n_boot: int = 500


def build_report(inputs: ReportInputs, out_dir: Path) -> dict[str, Any]:
    from roadsynth.evaluation import plots
    from roadsynth.evaluation.coco_metrics import PerImageEval
    from roadsynth.evaluation import curves as dose
    from roadsynth.evaluation.comparisons import _KeptAP, arm_pairs, compare, headline
    from roadsynth.evaluation.report import aggregate_runs, write_report
    from roadsynth.datasets.split import count_per_category
    from roadsynth.evaluation.stats import suggest_budget

    test = inputs.test.dataset
    evals: dict[str, list] = {}
    for r in inputs.rows:
        # Kept: the comparisons and the trends draw the same resamples, so each AP is computed once.
        evals.setdefault(r["arm"], []).append(_KeptAP(PerImageEval(test, inputs.predictions[(r["arm"], r["seed"])])))
    test_ids = {c.name.lower(): c.id for c in test.categories}
    targets = [(name, test_ids[name.lower()]) for name in inputs.targets if name.lower() in test_ids]
    comparisons = compare(evals, arm_pairs([a for a in inputs.arms if a in evals]), targets, n_boot=inputs.n_boot)
    lead = headline(comparisons, inputs.targets)
    curve = dose.curve_rows(evals, inputs.arms, targets)
    trend_rows = dose.trends(evals, inputs.arms, targets, n_boot=inputs.n_boot)
    trend_lead = dose.lead_trend(trend_rows, [name for name, _ in targets])

    curves = {}
    for c in test.categories:
        per_arm = {arm: [q for e in ev if (q := e.pr_curve(c.id)) is not None] for arm, ev in evals.items()}
        if all(per_arm.values()):
            curves[c.name] = {arm: np.mean(qs, axis=0) for arm, qs in per_arm.items()}
    arms = aggregate_runs(inputs.rows)
    figures = {"ap_per_class": plots.ap_per_class(arms), "pr_curves": plots.pr_curves(curves)}
    shown = [c for c in comparisons if c["metric"] in ("AP50", "mAP50")]
    if shown:
        figures["comparisons"] = plots.bootstrap_ci(shown)
    if curve:
        figures = {"dose_curve": plots.dose_curves(curve, trend_rows), **figures}

    baseline = "real" if "real" in arms else next(iter(arms))
    real_ap = {c: m.get("AP50_95") for c, m in arms.get(baseline, {}).get("per_class", {}).items()}
    # A measured curve replaces the heuristic; without doses the heuristic stays, labelled as such.
    measured = dose.measured_budget(curve, trend_rows, targets[0][0]) if curve and targets else None
    budget = {} if curve else suggest_budget(real_ap, count_per_category(inputs.train.dataset))
    extras = {"headline": lead, "trend_headline": trend_lead, "curves": curve, "trends": trend_rows,
              "measured_budget": measured, "compute": compute_table(inputs.rows), "leakage": leakage(inputs),
              "starter": starter_summary(inputs), "budget": budget,
              "realism": {k: m["realism"] for k, m in inputs.manifests.items() if "realism" in m},
              "slices": slice_metrics(test, evals, inputs.slice_by)}
    examples = []
    for folder, gen in inputs.generated.items():
        examples += [(f"{folder}: {cap}", img) for cap, img in example_frames(gen, n=2)]
    return write_report(out_dir, inputs.rows, title=inputs.title, context=inputs.context, comparisons=comparisons,
                        figures=figures, examples=examples, extras=extras)


def compute_table(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per arm: epochs, optimiser steps, images seen (identical across seeds) and training time."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        a = out.setdefault(r["arm"], {k: r.get(k) for k in ("train_images", "epochs", "steps", "images_seen")}
                           | {"train_seconds": [], "reused": 0})
        a["train_seconds"].append(r.get("train_seconds"))
        a["reused"] += int(bool(r.get("reused")))
    for a in out.values():
        secs = [s for s in a["train_seconds"] if s is not None]
        a["train_seconds"] = float(np.mean(secs)) if secs else None
    return out


def leakage(inputs: ReportInputs) -> list[str]:
    """Test images found in any training arm, a generated frame's background or cut-out, or the starter."""
    from roadsynth.evaluation.leakage import manifest_leaks, near_duplicates, provenance_leaks

    test_paths = [Path(inputs.test.images_root) / im.file_name for im in inputs.test.dataset.images]
    train_paths = [Path(inputs.train.images_root) / im.file_name for im in inputs.train.dataset.images]
    gen_paths = [Path(g.images_root) / im.file_name for g in inputs.generated.values() for im in g.dataset.images]
    leaks = near_duplicates(test_paths, train_paths + gen_paths)
    for g in inputs.generated.values():
        leaks += provenance_leaks(test_paths, g.dataset)
    if inputs.starter is not None:
        leaks += manifest_leaks(test_paths, inputs.starter)
    return [str(x) for x in leaks]


def starter_summary(inputs: ReportInputs) -> str:
    if inputs.starter_weights is None:
        return "none: every arm trains from random initialisation"
    if inputs.starter is None:
        return (f"{inputs.starter_weights} (no manifest beside it: its training images cannot be checked against "
                "the test split)")
    s = inputs.starter
    return (f"{inputs.starter_weights} ({s.get('name')}: classes {s.get('classes')}, "
            f"{len(s.get('images', []))} training images checked against the test split by SHA-256 and pHash)")


def slice_metrics(test: Dataset, evals: dict[str, list], attributes: list[str]) -> list[dict]:
    """mAP per value of each image attribute (e.g. `condition`), seed-averaged, from the per-image evaluations."""
    from roadsynth.evaluation.stats import nan_mean

    out = []
    for attr in attributes:
        values = sorted({str(im.attributes[attr]) for im in test.images if attr in im.attributes})
        for v in values:
            w = np.array([1.0 if str(im.attributes.get(attr)) == v else 0.0 for im in test.images])
            row = {"attribute": attr, "value": v, "images": int(w.sum())}
            for arm, ev in evals.items():
                row[arm] = nan_mean([e.ap(w)["mAP50_95"] for e in ev])
            out.append(row)
    return out


def example_frames(generated: DatasetSplit, n: int = 4) -> list[tuple[str, bytes]]:
    """A few generated frames with their generated boxes drawn (red) next to the existing labels (white)."""
    from roadsynth.datasets.io import encode_image, load_image
    from roadsynth.evaluation.draw import draw_boxes

    ds = generated.dataset
    by_image = ds.annotations_by_image()
    picked = [im for im in ds.images if any(a.generated for a in by_image.get(im.id, []))][:n]
    names = {c.id: c.name for c in ds.categories}
    out = []
    for im in picked:
        rgb = draw_boxes(load_image(Path(generated.images_root) / im.file_name), by_image[im.id], names)
        out.append((f"{im.file_name}: generated from {im.attributes.get('background')}", encode_image(rgb, ".jpg", 88)))
    return out
