import numpy as np
import pytest
import yaml

from roadsynth.datasets.coco import CocoFormatError, dataset_to_coco_dict, read_coco, write_coco
from roadsynth.datasets.io import save_image_atomic
from roadsynth.datasets.merge import merge_datasets
from roadsynth.datasets.records import Annotation, Box, Category, Dataset, ImageRecord, Provenance
from roadsynth.datasets.yolo import YoloFormatError, read_yolo, write_yolo_splits
from tests.conftest import DATA


def small_dataset() -> Dataset:
    return Dataset(
        images=(ImageRecord(1, "a.jpg", 40, 30, {"scene": "s1"}), ImageRecord(2, "b.jpg", 40, 30, {"scene": "s2"})),
        annotations=(
            Annotation(1, 1, 1, Box(1, 2, 10, 8)),
            Annotation(2, 2, 2, Box(5, 5, 20, 10), provenance=Provenance("paste", "msrc:x.jpg", 7, {"scale": 0.5})),
        ),
        categories=(Category(1, "car"), Category(2, "deer")),
    )


def test_coco_roundtrip_keeps_provenance_and_attributes_and_is_byte_stable(tmp_path):
    ds = small_dataset()
    write_coco(ds, tmp_path / "a.json")
    back = read_coco(tmp_path / "a.json")
    assert back.annotations[1].provenance == Provenance("paste", "msrc:x.jpg", 7, {"scale": 0.5})
    assert back.images[0].attributes == {"scene": "s1"}
    assert back.annotations[0].area == 80.0  # filled by the writer
    write_coco(back, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_read_coco_errors_name_file(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(CocoFormatError, match=r"bad.json: not valid JSON: .* line 1"):
        read_coco(p)
    p.write_text('{"images": [], "annotations": {}, "categories": []}')
    with pytest.raises(CocoFormatError, match="`annotations` must be a list"):
        read_coco(p)


def test_bundled_vehicles_yolo_reads_and_roundtrips(tmp_path):
    ds, root = read_yolo(DATA / "vehicles")
    assert len(ds.images) == 230 and [c.name for c in ds.categories][0] == "Ambulance"
    assert len({a.image_id for a in ds.annotations if a.category_id == 1}) == 28  # images with ambulances
    for a in ds.annotations[:50]:
        im = ds.images[a.image_id - 1]
        assert 0 <= a.bbox.x and a.bbox.x2 <= im.width + 1e-6
    data_yaml = write_yolo_splits({"train": (ds, root)}, tmp_path / "y", [c.name for c in ds.categories])
    meta = yaml.safe_load(data_yaml.read_text())
    assert meta["path"] == str((tmp_path / "y").resolve()) and meta["nc"] == 5
    back, _ = read_yolo(tmp_path / "y")
    # Written files are named by COCO id, so the order (and ids) are preserved.
    for a, b in zip(ds.annotations, back.annotations):
        assert a.category_id == b.category_id
        assert np.allclose(a.bbox.xywh(), b.bbox.xywh(), rtol=1e-5, atol=1e-3)


def test_yolo_bad_label_line_strict_and_lenient(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    (tmp_path / "data.yaml").write_text("names: [deer]\n")
    save_image_atomic(tmp_path / "images" / "x.jpg", np.zeros((10, 10, 3), np.uint8))
    (tmp_path / "labels" / "x.txt").write_text("0 0.5 0.5 0.2 0.2\n3 0.5 0.5 0.1 0.1\n")
    with pytest.raises(YoloFormatError, match=r"x.txt:2: class 3 out of range \[0, 1\)"):
        read_yolo(tmp_path)
    ds, _ = read_yolo(tmp_path, strict=False)
    assert len(ds.annotations) == 1 and "x.txt:2" in ds.info["problems"][0]


def test_merge_matches_categories_by_name_and_remaps_ids():
    a = small_dataset()
    b = Dataset((ImageRecord(1, "g.jpg", 40, 30),), (Annotation(9, 1, 5, Box(0, 0, 5, 5)),), (Category(5, "Deer"),))
    m = merge_datasets([(a, "real"), (b, "generated")])
    assert [c.name for c in m.categories] == ["car", "deer"]
    assert [im.file_name for im in m.images] == ["real/a.jpg", "real/b.jpg", "generated/g.jpg"]
    assert [an.id for an in m.annotations] == [1, 2, 3]
    assert m.annotations[2].image_id == 3 and m.annotations[2].category_id == 2
    assert dataset_to_coco_dict(m)["images"][2]["original_id"] == 1


def test_mask_polygons_rasterize_back_to_the_mask():
    import cv2
    from pycocotools import mask as mask_utils

    from roadsynth.datasets.coco import mask_polygons

    crop = np.zeros((50, 70), np.uint8)
    cv2.ellipse(crop, (25, 25), (20, 14), 0, 0, 360, 1, -1)  # an object
    cv2.rectangle(crop, (52, 10), (65, 40), 1, -1)  # a second visible piece (e.g. split by an occluder)
    crop[2, 2] = 1  # a speck: dropped
    origin = (100, 60)
    polys = mask_polygons(crop.astype(bool), origin)
    assert len(polys) == 2 and all(len(p) >= 6 and len(p) % 2 == 0 for p in polys)
    full = np.zeros((200, 240), bool)
    full[60:110, 100:170] = crop.astype(bool)
    full[62, 102] = False
    back = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, 200, 240))).astype(bool)
    iou = (back & full).sum() / (back | full).sum()
    assert iou > 0.9, iou  # contours through boundary-pixel centres lose about half a pixel all round
    ys, xs = np.nonzero(back)
    assert xs.min() >= 100 and ys.min() >= 60 and xs.max() < 170 and ys.max() < 110  # placed at the origin


def test_bundled_vehicle_sets_are_disjoint_and_the_starter_set_has_no_ambulance():
    pool, test, starter = (read_yolo(DATA / name)[0] for name in ("vehicles", "vehicles_test", "vehicles_starter"))
    names = [{im.file_name for im in ds.images} for ds in (pool, test, starter)]
    assert len(names[1]) == 120 and len(names[2]) == 257
    assert not (names[0] & names[1]) and not (names[0] & names[2]) and not (names[1] & names[2])
    assert len({a.image_id for a in test.annotations if a.category_id == 1}) == 45
    assert not any(a.category_id == 1 for a in starter.annotations)
