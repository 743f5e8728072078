"""`roadsynth train-starter` at test size: the manifest proves what the starter saw and what it never saw."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import DATA, ROOT


@pytest.mark.slow
def test_train_starter_writes_weights_and_a_manifest_of_every_image_it_saw(tmp_path):
    from roadsynth.cli import app
    from roadsynth.datasets.yolo import read_yolo
    from roadsynth.detectors.starter import load_manifest
    from roadsynth.evaluation.leakage import manifest_leaks

    cfg = yaml.safe_load((ROOT / "configs" / "starter.yaml").read_text())
    for s in cfg["sources"]:
        s["path"] = str((ROOT / "configs" / s["path"]).resolve())
    cfg["detector"].update(imgsz=64, epochs=1)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(cfg))
    r = CliRunner().invoke(app, ["train-starter", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "starter")])
    assert r.exit_code == 0, r.output
    manifest = load_manifest(tmp_path / "starter" / "weights.pt")
    assert manifest["classes"] == ["Bus", "Car", "Motorcycle", "Truck"]
    assert (tmp_path / "starter" / "classes.json").is_file() and manifest["weights_sha256"]
    seen = {m["file"].split("/")[-1] for m in manifest["images"]}
    assert len(seen) == manifest["n_images"]["train"] + manifest["n_images"]["val"]
    pool, _ = read_yolo(DATA / "vehicles")  # the pool's ambulance images never reach the starter
    with_amb = {im.file_name for im in pool.images if any(a.category_id == 1 and a.image_id == im.id
                                                           for a in pool.annotations)}
    assert len(with_amb) == 28 and not seen & with_amb
    assert {d["file"].split("/")[-1] for d in manifest["excluded"]} >= set(cfg["exclude_images"])
    test = sorted((DATA / "vehicles_test" / "images").glob("*.jpg"))
    assert manifest_leaks(test, manifest) == []
    assert all(len(m["phash"]) == 16 and len(m["sha256"]) == 64 for m in manifest["images"])
    assert json.loads((tmp_path / "starter" / "manifest.json").read_text())["versions"]["ultralytics"]
    assert (tmp_path / "starter" / "training_curve.csv").read_text().startswith("epoch,")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "weights.pt").write_text("a user's own weights")
    r = CliRunner().invoke(app, ["train-starter", str(tmp_path / "s.yaml"), "--out", str(mine), "--overwrite"])
    assert r.exit_code == 1 and "would replace" in r.output
    assert (mine / "weights.pt").read_text() == "a user's own weights"
