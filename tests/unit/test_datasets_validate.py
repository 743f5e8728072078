import copy
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roadsynth.datasets.io import save_image_atomic
from roadsynth.datasets.validate import validate_coco, validate_coco_file


@pytest.fixture
def good(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.jpg"):
        save_image_atomic(tmp_path / name, rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30},
                   {"id": 2, "file_name": "b.jpg", "width": 40, "height": 30}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10], "area": 100, "iscrowd": 0,
             "segmentation": [[1, 1, 11, 1, 11, 11]]},
            {"id": 2, "image_id": 2, "category_id": 1, "bbox": [0, 0, 40.5, 30], "area": 1215.0, "iscrowd": 0},
        ],
        "categories": [{"id": 1, "name": "deer"}],
    }
    return coco, tmp_path


def test_good_dataset_is_valid(good):
    coco, root = good
    assert validate_coco(coco, root) == []


def _truncate(root):
    data = (root / "a.jpg").read_bytes()
    (root / "a.jpg").write_bytes(data[: len(data) // 2])


BAD = [
    # (mutation, where, message substring)
    (lambda c, r: c["images"].append(dict(c["images"][0])), "image 1", "duplicate id"),
    (lambda c, r: c["annotations"][0].update(id=0), "annotation 0", "`id` must be positive"),
    (lambda c, r: c["categories"][0].update(id=-3), "category -3", "`id` must be positive"),
    (lambda c, r: c["annotations"][0].update(image_id=99), "annotation 1", "`image_id` 99 references no image"),
    (lambda c, r: c["annotations"][0].update(category_id=7), "annotation 1", "`category_id` 7 references no category"),
    (lambda c, r: c["images"][0].update(file_name="/etc/a.jpg"), "image 1 (/etc/a.jpg)", "`file_name` is absolute"),
    (lambda c, r: c["images"][0].update(file_name="x/../../a.jpg"), "image 1 (x/../../a.jpg)", "escapes the images root"),
    (lambda c, r: c["images"][0].update(file_name="missing.jpg"), "image 1 (missing.jpg)", "file not found"),
    (lambda c, r: (r / "a.jpg").write_bytes(b"not an image"), "image 1 (a.jpg)", "unreadable, truncated or corrupt"),
    (lambda c, r: _truncate(r), "image 1 (a.jpg)", "unreadable, truncated or corrupt"),
    (lambda c, r: c["images"][0].update(width=41), "image 1 (a.jpg)", "size mismatch: JSON says 41x30, file is 40x30"),
    (lambda c, r: c["annotations"][0].update(bbox=[1, 1, float("nan"), 3]), "annotation 1", "non-finite"),
    (lambda c, r: c["annotations"][0].update(bbox=[-5, 1, 3, 3]), "annotation 1", "starts outside the image"),
    (lambda c, r: c["annotations"][0].update(bbox=[1, 1, 0, 3]), "annotation 1", "zero or negative size"),
    (lambda c, r: c["annotations"][0].update(bbox=[30, 1, 20, 3]), "annotation 1", "extends outside the 40x30 image"),
    (lambda c, r: c["annotations"][0].update(bbox=[1, 1, 3]), "annotation 1", "`bbox` must be 4 numbers"),
    (lambda c, r: c["annotations"][0].pop("area"), "annotation 1", "`area` is missing"),
    (lambda c, r: c["annotations"][0].update(area="big"), "annotation 1", "`area` must be a finite non-negative number"),
    (lambda c, r: c["annotations"][0].pop("iscrowd"), "annotation 1", "`iscrowd` is missing"),
    (lambda c, r: c["annotations"][0].update(iscrowd=True), "annotation 1", "`iscrowd` must be 0 or 1"),
    (lambda c, r: c["annotations"][0].update(segmentation=[[1, 2, 3]]), "annotation 1", "even number (>= 6)"),
    (lambda c, r: c["annotations"][0].update(segmentation={"counts": "x"}), "annotation 1", "`size` and `counts`"),
    (lambda c, r: c["annotations"][0].update(iscrowd=1), "annotation 1", "iscrowd=1 expects an RLE"),
    (lambda c, r: c["annotations"].append("oops"), "annotation #2", "must be an object"),
    (lambda c, r: c.update(categories=None), "annotations", "`categories` must be a list"),
]


@pytest.mark.parametrize("mutate, where, message", BAD, ids=[b[2][:40] for b in BAD])
def test_each_problem_kind_is_reported_with_its_id(good, mutate, where, message):
    coco, root = good
    coco = copy.deepcopy(coco)
    mutate(coco, root)
    problems = validate_coco(coco, root)
    assert any(p.where == where and message in p.message for p in problems), [str(p) for p in problems]


def test_file_level_errors(tmp_path):
    (tmp_path / "x.json").write_text("{]")
    [p] = validate_coco_file(tmp_path / "x.json")
    assert p.where == str(tmp_path / "x.json") and "not valid JSON" in p.message
    [p] = validate_coco_file(tmp_path / "nope.json")
    assert p.message == "file not found"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True) | st.text(max_size=3),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation", "file_name",
                         "width", "height", "name", "images", "annotations", "categories"]), children, max_size=6),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_garbage_never_crashes(value):
    problems = validate_coco(value, None)
    assert isinstance(problems, list)
    json.dumps([str(p) for p in problems])
