"""Robustness slices: weathered copies of the real test split and metrics per condition."""

from __future__ import annotations

import numpy as np

from roadsynth.datasets.io import load_image
from roadsynth.datasets.split import filter_dataset
from roadsynth.datasets.yolo import read_yolo
from roadsynth.evaluation.coco_metrics import PerImageEval
from roadsynth.datasets.records import DatasetSplit
from roadsynth.evaluation.experiment_report import slice_metrics
from roadsynth.experiment import add_test_conditions
from tests.conftest import DATA


def test_weathered_test_copies_keep_labels_and_slice_by_condition(tmp_path):
    ds, root = read_yolo(DATA / "vehicles_test")
    test = DatasetSplit(filter_dataset(ds, [im.id for im in ds.images[:6]]), root)
    out = add_test_conditions(test, ["fog", "night"], 2, 0, tmp_path / "test_images")
    assert len(out.dataset.images) == 18
    assert [im.attributes["condition"] for im in out.dataset.images] == ["clear"] * 6 + ["fog"] * 6 + ["night"] * 6
    by_image = out.dataset.annotations_by_image()
    orig = test.dataset.annotations_by_image()
    for k, im in enumerate(out.dataset.images):
        src = test.dataset.images[k % 6]
        assert [a.bbox for a in by_image.get(im.id, [])] == [a.bbox for a in orig.get(src.id, [])]
        rgb = load_image(out.images_root / im.file_name)
        ref = load_image(root / src.file_name)
        changed = np.abs(rgb.astype(int) - ref).mean()
        assert (changed > 3) == (k >= 6), (im.file_name, changed)
    # Re-running reuses the written copies (same files, same bytes).
    before = (tmp_path / "test_images" / out.dataset.images[7].file_name).read_bytes()
    add_test_conditions(test, ["fog", "night"], 2, 0, tmp_path / "test_images")
    assert (tmp_path / "test_images" / out.dataset.images[7].file_name).read_bytes() == before

    # A detector that finds everything in clear frames and nothing in weathered ones: the slices say so.
    results = [{"image_id": a.image_id, "category_id": a.category_id, "bbox": a.bbox.xywh(), "score": 0.9}
               for a in out.dataset.annotations if a.image_id <= 6]
    ev = PerImageEval(out.dataset, results)
    rows = {r["value"]: r for r in slice_metrics(out.dataset, {"real": [ev]}, ["condition"])}
    assert set(rows) == {"clear", "fog", "night"} and rows["clear"]["images"] == 6
    assert rows["clear"]["real"] > 0.95 and rows["fog"]["real"] == 0.0 and rows["night"]["real"] == 0.0
