"""The box segmenter's data: instance readers, the even/odd split, and the crop it sees (no torch)."""

import json

import numpy as np
import pytest
from PIL import Image

from roadsynth.config import ConfigError, load_model
from roadsynth.config.segmenter import SegmenterConfig
from roadsynth.generators.segmenter_data import MARGIN, box_crop, crop_box, iter_instances, tight_box
from tests.conftest import DATA


def test_box_crop_puts_the_box_where_crop_box_says_and_keeps_the_mask_aligned():
    rgb = np.zeros((200, 300, 3), np.uint8)
    mask = np.zeros((200, 300), bool)
    mask[50:130, 100:220] = True  # the object fills its box
    rgb[mask] = 255
    crop, m = box_crop(rgb, tight_box(mask), 96, mask=mask)
    a, b = crop_box(96)
    assert crop.shape == (96, 96, 3) and m.shape == (96, 96)
    assert m[a + 1 : b - 1, a + 1 : b - 1].min() > 0.99  # inside the box: object
    assert m[: a - 1].max() < 0.01 and m[b + 1 :].max() < 0.01  # the margin: background
    assert (crop[..., 0] > 127).mean() == pytest.approx((m > 0.5).mean(), abs=0.01)


def test_box_crop_repeats_the_border_outside_the_photo():
    rgb = np.full((60, 60, 3), 80, np.uint8)
    rgb[:, 0] = 200  # the left column
    crop, _ = box_crop(rgb, (0, 10, 40, 50), 64)  # the margin reaches past the left edge
    a, _ = crop_box(64)
    assert crop[:, : a - 1, 0].min() == 200  # the left column repeated, not black
    assert MARGIN == 0.15


def test_parity_splits_a_source_into_two_disjoint_halves():
    src = {"kind": "msrc", "path": DATA / "cutouts" / "msrc_v2_animals"}
    every = [n for n, *_ in iter_instances(src)]
    even = [n for n, *_ in iter_instances(src | {"parity": "even"})]
    odd = [n for n, *_ in iter_instances(src | {"parity": "odd"})]
    assert even == every[0::2] and odd == every[1::2] and not set(even) & set(odd)
    assert len(every) > 60


def test_yolo_seg_and_coco_readers_give_the_polygon_masks(tmp_path):
    rgb = np.full((100, 120, 3), 90, np.uint8)
    (tmp_path / "images/train").mkdir(parents=True)
    (tmp_path / "labels/train").mkdir(parents=True)
    Image.fromarray(rgb).save(tmp_path / "images/train/a.jpg")
    # a 60 x 50 px rectangle, normalised; a line too short to be a polygon is skipped
    (tmp_path / "labels/train/a.txt").write_text("16 0.25 0.2 0.75 0.2 0.75 0.7 0.25 0.7\n3 0.1 0.1\n")
    (name, file, _, m, cat), = iter_instances({"kind": "yolo-seg", "path": tmp_path}, min_area=100)
    assert cat == "class16" and file.name == "a.jpg" and tight_box(m) == (30, 20, 91, 71)
    coco = {"images": [{"id": 1, "file_name": "train/a.jpg", "width": 120, "height": 100}],
            "categories": [{"id": 5, "name": "dog"}],
            "annotations": [{"id": 9, "image_id": 1, "category_id": 5, "iscrowd": 0, "area": 3000,
                             "segmentation": [[30, 20, 90, 20, 90, 70, 30, 70]], "bbox": [30, 20, 60, 50]}]}
    (tmp_path / "instances.json").write_text(json.dumps(coco))
    (name, _, _, m2, cat), = iter_instances({"kind": "coco", "path": tmp_path / "instances.json",
                                            "images_dir": tmp_path / "images"}, min_area=100)
    assert (name, cat) == ("coco:train/a.jpg#ann9", "dog") and m2.sum() == pytest.approx(m.sum(), rel=0.1)
    with pytest.raises(ValueError, match="`kind` must be one of"):
        next(iter_instances({"kind": "kitti", "path": tmp_path}))


def test_segmenter_config_needs_images_dir_for_coco_and_forbids_unknown_keys(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("sources: [{kind: coco, path: x.json}]\n")
    with pytest.raises(ConfigError, match="images_dir"):
        load_model(p, SegmenterConfig)
    p.write_text("sources: [{kind: weizmann, path: w}]\nepoch: 3\n")
    with pytest.raises(ConfigError, match="epoch"):
        load_model(p, SegmenterConfig)
    p.write_text("sources: [{kind: weizmann, path: w}]\nsize: 100\n")
    with pytest.raises(ConfigError, match="size"):
        load_model(p, SegmenterConfig)
    cfg = load_model(DATA.parents[1] / "configs" / "box_segmenter.yaml", SegmenterConfig)
    assert cfg.sources[0].path.is_absolute() and {s.parity for s in cfg.validation} == {"odd"}


def test_only_box_sources_take_a_segmenter(tmp_path):
    from typer.testing import CliRunner

    from roadsynth.cli import app
    from roadsynth.config import CutoutSource

    with pytest.raises(ValueError, match="only a `yolo` source takes one"):
        CutoutSource(kind="msrc", path=tmp_path, segmenter=tmp_path)
    assert CutoutSource(kind="yolo", path=tmp_path, segmenter=tmp_path).segmenter == tmp_path
    r = CliRunner().invoke(app, ["cutouts", str(DATA / "cutouts" / "msrc_v2_animals"), "--format", "msrc",
                                 "--segmenter", str(tmp_path), "--out", str(tmp_path / "bank")])
    assert r.exit_code == 2 and "has its own masks" in r.output and not (tmp_path / "bank").exists()
