"""1-epoch YOLO on tiny synthetic images through the adapter the experiment uses, with no network access."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from roadsynth.datasets.io import save_image_atomic
from roadsynth.datasets.records import Annotation, Box, Category, Dataset, ImageRecord
from roadsynth.detectors.base import DatasetSplit
from tests.conftest import DATA

W, H = 64, 48  # not square, so letterboxing is involved; equal to imgsz on the long side (no resize)


def synthetic_split(root: Path, ids: range, seed: int) -> Dataset:
    """Grey frames with a red square (category 3) and a blue bar (category 7); COCO ids 3 and 7 on purpose."""
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i in ids:
        img = np.full((H, W, 3), 90, np.uint8)
        for cat, color, (w, h) in ((3, (220, 30, 30), (14, 14)), (7, (30, 30, 220), (22, 8))):
            x, y = int(rng.integers(0, W - w)), int(rng.integers(0, H - h))
            img[y : y + h, x : x + w] = color
            anns.append(Annotation(100 * i + cat, i, cat, Box(x, y, w, h)))
        # Names sort differently from ids (img10 < img9), which catches order mix-ups in predict.
        save_image_atomic(root / f"img{i}.png", img)
        images.append(ImageRecord(i, f"img{i}.png", W, H))
    return Dataset(tuple(images), tuple(anns), (Category(7, "bar"), Category(3, "square")))


@pytest.mark.slow
def test_train_predict_evaluate_one_epoch_offline(tmp_path, network_audit, monkeypatch):
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "yolo_config"))
    from roadsynth.detectors.yolo_ultralytics import YoloDetector, apply_offline_defaults
    from roadsynth.evaluation.coco_metrics import evaluate_detections, predictions_to_coco_results

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    train, val = synthetic_split(imgs, range(1, 9), 0), synthetic_split(imgs, range(9, 13), 1)
    det = YoloDetector("yolo11n.yaml", imgsz=64, epochs=1, batch=4, conf=1e-4, val=True)  # best epoch on val
    weights = det.train(DatasetSplit(train, imgs), DatasetSplit(val, imgs), tmp_path / "run", seed=0)

    assert apply_offline_defaults() == tmp_path / "yolo_config"  # the user's YOLO_CONFIG_DIR wins
    assert (tmp_path / "yolo_config" / "Ultralytics" / "Arial.ttf").stat().st_size > 100_000
    assert weights.name == "best.pt" and weights.stat().st_size > 1_000_000
    classes = json.loads((tmp_path / "run" / "data" / "classes.json").read_text())
    assert [(c["index"], c["category_id"]) for c in classes] == [(0, 3), (1, 7)]  # sorted by COCO id
    assert json.loads(weights.with_name("classes.json").read_text()) == classes
    assert sorted(p.name for p in (tmp_path / "run" / "data" / "images" / "val").iterdir()) == \
        [f"{i:06d}.png" for i in range(9, 13)]  # YOLO export names images by COCO id

    order = [(im.id, imgs / im.file_name) for im in reversed(val.images)]  # not the sorted-path order
    preds = det.predict(weights, order)
    assert len(preds) > 20, "an (almost) untrained detector at conf 1e-4 still returns candidates"
    assert {p.category_id for p in preds} <= {3, 7} and {p.image_id for p in preds} <= {9, 10, 11, 12}
    for p in preds:
        assert 0 <= p.box.x <= p.box.x2 <= W and 0 <= p.box.y <= p.box.y2 <= H and 0 < p.score <= 1
    # Each image's predictions are its own, whatever the order of the request.
    alone = det.predict(weights, [(10, imgs / "img10.png")])
    assert [(p.box, p.score) for p in alone] == [(p.box, p.score) for p in preds if p.image_id == 10]

    # Original pixels: a 2x nearest-neighbour copy letterboxes to the same network input, so every box
    # must come back exactly twice as large.
    from roadsynth.datasets.io import load_image

    big = tmp_path / "big.png"
    save_image_atomic(big, np.repeat(np.repeat(load_image(imgs / "img11.png"), 2, axis=0), 2, axis=1))
    small_preds, big_preds = det.predict(weights, [(11, imgs / "img11.png")]), det.predict(weights, [(11, big)])
    assert len(small_preds) == len(big_preds) > 0
    np.testing.assert_allclose([b.box.xyxy() for b in big_preds], [np.multiply(s.box.xyxy(), 2) for s in small_preds],
                               atol=1e-3)
    assert [b.category_id for b in big_preds] == [s.category_id for s in small_preds]

    # The same weights loaded for in-memory frames (what the detector check, the pseudo-labeller and the UI
    # use): the same detections, in the same type, with the same COCO ids and the weights' class names.
    frames = det.load(weights, min_score=1e-4)
    assert sorted(frames.names) == ["bar", "square"]
    [dets] = frames([load_image(imgs / "img11.png")])
    assert dets and {d.name for d in dets} <= {"bar", "square"} and {d.image_id for d in dets} == {0}
    top = max(dets, key=lambda d: d.score)
    best = max(small_preds, key=lambda p: p.score)
    assert top.box.iou(best.box) > 0.99 and abs(top.score - best.score) < 1e-4  # same model, same frame
    assert top.category_id == best.category_id and top.name == best.name

    m = evaluate_detections(val, predictions_to_coco_results(preds))
    for k in ("mAP50_95", "mAP50", "mAP75", "AR100"):
        assert math.isfinite(m.stats[k]) and 0.0 <= m.stats[k] <= 1.0, (k, m.stats[k])
    assert m.per_class["square"]["n_gt"] == 4 and m.per_class["bar"]["n_gt"] == 4
    assert network_audit.events == []

    # Generation with the detector check: every inserted object carries the detector's verdict.
    from roadsynth.config import load_config
    from roadsynth.datasets.coco import read_coco
    from roadsynth.generate import generate_dataset

    cfg_path = tmp_path / "check.yaml"
    cfg_path.write_text(f"""
name: check
generate:
  n_images: 2
  scenes: [{{name: camvid, format: label_maps, path: {DATA}/camvid/images, label_maps: {DATA}/camvid/road_labels,
             camera: {{horizon_frac: 0.47, height_m: 1.3}}}}]
  cutouts: [{{kind: msrc, path: {DATA}/cutouts/msrc_v2_animals, categories: [sheep]}}]
  insert:
    categories: {{sheep: 1.0}}
    objects_per_image: [2, 2]
    detector_check: {{weights: {weights}, class_map: {{sheep: square}}, imgsz: 64, min_score: 0.5}}
""")
    ds = generate_dataset(load_config(cfg_path), tmp_path / "gen")
    gen = [a for a in ds.annotations if a.generated]
    assert gen
    for a in gen:
        v = read_verifier(tmp_path / "gen", a.id)
        assert v["detector_class"] == "square" and 0 <= v["detector_score"] <= 1 and isinstance(v["detector_found"], bool)
        assert v["detector_found"] == (v["detector_score"] >= 0.5)
    assert read_coco(tmp_path / "gen" / "annotations.json")
    from roadsynth.review import Review  # the review table shows the detector's verdict per object

    rows = [r for k in range(2) for r in Review(tmp_path / "gen").objects(k)]
    assert rows and all(r["detector_score"] is not None and isinstance(r["detector_found"], bool) for r in rows)


def read_verifier(folder: Path, ann_id: int) -> dict:
    d = json.loads((folder / "annotations.json").read_text())
    return next(a for a in d["annotations"] if a["id"] == ann_id)["provenance"]["verifier"]


def test_bare_pt_name_is_refused_instead_of_downloaded():
    from roadsynth.detectors.yolo_ultralytics import YoloDetector, check_model_source

    with pytest.raises(FileNotFoundError, match=r"but got yolo11n\.pt \(not found; roadsynth never downloads weights\)"):
        YoloDetector("yolo11n.pt")
    assert check_model_source("yolo11n.yaml") == "yolo11n.yaml"
    with pytest.raises(ValueError, match="`imgsz` must be a multiple of 32, but got 100"):
        YoloDetector(imgsz=100)


def test_foreign_weights_without_class_map_are_refused(tmp_path):
    from roadsynth.detectors.yolo_ultralytics import load_class_map

    weights = tmp_path / "w" / "train" / "weights" / "best.pt"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"not a model")
    with pytest.raises(FileNotFoundError, match="no classes.json next to the weights"):
        load_class_map(weights)
    (tmp_path / "w" / "data").mkdir()
    (tmp_path / "w" / "data" / "classes.json").write_text('[{"index": 0, "category_id": 9, "name": "cow"}]')
    assert load_class_map(weights) == {0: 9}  # falls back to the run's data dir


def test_missing_training_images_are_named_before_ultralytics_runs(tmp_path):
    from roadsynth.detectors.yolo_ultralytics import YoloDetector

    ds = Dataset((ImageRecord(1, "gone.png", 64, 48),), (), (Category(1, "cow"),))
    with pytest.raises(FileNotFoundError, match=r"1 train image\(s\) not found, e\.g\. \['gone\.png'\]"):
        YoloDetector().train(DatasetSplit(ds, tmp_path), DatasetSplit(ds, tmp_path), tmp_path / "run", seed=0)
