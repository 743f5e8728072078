"""A weights file is a pickle: roadsynth never lets one run code, whichever door it comes through."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import DATA, ROOT


class Payload:
    """Unpickling this creates a file: what a malicious .pt would do with a shell command instead."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def evil_weights(tmp_path):
    import torch

    marker = tmp_path / "PWNED"
    path = tmp_path / "best.pt"
    torch.save({"model": Payload(marker), "train_args": {}}, path)
    assert not marker.exists()
    return path, marker


@pytest.mark.slow
def test_a_malicious_weights_file_is_refused_and_runs_nothing(tmp_path):
    from roadsynth.detectors.yolo_ultralytics import UnsafeWeightsError, YoloDetector, load_yolo

    path, marker = evil_weights(tmp_path)
    with pytest.raises(UnsafeWeightsError, match="refused: not a plain Ultralytics checkpoint"):
        load_yolo(path)
    with pytest.raises(UnsafeWeightsError):
        YoloDetector().load(path)  # the generator's detector check, the pseudo-labeller, the UI
    (tmp_path / "classes.json").write_text(json.dumps([{"index": 0, "category_id": 1, "name": "x"}]))
    with pytest.raises(UnsafeWeightsError):
        YoloDetector().predict(path, [(1, DATA / "deer" / "images" / "deer_000.jpg")])
    with pytest.raises(UnsafeWeightsError):  # an experiment's `detector.weights` (fine-tuning start)
        from roadsynth.datasets.records import DatasetSplit
        from roadsynth.datasets.yolo import read_yolo

        ds, root = read_yolo(DATA / "deer")
        YoloDetector(weights=path, imgsz=64, epochs=1).train(DatasetSplit(ds, root), DatasetSplit(ds, root),
                                                             tmp_path / "run", seed=0)
    before = os.environ.get("ULTRALYTICS_SAFE_LOAD")
    os.environ["ULTRALYTICS_SAFE_LOAD"] = "0"
    try:
        with pytest.raises(UnsafeWeightsError):  # a `.pt` as `detector.model`, even with Ultralytics' safe load off
            YoloDetector(model=str(path), imgsz=64, epochs=1).train(DatasetSplit(ds, root), DatasetSplit(ds, root),
                                                                    tmp_path / "run2", seed=0)
    finally:
        if before is None:
            del os.environ["ULTRALYTICS_SAFE_LOAD"]
        else:
            os.environ["ULTRALYTICS_SAFE_LOAD"] = before
    assert not marker.exists()


@pytest.mark.slow
def test_generation_with_a_malicious_detector_check_fails_with_one_line(tmp_path):
    from roadsynth.cli import app

    path, marker = evil_weights(tmp_path)
    cfg = yaml.safe_load((ROOT / "configs" / "animals.yaml").read_text())
    for s in cfg["generate"]["scenes"]:
        for k in ("path", "label_maps"):
            if k in s:
                s[k] = str((ROOT / "configs" / s[k]).resolve())
    for c in cfg["generate"]["cutouts"]:
        c["path"] = str((ROOT / "configs" / c["path"]).resolve())
    cfg["generate"].update(n_images=2, chunk_size=2)
    cfg["generate"]["insert"]["detector_check"] = {"weights": str(path)}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    r = CliRunner().invoke(app, ["generate", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "out"), "--engine",
                                 "local"])
    assert r.exit_code == 1 and "refused: not a plain Ultralytics checkpoint" in r.output, r.output
    assert "Traceback" not in r.output and not marker.exists()


@pytest.mark.slow
def test_the_ui_never_loads_weights_from_outside_the_experiment_folder(tmp_path):
    from roadsynth.review import list_runs

    path, marker = evil_weights(tmp_path)
    exp = tmp_path / "exp"
    (exp / "runs" / "real_seed0" / "weights").mkdir(parents=True)
    inside = exp / "runs" / "real_seed0" / "weights" / "weights.pt"
    inside.write_bytes(b"not really weights")
    (exp / "runs" / "real_seed0" / "metrics.json").write_text(json.dumps(
        {"arm": "real", "seed": 0, "mAP50_95": 0.1, "weights": "runs/real_seed0/weights/weights.pt"}))
    (exp / "runs" / "evil_seed0").mkdir()
    (exp / "runs" / "evil_seed0" / "metrics.json").write_text(json.dumps(
        {"arm": "evil", "seed": 0, "mAP50_95": 0.9, "weights": str(path)}))
    (exp / "runs" / "dots_seed0").mkdir()
    (exp / "runs" / "dots_seed0" / "metrics.json").write_text(json.dumps(
        {"arm": "dots", "seed": 0, "mAP50_95": 0.9, "weights": "../best.pt"}))
    assert [r["arm"] for r in list_runs(exp)] == ["real"]
    assert not marker.exists()


@pytest.mark.slow
def test_importing_ultralytics_leaves_pillow_reporting_corrupt_images(tmp_path):
    """Ultralytics swaps PIL.Image.open for a wrapper that tries to pip-install pi-heif on a file it cannot
    identify and raises ModuleNotFoundError: a corrupt frame must still be Pillow's own, reportable error."""
    from PIL import Image, UnidentifiedImageError

    from roadsynth.datasets.io import load_image
    from roadsynth.detectors.yolo_ultralytics import _import_yolo

    _import_yolo()
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert Image.open.__module__.startswith("PIL")
    with pytest.raises(UnidentifiedImageError):
        Image.open(empty)
    with pytest.raises(Exception) as e:
        load_image(empty)
    assert not isinstance(e.value, ModuleNotFoundError) and "empty.png" in str(e.value)
