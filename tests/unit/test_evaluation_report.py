"""What a person reads from an experiment: metrics.json, runs.csv, report.md/html (evaluation/report.py)
and the figures (evaluation/plots.py)."""

import json
import math

import pytest

from roadsynth.evaluation import plots
from roadsynth.evaluation.report import aggregate_runs, write_report


def rows():
    def row(arm, seed, m, amb):
        return {"arm": arm, "seed": seed, "train_images": 10, "mAP50_95": m, "mAP50": 2 * m, "mAP75": m,
                "AP_small": math.nan, "AP_medium": m, "AP_large": m, "AR100": m,
                "per_class": {"Ambulance": {"AP50_95": amb, "AP50": 2 * amb, "n_gt": 5},
                              "Car": {"AP50_95": 0.3, "AP50": 0.6, "n_gt": 9}}}
    return [row("real", 0, 0.10, 0.02), row("real", 1, 0.12, 0.04),
            row("real+generated", 0, 0.14, 0.08), row("real+generated", 1, 0.16, 0.10)]


def comparison():
    return {"arm": "real+generated", "baseline": "real", "class": "Ambulance", "metric": "AP50", "seeds": 2,
            "difference": 0.12, "ci_low": 0.05, "ci_high": 0.2, "seed_ci_low": 0.01, "seed_ci_high": 0.23,
            "verdict": "improves", "verdict_reason": "both the test-image and the per-seed intervals lie above 0",
            "mdd": 0.11}


def test_aggregate_runs_gives_mean_and_sample_std_per_arm_and_class():
    arms = aggregate_runs(rows())
    assert arms["real"]["mAP50_95"] == pytest.approx(0.11) and arms["real"]["mAP50_95_std"] == pytest.approx(0.01414, 1e-3)
    assert arms["real+generated"]["per_class"]["Ambulance"]["AP50"] == pytest.approx(0.18)
    assert arms["real"]["AP_small"] is None  # absent (no small objects), never a fake zero
    assert arms["real"]["seeds"] == [0, 1]


def test_report_leads_with_the_headline_verdict_and_its_detectable_difference(tmp_path):
    lead = comparison()
    figures = {"ap_per_class": plots.ap_per_class(aggregate_runs(rows())), "comparisons": plots.bootstrap_ci([lead])}
    m = write_report(tmp_path, rows(), title="t", context={"seeds": [0, 1]}, comparisons=[lead], figures=figures,
                     extras={"headline": lead, "compute": {"real": {"train_images": 10, "epochs": 3, "steps": 6,
                                                                       "images_seen": 30, "train_seconds": 4.0,
                                                                       "reused": 1}}})
    md = (tmp_path / "report.md").read_text()
    assert md.index("## Verdict: Ambulance AP50") < md.index("## Arms")
    assert "This run can detect differences of at least 11.0 AP points" in md
    assert "| real | 10 | 3 | 6 | 30 | 4 | 1 |" in md
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["headline"]["mdd"] == 0.11 and saved["arms"]["real"]["AP_small"] is None and len(saved["runs"]) == 4
    html = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in html and "src=\"http" not in html  # self-contained
    assert (tmp_path / "plots" / "comparisons.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "runs.csv").read_text().splitlines()[0].startswith("arm,seed")
    assert m["comparisons"] == [lead]


def test_a_headline_without_a_seed_interval_says_the_detectable_difference_is_unknown(tmp_path):
    lead = {**comparison(), "seed_ci_low": None, "seed_ci_high": None, "mdd": None,
            "verdict": "no significant change", "verdict_reason": "one seed per arm"}
    write_report(tmp_path, rows(), title="t", context={}, comparisons=[lead], extras={"headline": lead})
    md = (tmp_path / "report.md").read_text()
    assert "cannot say how small a difference it could detect" in md and "over seeds n/a" in md


def test_figures_leave_pyplot_alone():
    import matplotlib

    backend = matplotlib.get_backend()
    png = plots.pr_curves({"Car": {"real": [0.5] * 101, "real+generated": [0.6] * 101}})
    assert png[:4] == b"\x89PNG" and matplotlib.get_backend() == backend
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []


def test_realism_section_gives_both_sharpness_gaps(tmp_path):
    from roadsynth.generators.realism import summarize

    ins = [{"log_luminance": 0.3, "log_sharpness": 0.1 + 0.01 * f, "frame": f, "dark": f % 2 == 0} for f in range(12)]
    real = [{"log_luminance": -0.4, "log_sharpness": -0.5 + 0.01 * f, "frame": f, "dark": f % 2 == 0} for f in range(12)]
    write_report(tmp_path, rows(), title="t", context={}, comparisons=[comparison()],
                 extras={"realism": {"generated": summarize(ins, real)}})
    md = (tmp_path / "report.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("- generated, all frames:"))
    assert "log sharpness inserted - real +0.600" in line and "per unit of brightness -0.100" in line
