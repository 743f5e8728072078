"""End-to-end: the quickstart config at reduced size, through the Prefect flows, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT


def reduced_quickstart(tmp_path: Path) -> Path:
    cfg = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    base = ROOT / "configs"
    for scene in cfg["generate"]["scenes"]:
        scene["path"] = str((base / scene["path"]).resolve())
        scene["label_maps"] = str((base / scene["label_maps"]).resolve())
    cfg["experiment"]["real"]["path"] = str((base / cfg["experiment"]["real"]["path"]).resolve())
    cfg["generate"]["n_images"] = 6
    cfg["generate"]["chunk_size"] = 4
    cfg["experiment"]["seeds"] = [0]
    cfg["experiment"]["detector"].update(imgsz=64, epochs=1, batch=8)
    cfg["experiment"]["bootstrap"] = 50
    path = tmp_path / "quickstart_small.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_quickstart_end_to_end_offline(tmp_path, network_audit, prefect_harness):
    from typer.testing import CliRunner

    from roadsynth.cli import app

    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["experiment", str(reduced_quickstart(tmp_path)), "--out", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert network_audit.events == [], network_audit.events

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

    # Both arms have real numbers on the real test split.
    metrics = json.loads((out / "metrics.json").read_text())
    for arm in ("real", "real+generated"):
        for key in ("mAP50", "mAP50_95"):
            assert 0.0 <= metrics["arms"][arm][key] <= 1.0
        assert "Ambulance" in metrics["arms"][arm]["per_class"]
    assert (out / "report.md").read_text().count("| real") >= 2
    # The verdict weighs both noise sources: test images (bootstrap) and training seeds (t-interval).
    [c] = metrics["comparisons"]
    assert c["ci_low"] <= c["difference"] <= c["ci_high"] and "seed_ci_low" in c and c["verdict_reason"]
    assert c["verdict"] in ("improves", "worse", "no significant change")
    assert ", over seeds " in (out / "report.md").read_text()
    assert (out / "runs.csv").exists() and (out / "config.yaml").exists()
