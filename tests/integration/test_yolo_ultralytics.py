"""1-epoch YOLO on tiny synthetic images, through the same adapter the experiment uses."""

from __future__ import annotations

import math

import numpy as np
import pytest

from roadsynth.datasets.io import save_image_atomic
from roadsynth.datasets.records import Annotation, Box, Category, Dataset, ImageRecord
from roadsynth.detectors.base import DatasetSplit


def synthetic_split(root, n: int, seed: int) -> Dataset:
    """Grey 64 px frames with a red square (category 3) and a blue bar (category 7)."""
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i in range(1, n + 1):
        img = np.full((64, 64, 3), 90, np.uint8)
        for cat, color, (w, h) in ((3, (220, 30, 30), (16, 16)), (7, (30, 30, 220), (24, 10))):
            x, y = int(rng.integers(0, 64 - w)), int(rng.integers(0, 64 - h))
            img[y : y + h, x : x + w] = color
            anns.append(Annotation(len(anns) + 1, i, cat, Box(x, y, w, h)))
        save_image_atomic(root / f"img{i}.png", img)
        images.append(ImageRecord(i, f"img{i}.png", 64, 64))
    return Dataset(tuple(images), tuple(anns), (Category(3, "square"), Category(7, "bar")))


@pytest.mark.slow
def test_train_predict_evaluate_one_epoch_offline(tmp_path, network_audit):
    from roadsynth.detectors.yolo_ultralytics import YoloDetector
    from roadsynth.evaluation.coco_metrics import evaluate_detections, predictions_to_coco_results

    (tmp_path / "imgs").mkdir()
    train = synthetic_split(tmp_path / "imgs", 8, 0)
    det = YoloDetector("yolo11n.yaml", imgsz=64, epochs=1, batch=4)
    weights = det.train(DatasetSplit(train, tmp_path / "imgs"), DatasetSplit(train, tmp_path / "imgs"),
                        tmp_path / "run", seed=0)
    assert weights.exists() and weights.stat().st_size > 1_000_000

    preds = det.predict(weights, [(im.id, tmp_path / "imgs" / im.file_name) for im in train.images])
    assert preds, "an untrained detector at conf=0.001 still returns candidates"
    assert {p.category_id for p in preds} <= {3, 7}
    assert {p.image_id for p in preds} <= set(range(1, 9))
    for p in preds:
        assert -1 <= p.box.x and p.box.x2 <= 65 and -1 <= p.box.y and p.box.y2 <= 65  # original pixel frame
    m = evaluate_detections(train, predictions_to_coco_results(preds))
    for k in ("mAP50_95", "mAP50"):
        assert math.isfinite(m.stats[k]) and 0.0 <= m.stats[k] <= 1.0
    assert network_audit.events == []


def test_bare_pt_name_is_refused_instead_of_downloaded():
    from roadsynth.detectors.yolo_ultralytics import check_model_source

    with pytest.raises(FileNotFoundError, match="roadsynth never downloads weights"):
        check_model_source("yolo11n.pt")
    assert check_model_source("yolo11n.yaml") == "yolo11n.yaml"
