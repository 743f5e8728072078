"""Fleet dashcam frames: the ego vehicle is never placed or drawn on, a failed drivable region is never
silently replaced, and frames without labels are pseudo-labelled or marked."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from roadsynth.config import ConfigError, load_config
from roadsynth.datasets.io import load_image
from roadsynth.datasets.records import Box, ImageRecord
from roadsynth.geometry import ego
from roadsynth.geometry.ego import EGO_KEY
from roadsynth.geometry.records import Placement
from tests.conftest import DATA, ROOT

DASH = DATA / "dashcam"


def config(tmp_path, **scene):
    """configs/dashcam.yaml without its detector (the unit layer runs without torch), changed by `scene`."""
    cfg = load_config(ROOT / "configs" / "dashcam.yaml").model_dump(mode="json")
    cfg["generate"]["scenes"][0].update({"pseudo_labels": None, **scene})
    cfg["generate"]["n_images"] = 12
    path = tmp_path / "dash.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_config(path)


def test_ego_masks_from_polygon_band_and_mask_folder(tmp_path):
    poly = ego.from_polygon([(0, 80), (100, 70), (100, 100), (0, 100)], 100, 100)
    assert poly.mask[90, 50] and not poly.mask[60, 50] and poly.source == "config-polygon"
    band = ego.bottom_band(0.2, 100, 50)
    assert band.mask[40:].all() and not band.mask[:40].any()
    m = ego.from_image(DASH / "ego_masks" / "bdd100k__cc97fab0-f9a08d07.png", 640, 360)  # half size, same aspect
    assert m.mask.shape == (360, 640) and m.mask[-1].all() and not m.mask[:300].any()
    with pytest.raises(ValueError, match="another aspect ratio"):
        ego.from_image(DASH / "ego_masks" / "bdd100k__cc97fab0-f9a08d07.png", 640, 640)


def test_ego_config_needs_exactly_one_source(tmp_path):
    cfg = load_config(ROOT / "configs" / "dashcam.yaml").model_dump(mode="json")
    cfg["generate"]["scenes"][0]["ego"] = {"bottom_frac": 0.2, "polygon": [[0, 0], [1, 1], [0, 1]]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="exactly one of polygon, bottom_frac, masks"):
        load_config(tmp_path / "c.yaml")


def test_a_frame_without_a_mask_file_has_no_ego_and_says_so_and_names_cannot_escape(tmp_path):
    from roadsynth.generate.scenes import ego_mask

    src = config(tmp_path).generate.scenes[0]
    none = ego_mask(src, ImageRecord(1, "road_obstacles_v2__loc1_storm.jpg", 960, 540), 960, 540)
    assert not none.any and "no mask file" in none.reason
    with pytest.raises(ValueError, match="outside"):
        ego_mask(src, ImageRecord(1, "../../../etc/passwd", 960, 540), 960, 540)


def test_nothing_is_placed_or_drawn_on_the_ego_vehicle(tmp_path):
    from roadsynth.generate import generate_dataset

    cfg = config(tmp_path)
    out = tmp_path / "out"
    ds = generate_dataset(cfg, out)
    by_image = ds.annotations_by_image()
    checked = 0
    for im in ds.images:
        mask = ego.from_image(DASH / "ego_masks" / (im.attributes["background"][:-4] + ".png"), im.width, im.height) \
            if (DASH / "ego_masks" / (im.attributes["background"][:-4] + ".png")).exists() else None
        assert im.attributes["ego"]["source"] == ("config-mask" if mask else "none")
        assert im.attributes["labels_complete"] is False and im.attributes["labels_from"] == "none"
        for a in by_image[im.id]:
            p = a.provenance.params["placement"]
            if mask is None:
                continue
            x, y = p["contact"]
            assert not mask.mask[min(int(y), im.height - 1), min(int(x), im.width - 1)], (im.file_name, p)
            from pycocotools import mask as mask_utils

            rles = mask_utils.frPyObjects(a.segmentation, im.height, im.width)
            drawn = mask_utils.decode(mask_utils.merge(rles)).astype(bool)
            assert not (drawn & mask.mask).any(), im.file_name  # visible object pixels never on the bonnet
            checked += 1
    assert checked >= 5
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["images_without_complete_labels"] == len(ds.images)
    assert manifest["ego_sources"]["config-mask"] >= 8


def test_paste_never_changes_ego_pixels_even_with_a_shadow(bank):
    from roadsynth.generators.paste import PasteInserter

    frame = load_image(DASH / "images" / "bdd100k__cc97fab0-f9a08d07.jpg")
    h, w = frame.shape[:2]
    bonnet = ego.from_image(DASH / "ego_masks" / "bdd100k__cc97fab0-f9a08d07.png", w, h).mask
    top = int(np.argmax(bonnet[:, w // 2]))
    # A cow standing right at the bonnet's edge: its shadow and lower body would fall on the bonnet.
    p = Placement("cow", Box(w / 2 - 150, top - 180, 300, 200), (w / 2, top + 20))
    out, [r] = PasteInserter(bank).insert(frame, [p], np.random.default_rng(0), occluders={EGO_KEY: bonnet})
    assert (out[bonnet] == frame[bonnet]).all()
    assert r.__class__.__name__ == "Insertion" and not r.frame_mask(frame.shape)[bonnet].any()


@pytest.mark.slow  # three full generations (39 s): the integration layer's, not the fast layer's
def test_a_failed_region_is_skipped_listed_or_fails_the_run_never_silently_replaced(tmp_path):
    from roadsynth.generate import generate_dataset
    from roadsynth.geometry.regions import RegionError

    flat = tmp_path / "flat"
    flat.mkdir()
    import cv2

    for k in range(3):  # featureless frames: the flood fill takes the whole lower frame
        cv2.imwrite(str(flat / f"f{k}.png"), np.full((120, 160, 3), 90 + k, np.uint8))
    cfg = config(tmp_path, path=str(flat), ego=None, scene_regex=None)
    ds = generate_dataset(cfg.model_copy(update={"generate": cfg.generate.model_copy(update={"n_images": 3})}),
                          tmp_path / "skip")
    failures = json.loads((tmp_path / "skip" / "manifest.json").read_text())["failures"]
    assert len(ds.images) == 0 and len(failures) == 3
    assert all("drivable-region estimate failed" in f["error"] for f in failures)
    strict = config(tmp_path, path=str(flat), ego=None, scene_regex=None, region_failure="fail")
    with pytest.raises(RegionError, match="region_failure: fail"):
        generate_dataset(strict.model_copy(update={"generate": strict.generate.model_copy(update={"n_images": 3})}),
                         tmp_path / "fail")
    loose = config(tmp_path, path=str(flat), ego={"bottom_frac": 0.2}, scene_regex=None, region_failure="lower-image")
    ds = generate_dataset(loose.model_copy(update={"generate": loose.generate.model_copy(update={"n_images": 3})}),
                          tmp_path / "lower")
    assert len(ds.images) == 3
    assert all(im.attributes["region_source"].startswith("lower-image (fallback: drivable-region estimate failed")
               for im in ds.images)
    for a in ds.annotations:  # the explicit fallback still keeps off the ego band
        assert a.provenance.params["placement"]["contact"][1] < 0.8 * 120 + 1


def test_pseudo_labels_are_written_marked_and_never_covered(tmp_path, monkeypatch):
    from roadsynth.generate import generate_dataset
    from roadsynth.detectors.base import Prediction
    from roadsynth.generate.sources import PseudoLabeller

    # A stand-in detector (the real one is the Ultralytics adapter, tested with a trained model elsewhere):
    # one "car" in the middle of every frame.
    def fake(self, source_index, rgb):
        h, w = rgb.shape[:2]
        return [Prediction(0, 1, Box(w * 0.4, h * 0.55, w * 0.2, h * 0.15), 0.9, "car"),
                Prediction(0, 2, Box(0, 0, 9, 9), 0.9, "person"), Prediction(0, 1, Box(0, 0, 20, 20), 0.1, "car")]

    monkeypatch.setattr(PseudoLabeller, "__call__", fake)
    cfg = config(tmp_path, pseudo_labels={"weights": str(tmp_path / "w.pt"), "classes": {"car": "Car"},
                                          "min_score": 0.5})
    ds = generate_dataset(cfg, tmp_path / "out")
    cats = {c.name: c.id for c in ds.categories}
    pseudo = [a for a in ds.annotations if a.provenance and a.provenance.method == "pseudo-label"]
    assert len(pseudo) == len(ds.images) and all(a.category_id == cats["Car"] for a in pseudo)
    assert all(not a.generated and a.provenance.params["score"] == 0.9 for a in pseudo)
    assert all(im.attributes["labels_complete"] and im.attributes["labels_from"] == "pseudo-label" for im in ds.images)
    by_image = ds.annotations_by_image()
    for im in ds.images:
        car = next(a.bbox for a in by_image[im.id] if a in pseudo)
        for a in by_image[im.id]:
            if a.generated:
                assert a.bbox.intersection(car) <= 0.0 or a.provenance.params["placement"]["occluders"]


def test_experiment_refuses_generated_frames_with_unknown_objects_unless_told_to_warn(tmp_path):
    from roadsynth.datasets.records import Category, Dataset
    from roadsynth.experiment import check_labels_complete

    ds = Dataset((ImageRecord(1, "a.jpg", 10, 10, {"labels_complete": False}), ImageRecord(2, "b.jpg", 10, 10, {})),
                 (), (Category(1, "deer"),))
    with pytest.raises(ValueError, match="1 of 2 generated images come from frames whose existing objects"):
        check_labels_complete(ds, tmp_path, "refuse")
    assert check_labels_complete(ds, tmp_path, "warn") == 1
