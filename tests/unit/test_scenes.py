"""Per-source and per-frame geometry from the config (roadsynth/generate/scenes.py): which ground model and which
drivable region a frame gets, and placement in both modes."""

import numpy as np
import pytest

from roadsynth.config import CameraConfig, SceneSource
from roadsynth.datasets.io import load_image
from roadsynth.datasets.label_maps import read_label_map_frames
from roadsynth.geometry.placement import ObjectRequest, PlacementConfig
from roadsynth.generate.scenes import SceneFrame, fit_source_camera, ground_model, ground_region, place_for_frame
from tests.conftest import DATA

CAMVID = read_label_map_frames(DATA / "camvid" / "images", DATA / "camvid" / "road_labels", object_values={8: "Car"})
SOURCE = SceneSource(name="camvid", format="label_maps", path=DATA / "camvid" / "images",
                     label_maps=DATA / "camvid" / "road_labels", camera=CameraConfig(fit=True, height_m=1.3))


def frame(i: int = 0):
    im = CAMVID.images[i]
    boxes = [(a.id, a.bbox) for a in CAMVID.annotations if a.image_id == im.id]
    return SceneFrame(im, im.width, im.height, boxes, [("Car", b) for _, b in boxes]), load_image(
        DATA / "camvid" / "images" / im.file_name)


def test_ground_model_prefers_intrinsics_then_horizon_then_fit_then_fallback():
    cam = CameraConfig(fx=500, fy=500, cx=240, cy=180, height_m=1.3, pitch_deg=2)
    assert ground_model(cam, 480, 360).describe()["model"] == "pinhole"
    m = ground_model(CameraConfig(horizon_frac=0.5, height_m=1.3), 480, 360)
    assert m.horizon_row == 180 and m.source == "camera-config"
    fit = fit_source_camera(CAMVID, SOURCE.camera)
    assert fit is not None and fit.ok, fit
    assert ground_model(SOURCE.camera, 480, 360, fit).source == fit.model.source
    fallback = ground_model(CameraConfig(fallback_horizon_frac=0.4), 480, 360, None)
    assert fallback.source == "fallback" and fallback.horizon_row == pytest.approx(144)


def test_no_fit_when_the_camera_is_given_or_the_frames_disagree_in_size():
    assert fit_source_camera(CAMVID, CameraConfig(horizon_frac=0.5)) is None
    mixed = CAMVID.with_(images=(CAMVID.images[0], CAMVID.images[1].__class__(
        CAMVID.images[1].id, "x.jpg", 640, 480, {})) + CAMVID.images[2:])
    res = fit_source_camera(mixed, CameraConfig(fit=True))
    assert not res.ok and "different sizes" in res.reason


def test_ground_region_comes_from_the_label_map_then_the_polygon_then_the_estimate():
    fr, rgb = frame()
    cam = ground_model(CameraConfig(horizon_frac=0.47, height_m=1.3), fr.width, fr.height)
    assert ground_region(fr, SOURCE, cam, rgb).source == "annotation"
    unlabelled = SceneFrame(fr.record.__class__(fr.record.id, fr.record.file_name, fr.width, fr.height, {}),
                            fr.width, fr.height, fr.boxes)
    poly = SOURCE.model_copy(update={"camera": CameraConfig(ground_polygon=[(0, 359), (479, 359), (240, 200)])})
    region = ground_region(unlabelled, poly, cam, rgb)
    assert region.source == "config" and region.contains(240, 350) and not region.contains(10, 210)
    est = ground_region(unlabelled, SOURCE, cam, rgb)
    assert est.source in ("estimate", "lower-image") and not est.mask[: int(cam.horizon_row)].any()


def test_place_for_frame_geometry_mode_uses_the_road_and_random_mode_ignores_it():
    fr, rgb = frame(8)
    cam = ground_model(CameraConfig(horizon_frac=0.47, height_m=1.3), fr.width, fr.height)
    region = ground_region(fr, SOURCE, cam, rgb)
    reqs = [ObjectRequest("deer"), ObjectRequest("cow")]
    placed, _, side = place_for_frame(fr, cam, region, reqs, np.random.default_rng(0), PlacementConfig(roadside_prob=0.5))
    assert placed and side is not None and all(p.region_source.startswith("annotation") for p in placed)
    placed, _, side = place_for_frame(fr, cam, region, reqs, np.random.default_rng(0), PlacementConfig(mode="random"))
    assert placed and side is None and all(p.scale_source == "random" for p in placed)
