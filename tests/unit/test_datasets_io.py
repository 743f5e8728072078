import json
import os

import numpy as np
import pytest
from PIL import Image

from roadsynth.datasets.io import ImageLoadError, atomic_write_json, image_size, load_image, save_image_atomic


def test_atomic_json_keeps_old_file_when_serialisation_fails(tmp_path):
    path = tmp_path / "a.json"
    atomic_write_json(path, {"ok": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"ok": 1}
    assert os.listdir(tmp_path) == ["a.json"]  # no temp file left behind


def test_atomic_write_leaves_no_temp_file_on_encode_error(tmp_path):
    with pytest.raises(ValueError, match="suffix"):
        save_image_atomic(tmp_path / "x.gif", np.zeros((4, 4, 3), np.uint8))
    assert os.listdir(tmp_path) == []


def test_save_and_load_roundtrip_png(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (12, 20, 3), dtype=np.uint8)
    save_image_atomic(tmp_path / "x.png", rgb)
    assert np.array_equal(load_image(tmp_path / "x.png"), rgb)
    assert image_size(tmp_path / "x.png") == (20, 12)


def test_exif_orientation_is_applied(tmp_path):
    img = Image.fromarray(np.zeros((10, 30, 3), np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    img.save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg").shape == (30, 10, 3)
    assert image_size(tmp_path / "r.jpg") == (10, 30)


def test_truncated_and_missing_images_name_the_file(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    save_image_atomic(tmp_path / "t.jpg", rgb)
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="t.jpg: cannot read image"):
        load_image(tmp_path / "t.jpg")
    with pytest.raises(ImageLoadError, match="nope.jpg: cannot read image: file not found"):
        load_image(tmp_path / "nope.jpg")


def test_atomic_files_get_normal_permissions(tmp_path):
    atomic_write_json(tmp_path / "p.json", {})
    assert (tmp_path / "p.json").stat().st_mode & 0o644 == 0o644
