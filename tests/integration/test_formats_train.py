"""The whole route a KITTI user takes: import, generate (sized by the calibration), export YOLO, train."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from tests.conftest import FIXTURES
from tests.unit.test_formats import horses_on_imported


@pytest.mark.slow
def test_import_generate_export_and_train_ultralytics_with_nothing_converted_by_hand(tmp_path):
    from roadsynth.cli import app
    from roadsynth.detectors.yolo_ultralytics import _import_yolo

    run = CliRunner().invoke
    assert run(app, ["import", "kitti", str(FIXTURES / "kitti"), "--out", str(tmp_path / "k")]).exit_code == 0
    config = horses_on_imported(tmp_path / "k", tmp_path / "c.yaml", 8)
    r = run(app, ["generate", str(config), "--out", str(tmp_path / "gen")])
    assert r.exit_code == 0, r.output
    anns = json.loads((tmp_path / "gen" / "annotations.json").read_text())["annotations"]
    assert {a["provenance"]["placement"]["scale_source"] for a in anns if "provenance" in a} == {"calibration"}
    r = run(app, ["export", str(tmp_path / "gen"), "--format", "yolo", "--out", str(tmp_path / "yolo"),
                  "--val-fraction", "0.25"])
    assert r.exit_code == 0, r.output
    shutil.move(tmp_path / "yolo", tmp_path / "moved")  # an export travels: nothing in it points back
    model = _import_yolo()("yolo11n.yaml")
    model.train(data=str(tmp_path / "moved" / "data.yaml"), epochs=1, imgsz=64, batch=4, workers=0, device="cpu",
                plots=False, amp=False, project=str(tmp_path / "train"), name="run", exist_ok=True, verbose=False)
    assert (tmp_path / "train" / "run" / "weights" / "last.pt").is_file()
    assert model.trainer.validator.metrics.box.map >= 0.0  # it trained and validated on the export as it is
