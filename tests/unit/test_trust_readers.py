"""The readers of user-owned side files (camera intrinsics, COCO scene sources, Cityscapes camera and polygon
files, a curated annotations file) go through the bounded JSON reader: a FIFO, a huge or broken file is refused
with an error that names it, and a dataset import records the bad side file and goes on."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from roadsynth.datasets.io import InputFileError


def test_camera_intrinsics_file_errors_name_the_file(tmp_path):
    from roadsynth.geometry.camera import from_intrinsics_json

    good = tmp_path / "k.json"
    good.write_text(json.dumps({"K": [[1000, 0, 640], [0, 1000, 360], [0, 0, 1]]}))
    assert from_intrinsics_json(good, 1.5).fx == 1000
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(InputFileError, match="fifo.json"):
        from_intrinsics_json(fifo, 1.5)  # refused without blocking on the open
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps({"K": [1, 2, 3]}))
    with pytest.raises(ValueError, match=r"flat.json: `K` must be a 3x3 matrix, but got shape \(3,\)"):
        from_intrinsics_json(flat, 1.5)
    missing_k = tmp_path / "nok.json"
    missing_k.write_text("{}")
    with pytest.raises(ValueError, match="nok.json: no 3x3 `K` matrix"):
        from_intrinsics_json(missing_k, 1.5)


def test_coco_scene_source_refuses_a_folder_and_broken_json_naming_it(tmp_path):
    from roadsynth.generate.sources import read_coco_lenient

    (tmp_path / "labels.json").mkdir()
    with pytest.raises(InputFileError, match="labels.json"):
        read_coco_lenient(tmp_path / "labels.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [')
    with pytest.raises(InputFileError, match="broken.json: not valid JSON"):
        read_coco_lenient(broken)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(InputFileError, match="deeper than"):
        read_coco_lenient(deep)


def test_cityscapes_import_records_a_broken_camera_file_and_goes_on(tmp_path):
    from roadsynth.datasets.formats.cityscapes import read_cityscapes

    city = "aachen"
    stem = f"{city}_000000_000019"
    img_dir = tmp_path / "leftImg8bit" / "train" / city
    img_dir.mkdir(parents=True)
    Image.fromarray(np.zeros((32, 64, 3), np.uint8)).save(img_dir / f"{stem}_leftImg8bit.png")
    cam_dir = tmp_path / "camera" / "train" / city
    cam_dir.mkdir(parents=True)
    os.mkfifo(cam_dir / f"{stem}_camera.json")
    gt_dir = tmp_path / "gtFine" / "train" / city
    gt_dir.mkdir(parents=True)
    (gt_dir / f"{stem}_gtFine_polygons.json").write_text('{"objects": [')
    ds = read_cityscapes(tmp_path).dataset
    problems = ds.info.get("problems", [])
    assert len(ds.images) == 1 and "camera" not in ds.images[0].attributes
    assert any(f"{stem}_camera.json" in p and "not a regular file" in p for p in problems), problems
    assert any(f"{stem}_gtFine_polygons.json" in p and "not valid JSON" in p for p in problems), problems
