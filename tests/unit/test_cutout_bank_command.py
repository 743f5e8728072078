"""`roadsynth cutouts`: a scored, gated, reusable cut-out bank from a box-labelled dataset."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from roadsynth.cli import app
from roadsynth.generators.cutouts import CutoutBank


def yolo_discs(root, boxes):
    """A YOLO dataset: one 160x120 photo per box, a red disc (r=30 at 80,60) on noisy grass, labelled `boxes`."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "data.yaml").write_text("names: [cow]\n")
    yy, xx = np.mgrid[:120, :160]
    for k, (x, y, w, h) in enumerate(boxes):
        rng = np.random.default_rng(k)
        rgb = np.zeros((120, 160, 3)) + (60, 140, 50)
        rgb[(yy - 60) ** 2 + (xx - 80) ** 2 <= 900] = (200, 30, 30)
        Image.fromarray(np.clip(rgb + rng.normal(0, 6, rgb.shape), 0, 255).astype(np.uint8)).save(
            root / "images" / f"{k}.jpg", quality=95)
        (root / "labels" / f"{k}.txt").write_text(f"0 {(x + w / 2) / 160} {(y + h / 2) / 120} {w / 160} {h / 120}\n")


def test_a_box_dataset_becomes_a_scored_gated_bank_usable_as_a_source(tmp_path):
    # tight boxes around the disc, and a box reaching far into the grass (a loose label takes background)
    yolo_discs(tmp_path / "ds", [(50, 30, 61, 61), (49, 29, 63, 63), (20, 5, 130, 110)])
    out = tmp_path / "bank"
    r = CliRunner().invoke(app, ["cutouts", str(tmp_path / "ds"), "--format", "yolo", "--class-map", "cow=Cow",
                                 "--out", str(out), "--min-quality", "0.3"])
    assert r.exit_code == 0, r.output
    index = json.loads((out / "index.json").read_text())
    assert len(index) == 3 and all(e["category"] == "Cow" and 0 <= e["quality"] <= 1 for e in index)
    assert all(e["source_path"].endswith(".jpg") and len(e["source_box"]) == 4 for e in index)
    kept = [e for e in index if e["kept"]]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kept"] == len(kept) and manifest["refused"] == 3 - len(kept) and manifest["min_quality"] == 0.3
    assert 1 <= len(kept) <= 2 and all(e["quality"] >= 0.3 for e in kept)
    assert [c.id for c in CutoutBank.load(out).cutouts] == [e["id"] for e in kept]  # what generation uses
    assert len(CutoutBank.load(out, include_refused=True)) == 3  # what a review shows
    assert "cut-outs kept" in r.output


def test_bad_bank_options_are_refused_with_the_reason(tmp_path):
    yolo_discs(tmp_path / "ds", [(50, 30, 61, 61)])
    r = CliRunner().invoke(app, ["cutouts", str(tmp_path / "ds"), "--format", "png", "--out", str(tmp_path / "b")])
    assert r.exit_code != 0 and "`--format` must be one of" in r.output
    r = CliRunner().invoke(app, ["cutouts", str(tmp_path / "ds"), "--format", "yolo", "--out", str(tmp_path / "b"),
                                 "--min-quality", "1.5"])
    assert r.exit_code != 0 and "`--min-quality` must be in [0, 1], but got 1.5" in r.output
