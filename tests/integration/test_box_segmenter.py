"""`roadsynth train-segmenter` at test size, and the learned box-to-mask step it makes possible."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import DATA, ROOT

WEIZMANN = DATA / "cutouts" / "weizmann_horse"
MODEL = ROOT / "models" / "box_segmenter"


def _config(tmp_path, **over):
    cfg = {"sources": [{"kind": "weizmann", "path": str(WEIZMANN), "parity": "even"}],
           "validation": [{"kind": "weizmann", "path": str(WEIZMANN), "parity": "odd"}],
           "size": 32, "widths": [4, 8], "epochs": 2, "batch": 8, "tuning": 4, "threads": 1} | over
    p = tmp_path / "seg.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from roadsynth.cli import app

    tmp = tmp_path_factory.mktemp("seg")
    r = CliRunner().invoke(app, ["train-segmenter", str(_config(tmp)), "--out", str(tmp / "model")])
    assert r.exit_code == 0, r.output
    return tmp / "model"


@pytest.mark.slow
def test_train_segmenter_writes_weights_and_a_manifest_of_what_it_saw_and_how_it_scored(trained):
    from roadsynth.generators.segmenter_data import iter_instances
    from roadsynth.generators.segmenter_train import THRESHOLDS

    m = json.loads((trained / "manifest.json").read_text())
    even = list(iter_instances({"kind": "weizmann", "path": WEIZMANN, "parity": "even"}))
    odd = list(iter_instances({"kind": "weizmann", "path": WEIZMANN, "parity": "odd"}))
    assert m["n_instances"] == {"train": len(even) - 4, "tuning": 4}
    assert sorted(r["split"] for r in m["instances"]).count("tuning") == 4
    assert all(len(r["sha256"]) == 64 and r["phash"] for r in m["instances"])
    assert m["model"]["threshold"] in THRESHOLDS and m["model"]["size"] == 32
    # The certainty floor refuses at most the least certain tuning mask of four (refuse_share 0.15; ties at a
    # 2-epoch model's floor refuse none), and validation reports what it refuses and what it keeps.
    assert 0 <= m["model"]["min_certainty"] <= 1 and m["tuning"]["refused"] in (0.0, 0.25)
    assert m["validation"]["all"]["kept"]["n"] == round(len(odd) * (1 - m["validation"]["all"]["refused"]))
    assert all(not Path(r["file"]).is_absolute() and (trained / r["file"]).is_file() for r in m["instances"])
    # No bundled horse is a near-duplicate of another, so every odd one is scored.
    v = m["validation"]
    assert v["all"]["n"] == len(odd) and v["near_duplicates_left_out"] == []
    assert 0 <= v["all"]["mean_iou"] <= 1 and v["per_class"]["horse"]["n"] == len(odd)
    assert (trained / "weights.safetensors").stat().st_size < 50_000
    assert (trained / "training_curve.csv").read_text().splitlines()[0] == "epoch,loss,seconds"
    assert yaml.safe_load((trained / "config.yaml").read_text())["sources"][0]["path"].startswith("..")


@pytest.mark.slow
def test_validation_leaves_out_photos_it_trained_on(tmp_path):
    from roadsynth.config import load_model
    from roadsynth.config.segmenter import SegmenterConfig
    from roadsynth.generators.segmenter_train import train_segmenter

    same = [{"kind": "weizmann", "path": str(WEIZMANN), "parity": "even"}]
    cfg = load_model(_config(tmp_path, validation=same, epochs=1, tuning=0), SegmenterConfig)
    m = train_segmenter(cfg, tmp_path / "model")
    assert m["validation"]["all"] == {"n": 0} and len(m["validation"]["near_duplicates_left_out"]) == len(m["instances"])


@pytest.mark.slow
def test_the_committed_segmenter_cuts_a_box_only_bank_and_scores_as_its_manifest_says(tmp_path):
    from roadsynth.datasets.records import Box
    from roadsynth.generators.bank import save_bank
    from roadsynth.generators.box_segmenter import load_segmenter
    from roadsynth.generators.cutout_sources import build_bank
    from roadsynth.generators.cutouts import CutoutBank
    from roadsynth.generators.masks import box_mask, mask_iou
    from roadsynth.generators.segmenter_data import iter_instances, tight_box

    seg = load_segmenter(MODEL)
    assert load_segmenter(MODEL) is seg  # loaded once per process
    # Validation instances it never saw: the odd MSRC ones, scored as the manifest scored them.
    ious = []
    for _, _, rgb, m, _ in list(iter_instances({"kind": "msrc", "path": DATA / "cutouts" / "msrc_v2_animals",
                                                "parity": "odd"}))[:12]:
        x1, y1, x2, y2 = tight_box(m)
        mask, method, certain = box_mask(rgb, Box.from_xyxy(x1, y1, x2, y2), seg)
        assert mask.shape == (y2 - y1, x2 - x1) and mask.dtype == bool and 0 <= certain <= 1
        ious.append(mask_iou(mask, m[y1:y2, x1:x2]))
    assert np.mean(ious) > 0.75, ious
    assert seg.manifest["validation"]["per_class"]["cow"]["mean_iou"] > 0.75
    # A box-only bank (the deer): every mask is the segmenter's, and the ones it is unsure of are refused,
    # counted by reason, and saved for review with their certainty.
    bank = build_bank([{"kind": "yolo", "path": DATA / "deer", "class_map": {"deer": "deer"}, "segmenter": MODEL}])
    every = bank.cutouts + bank.unsure
    # (Deer are not among its training classes, and it is unsure of most of the bundled ones.)
    assert len(every) > 20 and bank.cutouts and {c.mask_method for c in every} == {"learned"}  # ellipses dropped
    assert all(c.certainty >= seg.min_certainty for c in bank.cutouts)
    assert all(c.certainty < seg.min_certainty for c in bank.unsure)
    reason = f"box segmenter unsure (certainty below {seg.min_certainty:g})"
    assert bank.refused == ({reason: len(bank.unsure)} if bank.unsure else {})
    manifest = save_bank(bank, tmp_path / "bank")
    assert manifest["refused"] == len(bank.unsure) and manifest["kept"] == len(bank.cutouts)
    index = json.loads((tmp_path / "bank" / "index.json").read_text())
    assert all((e["certainty"] < seg.min_certainty) == (e["kept"] is False) for e in index)
    assert len(CutoutBank.load(tmp_path / "bank")) == len(bank.cutouts)  # unsure ones are never pasted


@pytest.mark.slow
def test_weights_that_are_a_pickle_are_refused_without_being_run(trained, tmp_path):
    from roadsynth.generators.box_segmenter import BoxSegmenter

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text((trained / "manifest.json").read_text())

    class Boom:
        def __reduce__(self):
            return (exec, ("open(%r, 'w').write('ran')" % str(tmp_path / "ran"),))

    (bad / "weights.safetensors").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(ValueError, match="weights.safetensors"):
        BoxSegmenter(bad)
    assert not (tmp_path / "ran").exists()
    with pytest.raises(FileNotFoundError, match="box segmenter weights not found"):
        BoxSegmenter(tmp_path)
