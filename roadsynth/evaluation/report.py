"""Experiment outputs a person reads: `metrics.json`, `runs.csv`, `report.md`.

Numbers are aggregated per arm over seeds (mean, sample std, n). The comparison section never claims
a gain that the spread does not support: a difference smaller than the seed-to-seed noise is
reported as such.
"""

from __future__ import annotations

import base64
import html
import math
import re
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from roadsynth.datasets.io import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
)
from roadsynth.evaluation.stats import mean_std

HEADLINE = ("mAP50_95", "mAP50", "mAP75", "AP_small", "AP_medium", "AP_large", "AR100")


def _mean_std(values: Sequence[float | None]) -> dict[str, float | None]:
    """`stats.mean_std` with None (absent) for no values, the form metrics.json and tables use."""
    mean, std = mean_std([x for x in values if x is not None])
    return {"mean": None if math.isnan(mean) else mean, "std": None if math.isnan(std) else std}


def aggregate_runs(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """{arm: {metric: mean, metric_std, per_class: {name: {...}}, seeds: [...]}} from per-run rows."""
    arms: dict[str, Any] = {}
    for arm in dict.fromkeys(r["arm"] for r in rows):
        runs = [r for r in rows if r["arm"] == arm]
        out: dict[str, Any] = {"seeds": [r["seed"] for r in runs], "train_images": runs[0]["train_images"]}
        for k in HEADLINE:
            s = _mean_std([r.get(k) for r in runs])
            out[k], out[f"{k}_std"] = s["mean"], s["std"]
        classes = dict.fromkeys(c for r in runs for c in r.get("per_class", {}))
        out["per_class"] = {}
        for c in classes:
            ap = _mean_std([r["per_class"][c].get("AP50_95") for r in runs if c in r.get("per_class", {})])
            ap50 = _mean_std([r["per_class"][c].get("AP50") for r in runs if c in r.get("per_class", {})])
            out["per_class"][c] = {"AP50_95": ap["mean"], "AP50_95_std": ap["std"], "AP50": ap50["mean"],
                                   "AP50_std": ap50["std"], "n_gt": runs[0]["per_class"][c].get("n_gt")}
        arms[arm] = out
    return arms


def _fmt(mean: float | None, std: float | None = None, scale: float = 100.0) -> str:
    if mean is None:
        return "n/a"
    return f"{mean * scale:.2f}" + (f" ± {std * scale:.2f}" if std is not None else "")


def write_report(out_dir: Path, rows: list[dict[str, Any]], *, title: str, context: dict[str, Any],
                 comparisons: list[dict[str, Any]], extras: dict[str, Any] | None = None,
                 figures: dict[str, bytes] | None = None, examples: list[tuple[str, bytes]] | None = None,
                 ) -> dict[str, Any]:
    """Write metrics.json, runs.csv, report.md, report.html and plots/*.png into `out_dir`."""
    arms = aggregate_runs(rows)
    metrics = {"title": title, "arms": arms, "comparisons": comparisons, "context": context, **(extras or {}),
               "runs": rows}
    atomic_write_json(out_dir / "metrics.json", _finite(metrics), indent=2)
    flat = [{k: v for k, v in r.items() if k != "per_class"} |
            {f"AP50_95[{c}]": m.get("AP50_95") for c, m in r.get("per_class", {}).items()} for r in rows]
    atomic_write_text(out_dir / "runs.csv", pd.DataFrame(flat).to_csv(index=False))
    figures = figures or {}
    for name, png in figures.items():
        atomic_write_bytes(out_dir / "plots" / f"{name}.png", png)
    for k, (_, png) in enumerate(examples or []):
        atomic_write_bytes(out_dir / "plots" / f"example_{k}.jpg", png)
    md = render_markdown(metrics, list(figures), len(examples or []))
    atomic_write_text(out_dir / "report.md", md)
    atomic_write_text(out_dir / "report.html", render_html(md, figures, examples or []))
    return metrics


def _finite(obj: Any) -> Any:
    """NaN is not JSON: absent values (a class without test objects) become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1) -> list[str]:
    """A markdown table; the first `left` columns are left-aligned, the rest right-aligned (numbers)."""
    align = "|" + "---|" * left + "---:|" * (len(headers) - left)
    return ["| " + " | ".join(headers) + " |", align] + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]


def render_markdown(metrics: dict[str, Any], figures: Sequence[str] = (), n_examples: int = 0) -> str:
    arms, ctx = metrics["arms"], metrics["context"]
    lines = [f"# {metrics['title']}", ""]
    lead, trend = metrics.get("headline"), metrics.get("trend_headline")
    if trend:
        from roadsynth.evaluation.curves import markdown as curve_markdown

        lines += [f"## Verdict: {trend['class']} {trend['metric']} against the amount of generated data", ""]
        lines += curve_markdown([trend], [], None) + [""]
        lines += [("This run can detect slopes of at least " f"{trend['mdd'] * 100:.1f} AP points per doubling "
                   "(the half-width of the wider of its two 95 % intervals)." if trend.get("mdd") is not None else
                   "This run cannot say how small a slope it could detect: one of its intervals is not estimable."),
                  "", "![dose curve](plots/dose_curve.png)" if "dose_curve" in figures else "",
                  "", f"At the largest dose: {_verdict_line(lead)[2:]}" if lead else "", ""]
    elif lead:
        lines += [f"## Verdict: {_scope(lead)}", "", _verdict_line(lead), "", _mdd_sentence(lead), ""]
    lines += [f"- **{k}**: {v}" for k, v in ctx.items()]
    if metrics.get("starter"):
        lines.append(f"- **starting weights**: {metrics['starter']}")
    lines += ["", "## Arms (COCO metrics on the real test split, ×100, mean ± std over seeds)", ""]
    lines += _table(["arm", "train images", "seeds", *HEADLINE],
                    [[name, a["train_images"], a["seeds"], *(_fmt(a[k], a[f"{k}_std"]) for k in HEADLINE)]
                     for name, a in arms.items()])
    classes = list(dict.fromkeys(c for a in arms.values() for c in a["per_class"]))
    lines += ["", "## Per class AP50-95 (×100)", ""]
    lines += _table(["class", "test objects", *arms], [
        [c, next((a["per_class"][c]["n_gt"] for a in arms.values() if c in a["per_class"]), None),
         *(_fmt(a["per_class"].get(c, {}).get("AP50_95"), a["per_class"].get(c, {}).get("AP50_95_std"))
           for a in arms.values())] for c in classes])
    if metrics.get("slices"):
        lines += ["", "## Slices (mAP50-95 x100 on test images with the attribute value)", ""]
        lines += _table(["attribute", "value", "images", *arms], [
            [r["attribute"], r["value"], r["images"], *(_fmt(r.get(a)) for a in arms)] for r in metrics["slices"]], 2)
    if metrics.get("compute"):
        lines += ["", "## Compute per arm (every seed alike)", ""]
        lines += _table(["arm", "train images", "epochs", "optimiser steps", "images seen", "train time (s, mean)",
                         "reused runs"], [
            [arm, c.get("train_images"), c.get("epochs"), c.get("steps"), c.get("images_seen"),
             "n/a" if c.get("train_seconds") is None else f"{c['train_seconds']:.0f}", c.get("reused", 0)]
            for arm, c in metrics["compute"].items()])
    if metrics.get("trends"):
        from roadsynth.evaluation.curves import markdown as curve_markdown

        lines += ["", "## Dose-response (AP against the number of generated images)", ""]
        lines += curve_markdown(metrics["trends"], metrics.get("curves", []), metrics.get("measured_budget"))
        lines += ["", "Two 95 % intervals for the slope: a paired bootstrap over test images (each resample scores "
                  "every dose) and the least-squares interval over all trainings (doses x seeds). A trend is "
                  "claimed only when both exclude 0."]
    lines += ["", "## Comparisons", ""]
    lines += [_verdict_line(comp) for comp in metrics["comparisons"]]
    lines += ["", "Two 95 % intervals for the difference: a paired bootstrap over test images of the seed-averaged "
              "mAP (test-set noise), and a Welch t-interval over the per-seed mAPs (training noise). A change is "
              "claimed only when both lie on the same side of 0; with few seeds and a short CPU training the "
              "per-seed interval is wide, and that is the honest answer."]
    if metrics.get("realism"):
        lines += ["", "## Realism audit (generated objects vs the real objects of the same frames; medians)", ""]
        lines += _table(["data", "frames", "objects", "n", "abs log luminance", "log sharpness", "log noise", "seam"], [
            [folder, scope, who, r.get("n", 0),
             *(_num(r.get(k)) for k in ("abs_log_luminance", "log_sharpness", "log_noise", "seam"))]
            for folder, audit in metrics["realism"].items() for scope in ("all", "dark") for who in ("inserted", "real")
            for r in [audit.get(scope, {}).get(who, {})]], 3)
        lines += ["", "Scores against the ring of background around each box (generators/realism.py): 0 means "
                  "the object matches its surroundings; real objects are the yardstick."]
        lines += [f"- {folder}, {scope} frames: log sharpness inserted - real {gap['median']:+.3f}, 95 % interval "
                  f"over {gap['frames']} frames [{gap['ci95'][0]:+.3f}, {gap['ci95'][1]:+.3f}]"
                  + (f"; per unit of brightness {pl['median']:+.3f} [{pl['ci95'][0]:+.3f}, {pl['ci95'][1]:+.3f}]"
                     if (pl := audit[scope].get("log_sharpness_per_luminance_gap")) else "")
                  for folder, audit in metrics["realism"].items() for scope in ("all", "dark")
                  if (gap := audit.get(scope, {}).get("log_sharpness_gap"))]
        lines += ["", "The sharpness score grows with an object's brightness against its ring; \"per unit of "
                  "brightness\" (log sharpness - log luminance) takes that out: where the two gaps disagree, the "
                  "objects differ from the real ones in brightness rather than in blur."]
    leaks = metrics.get("leakage")
    if leaks is not None:
        lines += ["", "## Leakage check", ""]
        lines.append("- no test image (or near-duplicate, or generated background / cut-out source) in any training "
                     "arm or in the starting weights' training images (when they come with a manifest)"
                     if not leaks else f"- **{len(leaks)} leaks found**:")
        lines += [f"  - {x}" for x in leaks[:20]]
    if metrics.get("budget"):
        lines += ["", "## Suggested generation budget for the next run (heuristic)", "",
                  "Objects per class, from each class's AP shortfall against the best class of the `real` arm and "
                  "its rarity in the real training data:", ""]
        lines += _table(["class", "suggested objects"], list(metrics["budget"].items()))
    if figures or n_examples:
        lines += ["", "## Plots", ""]
        lines += [f"![{f}](plots/{f}.png)" for f in figures]
        lines += [f"![example {k}](plots/example_{k}.jpg)" for k in range(n_examples)]
    lines.append("")
    return "\n".join(lines)


def render_html(md: str, figures: dict[str, bytes], examples: list[tuple[str, bytes]]) -> str:
    """Self-contained HTML: the markdown's tables and text, images embedded as data URIs."""
    body: list[str] = []
    placed: set[str] = set()
    in_table = False
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= set("-:"):
                continue
            tag = "th" if not in_table else "td"
            if not in_table:
                body.append("<table>")
                in_table = True
            body.append("<tr>" + "".join(f"<{tag}>{_inline(c)}</{tag}>" for c in cells) + "</tr>")
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("!["):  # a figure placed in the text is embedded there, the rest at the end
            name = Path(line[line.index("(") + 1:-1]).stem
            if name in figures and name not in placed:
                placed.add(name)
                body.append(_figure(name, figures[name]))
            continue
        if line.startswith("# "):
            body.append(f"<h1>{_inline(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{_inline(line[3:])}</h2>")
        elif line.lstrip().startswith("- "):
            body.append(f"<li>{_inline(line.lstrip()[2:])}</li>")
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
    if in_table:
        body.append("</table>")
    body += [_figure(name, png) for name, png in figures.items() if name not in placed]
    for caption, jpg in examples:
        body.append(f'<figure><img src="data:image/jpeg;base64,{base64.b64encode(jpg).decode()}">'
                    f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
             "td:first-child,th:first-child{text-align:left}img{max-width:100%}figcaption{font-size:90%;color:#555}")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>roadsynth report</title><style>{style}</style></head>" \
           f"<body>{''.join(body)}</body></html>\n"


def _figure(name: str, png: bytes) -> str:
    return f'<figure><img src="data:image/png;base64,{base64.b64encode(png).decode()}" alt="{name}"></figure>'


def _inline(text: str) -> str:
    text = html.escape(text)
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.2f}"


def _scope(c: dict[str, Any]) -> str:
    return f"{c['class']} {c['metric']}" if c.get("class") else f"overall {c['metric']}"


def _mdd_sentence(c: dict[str, Any]) -> str:
    if c.get("mdd") is None:
        return ("This run cannot say how small a difference it could detect: one of its intervals is not "
                "estimable (one seed per arm?).")
    return (f"This run can detect differences of at least {c['mdd'] * 100:.1f} AP points ({_scope(c)}, the "
            "half-width of the wider of its two 95 % intervals); smaller true differences look like noise here.")


def _verdict_line(c: dict[str, Any]) -> str:
    d = c["difference"] * 100
    lo, hi = c["ci_low"], c["ci_high"]
    image = "n/a" if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)) \
        else f"[{lo * 100:+.2f}, {hi * 100:+.2f}]"
    line = (f"- **{c['arm']} vs {c['baseline']}** ({_scope(c) if 'class' in c else c['metric']}): {d:+.2f} "
            f"points, 95 % CI over test images {image}")
    if "seed_ci_low" in c:
        lo, hi = c["seed_ci_low"], c["seed_ci_high"]
        seed = "n/a" if lo is None or hi is None else f"[{lo * 100:+.2f}, {hi * 100:+.2f}]"
        line += f", over seeds {seed}"
    if c.get("mdd") is not None:
        line += f", detectable ≥ {c['mdd'] * 100:.1f}"
    line += f" → **{c['verdict']}**"
    return line + (f" ({c['verdict_reason']})." if c.get("verdict_reason") else ".")
