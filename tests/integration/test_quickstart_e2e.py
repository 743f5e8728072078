"""End-to-end: the quickstart config at reduced size, through the Prefect flows, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from roadsynth.config import load_config
from tests.conftest import ROOT, NetworkAudit, invoke_in_process

# One worker runs this module's tests (pytest-xdist): the second experiment reuses the first one's trainings.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("quickstart")]


def reduced_quickstart(tmp_path: Path, name: str = "quickstart_small.yaml", doses=(), **generate) -> Path:
    """The bundled quickstart (resolved paths) at test size, with the placement ablation arm and two seeds
    (one dose, every generated image, unless `doses` are given)."""
    cfg = load_config(ROOT / "configs" / "quickstart.yaml").model_dump(mode="json")
    cfg["generate"].update(n_images=6, chunk_size=4, **generate)
    e = cfg["experiment"]
    e.update(seeds=[0, 1], arms=["real", "real+generated", "real+random"], bootstrap=50,
             reuse_dir=str(tmp_path / "trained"), doses=list(doses))
    e["detector"].update(imgsz=64, epochs=1, batch=8)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, prefect_harness) -> tuple[Path, Path]:
    """(folder of its config and training cache, run folder): the reduced quickstart with the placement
    ablation arm, one dose (every generated image), through the flows, under the network audit."""
    tmp = tmp_path_factory.mktemp("quickstart")
    out = tmp / "run"
    with NetworkAudit() as audit:
        result = invoke_in_process(["experiment", reduced_quickstart(tmp), "--out", out])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert audit.events == [], audit.events
    return tmp, out


def test_quickstart_end_to_end_offline(first_run):
    from typer.testing import CliRunner

    from roadsynth.cli import app

    _, out = first_run
    # The generated dataset is valid for roadsynth's validator and for pycocotools.
    gen = out / "generated"
    check = CliRunner().invoke(app, ["validate", str(gen / "annotations.json"), "--images-root", str(gen / "images")])
    assert check.exit_code == 0, check.output
    from pycocotools.coco import COCO

    coco = COCO(str(gen / "annotations.json"))
    assert len(coco.getImgIds()) == 6
    anns = json.loads((gen / "annotations.json").read_text())["annotations"]
    generated = [a for a in anns if "provenance" in a]
    assert generated, "no object was inserted"
    for a in generated:
        prov = a["provenance"]
        assert prov["method"] == "paste" and prov["source"] and "seed" in prov and "placement" in prov

    # Every arm has real numbers on the frozen real test set, fine-tuned from the bundled starter.
    metrics = json.loads((out / "metrics.json").read_text())
    for arm in ("real", "real+generated", "real+random"):
        for key in ("mAP50", "mAP50_95"):
            assert 0.0 <= metrics["arms"][arm][key] <= 1.0
        assert "Ambulance" in metrics["arms"][arm]["per_class"]
    assert metrics["context"]["test set"] == "fixed (`real.test`)"
    assert "starter-vehicles" in metrics["starter"]
    assert not metrics["leakage"], metrics["leakage"]
    # Equal compute: the smaller real arm trains more epochs for about the same optimiser steps.
    compute = metrics["compute"]
    assert compute["real"]["epochs"] >= compute["real+generated"]["epochs"] == 1
    assert abs(compute["real"]["steps"] - compute["real+generated"]["steps"]) <= compute["real"]["steps"] / 2 + 1
    # The verdict is the target class's, with both noise sources and the smallest detectable difference.
    lead = metrics["headline"]
    assert (lead["class"], lead["metric"], lead["arm"], lead["baseline"]) == ("Ambulance", "AP50", "real+generated", "real")
    assert lead["ci_low"] <= lead["difference"] <= lead["ci_high"] and lead["seed_ci_low"] is not None
    assert lead["mdd"] == max(lead["ci_high"] - lead["ci_low"], lead["seed_ci_high"] - lead["seed_ci_low"]) / 2
    kinds = {(c["arm"], c["baseline"], c["class"], c["metric"]) for c in metrics["comparisons"]}
    assert ("real+generated", "real+random", "Ambulance", "AP50") in kinds  # does placement matter?
    assert ("real+random", "real", None, "mAP50_95") in kinds
    report = (out / "report.md").read_text()
    assert report.startswith("# roadsynth experiment") and "## Verdict: Ambulance AP50" in report
    assert "This run can detect differences of at least" in report and ", over seeds " in report
    assert "## Realism audit" in report and metrics["realism"]["generated"]["all"]["inserted"]["n"] > 0
    assert (out / "runs.csv").exists() and (out / "config.yaml").exists()

    # The ablation arm placed the same cut-outs without geometry.
    rand = json.loads((out / "generated_random" / "annotations.json").read_text())
    placed = [a["provenance"]["placement"] for a in rand["annotations"] if "provenance" in a]
    assert placed and all(p["scale_source"] == "random" and p["distance_m"] is None for p in placed)


def test_doses_report_the_curve_and_its_trend_and_retrain_only_generated_arms(first_run):
    """The bundled quickstart's shape (nested doses, one generation) at test size, through the flows, over the
    first run's training cache with another generation seed: the real arm is reused, every dose retrains."""
    tmp, first = first_run
    cfg = yaml.safe_load(reduced_quickstart(tmp, "doses.yaml", doses=[0, 3, 6], seed=7).read_text())
    cfg["experiment"]["arms"] = ["real", "real+generated"]
    path = tmp / "doses.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp / "doses"
    result = invoke_in_process(["experiment", path, "--out", out])
    assert result.exit_code == 0, result.output + repr(result.exception)
    metrics = json.loads((out / "metrics.json").read_text())
    assert sorted(metrics["arms"]) == ["real", "real+generated@3", "real+generated@6"]
    gen = json.loads((out / "generated" / "annotations.json").read_text())
    arm3 = json.loads((out / "arms" / "real_plus_generated_dose3" / "annotations.json").read_text())
    assert len(gen["images"]) == 6 and arm3["info"]["dose"] == 3  # one generation, a prefix per dose
    assert {im["original_id"] for im in arm3["images"] if im.get("part") == "generated"} == {1, 2, 3}
    ambulance = [r for r in metrics["curves"] if r["class"] == "Ambulance" and r["metric"] == "AP50"]
    assert [r["dose"] for r in ambulance] == [0, 3, 6] and all(r["n_seeds"] == 2 for r in ambulance)
    trend = metrics["trend_headline"]
    assert (trend["class"], trend["method"], trend["doses"], trend["trainings"]) == ("Ambulance", "real+generated",
                                                                                     [3, 6], 4)
    report = (out / "report.md").read_text()
    assert report.split("## ")[1].startswith("Verdict: Ambulance AP50 against the amount of generated data")
    assert (out / "plots" / "dose_curve.png").exists() and "budget" not in metrics or not metrics["budget"]

    # Only the generation and the doses changed: the real arm's trainings come from the first run's cache
    # (the same weights, so the same numbers on the same test set); every generated arm is trained anew.
    rows = {(r["arm"], r["seed"]): r for r in metrics["runs"]}
    first_rows = {(r["arm"], r["seed"]): r for r in json.loads((first / "metrics.json").read_text())["runs"]}
    for s in (0, 1):
        assert rows[("real", s)]["reused_from"] == "cache"
        assert rows[("real", s)]["mAP50"] == first_rows[("real", s)]["mAP50"]
        assert not any(rows[(f"real+generated@{d}", s)]["reused"] for d in (3, 6))
