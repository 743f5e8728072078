"""Scene sources as generation reads them (roadsynth/generate/sources.py): bad records are dropped and reported."""

import json


def test_coco_scene_source_drops_bad_records_and_reports_them(tmp_path):
    from roadsynth.config import SceneSource
    from roadsynth.generate.sources import load_scene_source

    coco = {"images": [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30},
                       {"id": 2, "file_name": "../escape.jpg", "width": 40, "height": 30}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0},
                            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [1, 1, "x", 5], "area": 25, "iscrowd": 0},
                            {"id": 3, "image_id": 2, "category_id": 1, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0}],
            "categories": [{"id": 1, "name": "car"}]}
    (tmp_path / "a.json").write_text(json.dumps(coco))
    ds, _ = load_scene_source(SceneSource(name="c", format="coco", path=tmp_path / "a.json", images_root=tmp_path))
    assert [im.id for im in ds.images] == [1] and [a.id for a in ds.annotations] == [1]
    errors = " | ".join(p["error"] for p in ds.info["problems"])
    assert "annotation 2: `bbox` must be 4 numbers" in errors and "escapes the images root" in errors
