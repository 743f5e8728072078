"""Automotive dataset formats in (KITTI, nuScenes, nuImages, BDD100K, Cityscapes) and out (COCO, YOLO)."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from roadsynth.cli import app
from roadsynth.datasets.registry import read_format
from roadsynth.datasets.records import Box
from tests.conftest import FIXTURES, ROOT


def test_kitti_boxes_attributes_ignore_regions_and_calibration(tmp_path):
    sp = read_format("kitti", FIXTURES / "kitti")
    ds = sp.dataset
    assert [im.file_name for im in ds.images] == ["000000.jpg", "000001.jpg", "000002.jpg", "000008.jpg"]
    names = {c.id: c.name for c in ds.categories}
    first = [a for a in ds.annotations if a.image_id == 2]
    assert [names[a.category_id] for a in first] == ["Truck", "Car", "Cyclist"]
    assert first[2].attributes["occluded"] == 3 and first[0].attributes["dimensions_m"] == [2.85, 2.63, 12.34]
    assert len(ds.images[1].attributes["ignore_regions"]) == 4  # the four DontCare boxes
    cam = ds.images[1].attributes["camera"]
    assert cam["fx"] == pytest.approx(721.5377) and cam["cy"] == pytest.approx(172.854) and cam["height_m"] == 1.65
    assert {c.name: c.supercategory for c in ds.categories}["Cyclist"] == "person"
    bad = tmp_path / "kitti"
    shutil.copytree(FIXTURES / "kitti", bad)
    (bad / "label_2" / "000002.txt").write_text("Deer 0 0 0 10 10 50 50 1 1 1 0 0 10 0\nCar 0 0 0 10 10 x 50\n")
    ds = read_format("kitti", bad, class_map={"Deer": "deer"}).dataset
    assert "deer" in [c.name for c in ds.categories]  # mapped, not dropped
    assert any("000002.txt:2" in p for p in ds.info["problems"])


def test_nuscenes_tables_project_the_3d_boxes_like_mmdetection3d_and_keep_the_camera():
    ds = read_format("nuscenes", FIXTURES / "nuscenes_tables").dataset
    derived = json.loads((FIXTURES / "nuscenes" / "calibration_and_boxes_derived.json").read_text())
    ref = [Box.from_xyxy(*b["bbox_xyxy"]) for b in derived["cameras"]["CAM_FRONT"]["boxes_2d"]]
    ious = [a.bbox.iou(r) for a, r in zip(ds.annotations, ref)]
    assert len(ds.annotations) == len(ref) == 47 and np.median(ious) > 0.99 and min(ious) > 0.85
    im = ds.images[0]
    assert im.attributes["channel"] == "CAM_FRONT" and im.attributes["camera"]["height_m"] == pytest.approx(1.511, 1e-3)
    assert abs(im.attributes["camera"]["pitch_deg"]) < 1 and im.attributes["timeofday"] == "daytime"
    assert "vehicle.car" in [c.name for c in ds.categories]
    assert not [p for p in ds.info["problems"] if "not one of the format's classes" in p]  # its own category table


def test_nuimages_keeps_its_own_boxes_attributes_and_log_conditions():
    ds = read_format("nuimages", FIXTURES / "nuimages_tables").dataset
    assert len(ds.annotations) == 47 and ds.images[0].attributes["timeofday"] == "night"
    cars = [a for a in ds.annotations if a.attributes.get("attributes") == ["vehicle.moving"]]
    assert cars and ds.images[0].attributes["camera"]["source"] == "nuimages-calib"
    assert not [p for p in ds.info["problems"] if "not one of the format's classes" in p]


def test_bdd100k_labels_conditions_unknown_classes_and_drivable_maps(tmp_path):
    root = FIXTURES / "bdd100k"
    maps = tmp_path / "drivable"
    maps.mkdir()
    lm = np.full((720, 1280), 2, np.uint8)
    lm[500:] = 0
    cv2.imwrite(str(maps / "caeb782d-4a20b7c4_drivable_id.png"), lm)
    ds = read_format("bdd100k", root / "labels" / "det_val.json", root / "images" / "100k" / "val",
                     drivable_maps=maps).dataset
    assert len(ds.images) == 2 and len(ds.annotations) == 7
    a = ds.images[0].attributes
    assert (a["weather"], a["timeofday"], a["scene_type"]) == ("snowy", "daytime", "city street")
    assert a["road_values"] == [0, 1] and a["label_map"].endswith("caeb782d-4a20b7c4_drivable_id.png")
    problems = "\n".join(ds.info["problems"])
    assert "'ambulance' is not one of the format's classes; kept" in problems and "missing-frame.jpg" in problems
    truncated = [x for x in ds.annotations if x.attributes.get("truncated")]
    assert len(truncated) == 2


def cityscapes_fixture(root):
    """A tiny Cityscapes folder in the official layout (drawn here: real Cityscapes data may not be shared)."""
    stem = "testcity_000000_000019"
    for sub in ("leftImg8bit", "gtFine", "camera"):
        (root / sub / "train" / "testcity").mkdir(parents=True)
    img = np.full((64, 128, 3), 120, np.uint8)
    img[40:] = 70  # road
    img[20:40, 30:60] = (200, 30, 30)  # a car
    cv2.imwrite(str(root / "leftImg8bit" / "train" / "testcity" / f"{stem}_leftImg8bit.png"), img[..., ::-1])
    ids = np.full((64, 128), 11, np.uint8)  # building
    ids[40:] = 7  # road
    ids[58:] = 1  # ego vehicle (the bonnet)
    ids[20:40, 30:60] = 26  # car
    cv2.imwrite(str(root / "gtFine" / "train" / "testcity" / f"{stem}_gtFine_labelIds.png"), ids)
    polys = {"imgHeight": 64, "imgWidth": 128, "objects": [
        {"label": "road", "polygon": [[0, 40], [127, 40], [127, 63], [0, 63]]},
        {"label": "car", "polygon": [[30, 20], [59, 20], [59, 39], [30, 39]]},
        {"label": "cargroup", "polygon": [[80, 25], [100, 25], [100, 38], [80, 38]]},
        {"label": "dragon", "polygon": [[1, 1], [5, 1], [5, 5]]},
    ]}
    (root / "gtFine" / "train" / "testcity" / f"{stem}_gtFine_polygons.json").write_text(json.dumps(polys))
    cam = {"extrinsic": {"baseline": 0.21, "pitch": 0.038, "roll": 0.0, "yaw": 0.0, "x": 1.7, "y": 0.1, "z": 1.22},
           "intrinsic": {"fx": 141.4, "fy": 141.4, "u0": 68.5, "v0": 32.1}}
    (root / "camera" / "train" / "testcity" / f"{stem}_camera.json").write_text(json.dumps(cam))
    return root


def test_cityscapes_polygons_road_ego_and_camera(tmp_path):
    ds = read_format("cityscapes", cityscapes_fixture(tmp_path / "cs")).dataset
    # Road is a region, not a box; dragon is no Cityscapes label at all: kept under its own name and reported.
    assert [c.name for c in ds.categories] == ["car", "dragon"]
    assert any("class 'dragon' is not one of the format's classes" in p for p in ds.info["problems"])
    car, group, _ = ds.annotations
    assert car.bbox.xyxy() == (30.0, 20.0, 59.0, 39.0) and car.segmentation and group.iscrowd == 1
    a = ds.images[0].attributes
    assert a["camera"]["height_m"] == 1.22 and a["camera"]["pitch_deg"] == pytest.approx(2.177, 1e-3)
    assert a["road_values"] == [7] and a["ego_values"] == [1] and a["city"] == "testcity"


def test_calibration_and_label_maps_reach_the_geometry(tmp_path):
    """A Cityscapes scene source: road from its label map, ego vehicle from its labels, size from its camera."""
    from roadsynth.config import load_config
    from roadsynth.generate import generate_dataset

    root = cityscapes_fixture(tmp_path / "cs")
    cfg = yaml.safe_load((ROOT / "configs" / "animals.yaml").read_text())
    cfg["generate"]["scenes"] = [{"name": "cs", "format": "cityscapes", "path": str(root)}]
    cfg["generate"]["cutouts"] = [{"kind": "weizmann", "path": str(ROOT / "data/sample/cutouts/weizmann_horse")}]
    cfg["generate"]["insert"]["categories"] = {"horse": 1.0}
    cfg["generate"]["placement"] = {"min_pixel_height": 4, "min_distance_m": 1.0}
    cfg["generate"].update(n_images=3, chunk_size=3)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    ds = generate_dataset(load_config(tmp_path / "c.yaml"), tmp_path / "out")
    im = ds.images[0]
    assert im.attributes["camera"]["source"] == "calibration" and im.attributes["region_source"] == "annotation"
    assert im.attributes["ego"]["source"] == "label-map"
    placed = [a.provenance.params["placement"] for a in ds.annotations if a.generated]
    assert placed and all(p["scale_source"] == "calibration" and 40 <= p["contact"][1] < 58 for p in placed)


def test_import_options_and_reader_problems_on_the_command_line(tmp_path):
    root = cityscapes_fixture(tmp_path / "cs")
    r = CliRunner().invoke(app, ["import", "cityscapes", str(root), "--out", str(tmp_path / "c"),
                                 "--class-map", "dragon=animal"])
    assert r.exit_code == 0, r.output
    assert [c["name"] for c in json.loads((tmp_path / "c" / "annotations.json").read_text())["categories"]] == \
        ["car", "animal"]
    r = CliRunner().invoke(app, ["import", "cityscapes", str(root), "--out", str(tmp_path / "d")])
    assert r.exit_code == 0 and "1 items the reader skipped or kept with a warning" in r.output
    assert "class 'dragon' is not one of the format's classes" in r.output
    r = CliRunner().invoke(app, ["import", "cityscapes", str(root), "--out", str(tmp_path / "e"), "--split", "val"])
    assert r.exit_code != 0 and "leftImg8bit/val) not found" in r.output
    r = CliRunner().invoke(app, ["import", "kitti", str(root), "--out", str(tmp_path / "f"), "--version", "v1.0"])
    assert r.exit_code == 2 and "`version` applies to format nuscenes / nuimages only, but format is kitti" in r.output
    r = CliRunner().invoke(app, ["import", "cityscapes", str(root), "--out", str(tmp_path / "g"), "--class-map", "x"])
    assert r.exit_code == 2 and "`--class-map` must look like SOURCE=NAME, but got 'x'" in r.output


def test_an_imported_cityscapes_uses_its_label_maps_once_the_config_declares_their_folder(tmp_path):
    root = cityscapes_fixture(tmp_path / "cs")
    assert CliRunner().invoke(app, ["import", "cityscapes", str(root), "--out", str(tmp_path / "c")]).exit_code == 0
    path = horses_on_imported(tmp_path / "c", tmp_path / "c.yaml", 2)
    # The imported COCO names label maps in the Cityscapes tree: not opened until the config vouches for it.
    r = CliRunner().invoke(app, ["generate", str(path), "--out", str(tmp_path / "refused")])
    assert r.exit_code == 2 and "no image was made" in r.output, r.output
    assert "declare the folder that holds it as the scene source's `label_maps`" in r.output
    cfg = yaml.safe_load(path.read_text())
    cfg["generate"]["scenes"][0]["label_maps"] = str(root / "gtFine")
    cfg["generate"]["placement"] = {"min_pixel_height": 4, "min_distance_m": 1.0}
    path.write_text(yaml.safe_dump(cfg))
    r = CliRunner().invoke(app, ["generate", str(path), "--out", str(tmp_path / "gen")])
    assert r.exit_code == 0, r.output
    im = json.loads((tmp_path / "gen" / "annotations.json").read_text())["images"][0]
    assert im["region_source"] == "annotation" and im["ego"]["source"] == "label-map"


def horses_on_imported(imported, path, n):
    """A config that pastes horses on the frames of an imported (COCO) folder, sized by their calibration."""
    cfg = yaml.safe_load((ROOT / "configs" / "animals.yaml").read_text())
    cfg["generate"]["scenes"] = [{"name": "imported", "format": "coco", "path": str(imported / "annotations.json"),
                                  "images_root": str(imported / "images"), "region_failure": "lower-image"}]
    cfg["generate"]["cutouts"] = [{"kind": "weizmann", "path": str(ROOT / "data/sample/cutouts/weizmann_horse")}]
    cfg["generate"]["insert"]["categories"] = {"horse": 1.0}
    cfg["generate"].update(n_images=n, chunk_size=4)
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_import_then_generate_sizes_objects_by_the_kitti_calibration(tmp_path):
    from roadsynth.config import load_config
    from roadsynth.generate import generate_dataset

    r = CliRunner().invoke(app, ["import", "kitti", str(FIXTURES / "kitti"), "--out", str(tmp_path / "k")])
    assert r.exit_code == 0, r.output
    raw = json.loads((tmp_path / "k" / "annotations.json").read_text())
    assert raw["images"][1]["camera"]["source"] == "kitti-calib"
    assert all("segmentation" in a for a in raw["annotations"])
    ds = generate_dataset(load_config(horses_on_imported(tmp_path / "k", tmp_path / "c.yaml", 4)), tmp_path / "gen")
    placed = [a.provenance.params["placement"] for a in ds.annotations if a.generated]
    assert placed and {p["scale_source"] for p in placed} == {"calibration"}
    for p in placed:  # a 1.6 m horse at distance d through KITTI's fy = 721.5: about 721.5 * 1.6 / d px tall
        assert p["params"]["pixel_height"] == pytest.approx(721.5377 * p["real_height_m"] / p["distance_m"], rel=0.1)


def test_exports_are_standard_coco_and_an_ultralytics_folder(tmp_path):
    from pycocotools.coco import COCO

    src = tmp_path / "ds"
    (src / "images").mkdir(parents=True)
    shutil.copy(FIXTURES / "kitti" / "image_2" / "000001.jpg", src / "images" / "a.jpg")
    shutil.copy(FIXTURES / "kitti" / "image_2" / "000002.jpg", src / "images" / "b.jpg")
    coco = {"images": [{"id": 1, "file_name": "a.jpg", "width": 1242, "height": 375, "background_path": "/home/x/a.png",
                        "scene": "a"},
                       {"id": 2, "file_name": "b.jpg", "width": 1242, "height": 375, "scene": "b"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 40], "area": 2000,
                             "iscrowd": 0, "segmentation": [[10, 10, 60, 10, 60, 50, 10, 50]]},
                            {"id": 2, "image_id": 2, "category_id": 2, "bbox": [100, 100, 40, 30], "area": 1200,
                             "iscrowd": 0, "provenance": {"method": "paste", "source": "x", "seed": 1}}],
            "categories": [{"id": 1, "name": "Ambulance"}, {"id": 2, "name": "ambulance"}]}
    (src / "annotations.json").write_text(json.dumps(coco))
    run = CliRunner().invoke
    assert run(app, ["export", str(src), "--format", "coco", "--out", str(tmp_path / "c")]).exit_code == 0
    out = json.loads((tmp_path / "c" / "annotations.json").read_text())
    assert set(out) == {"info", "licenses", "images", "annotations", "categories"} and out["licenses"]
    assert out["categories"] == [{"id": 1, "name": "Ambulance", "supercategory": "vehicle"}]  # one class, not two
    assert all("segmentation" in a and a["category_id"] == 1 for a in out["annotations"])
    assert "background_path" not in out["images"][0] and (tmp_path / "c" / "images" / "a.jpg").is_file()
    assert not (tmp_path / "c" / "images" / "a.jpg").is_symlink()
    assert len(COCO(str(tmp_path / "c" / "annotations.json")).getAnnIds()) == 2
    # The file-only form writes the same standard dict (the images stay where they are).
    assert run(app, ["export", str(src), "--format", "coco", "--out", str(tmp_path / "only.json")]).exit_code == 0
    assert json.loads((tmp_path / "only.json").read_text()) == out
    r = run(app, ["export", str(src), "--format", "yolo", "--out", str(tmp_path / "y"), "--task", "segment"])
    assert r.exit_code == 0, r.output
    meta = yaml.safe_load((tmp_path / "y" / "data.yaml").read_text())
    assert meta["names"] == ["Ambulance"] and meta["nc"] == 1
    lines = [ln for p in (tmp_path / "y" / "labels").rglob("*.txt") for ln in p.read_text().splitlines()]
    assert len(lines) == 2 and all(len(ln.split()) == 9 for ln in lines)  # polygon, and a box's rectangle
    assert len(list((tmp_path / "y" / "images" / "val").iterdir())) == 1  # a val split even for two images
