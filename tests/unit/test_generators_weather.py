"""Weather conditions (albumentations 2.x) on a real bundled frame: labels survive, nothing lost silently."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from roadsynth.config import ConfigError, load_config
from roadsynth.datasets.io import load_image
from roadsynth.datasets.records import Annotation, Box
from roadsynth.generators.weather import CONDITIONS, WeatherRestyler
from tests.conftest import DATA

FRAME = DATA / "camvid" / "images" / "0016E5_04440.jpg"


@pytest.fixture(scope="module")
def frame():
    return load_image(FRAME)


def anns(w: int, h: int) -> list[Annotation]:
    return [
        Annotation(1, 1, 1, Box(10, 10, 50, 40)),
        Annotation(2, 1, 2, Box(200.5, 180.25, 80.75, 60.5), attributes={"occluded": False}),
        Annotation(3, 1, 1, Box(w - 20, h - 30, 50, 60)),  # runs past the bottom-right corner
        Annotation(4, 1, 1, Box(w + 5, 5, 10, 10)),  # entirely outside
    ]


@pytest.mark.parametrize("condition", CONDITIONS)
@pytest.mark.parametrize("severity", [1, 2, 3])
def test_every_condition_keeps_labels_and_changes_pixels(frame, condition, severity):
    H, W = frame.shape[:2]
    with warnings.catch_warnings():
        # albumentations 2.x ignores unknown (1.x-style) argument names with a UserWarning: make that fail.
        warnings.simplefilter("error")
        out = WeatherRestyler(condition, severity).restyle(frame, anns(W, H), np.random.default_rng(3))
    assert out.image.shape == frame.shape and out.image.dtype == np.uint8
    diff = np.abs(out.image.astype(int) - frame).mean()
    assert diff > 1.0, f"{condition}/{severity} barely changed the frame (mean |diff| {diff:.2f})"
    by_id = {a.id: a for a in out.annotations}
    assert by_id[1] == anns(W, H)[0] and by_id[2] == anns(W, H)[1]  # in-frame boxes exactly as they were
    assert by_id[3].bbox == Box(W - 20, H - 30, 20, 30) and by_id[3].attributes["clipped"] is True
    assert [r["annotation_id"] for r in out.rejected] == [4] and "outside the frame" in out.rejected[0]["reason"]
    assert out.tags["condition"] == condition and out.tags["severity"] == severity


def test_severity_orders_the_strength_of_an_effect(frame):
    rng = lambda: np.random.default_rng(0)  # noqa: E731
    dark = [WeatherRestyler("night", s).restyle(frame, [], rng()).image.mean() for s in (1, 2, 3)]
    assert dark[0] > dark[1] > dark[2] and dark[0] < frame.mean()
    fog = [np.abs(WeatherRestyler("fog", s).restyle(frame, [], rng()).image.astype(int) - frame).mean() for s in (1, 3)]
    assert fog[1] > fog[0]


def test_same_seed_same_frame(frame):
    a = WeatherRestyler("rain", 2).restyle(frame, [], np.random.default_rng(5)).image
    b = WeatherRestyler("rain", 2).restyle(frame, [], np.random.default_rng(5)).image
    c = WeatherRestyler("rain", 2).restyle(frame, [], np.random.default_rng(6)).image
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("kwargs, message", [
    ({"condition": "hail"}, "`condition` must be one of rain, fog, snow, sun_flare, shadow, night, overcast, but got 'hail'"),
    ({"condition": "fog", "severity": 4}, "`severity` must be 1, 2 or 3, but got 4"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError) as e:
        WeatherRestyler(**kwargs)
    assert str(e.value) == message


def _weather_config(tmp_path, weather: str, n: int = 6):
    p = tmp_path / "weather.yaml"
    p.write_text(f"""
name: weather
generate:
  seed: 2
  n_images: {n}
  chunk_size: 4
  scenes:
  - {{name: camvid, format: label_maps, path: {DATA}/camvid/images, label_maps: {DATA}/camvid/road_labels,
     object_values: {{8: Car}}, camera: {{horizon_frac: 0.47, height_m: 1.3}}}}
  weather: {weather}
""")
    return p


def test_config_rejects_unknown_conditions(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(_weather_config(tmp_path, "{conditions: {hail: 1.0}}"))
    assert "`weather.conditions` must be among rain, fog, snow, sun_flare, shadow, night, overcast, clear" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config(_weather_config(tmp_path, "{conditions: {fog: 1.0}, method: diffusion}"))
    assert "needs a `weather.diffusion` section" in str(e.value)


def test_restyle_cli_weather_only_keeps_every_label_and_tags_conditions(tmp_path):
    from typer.testing import CliRunner

    from roadsynth.cli import app
    from roadsynth.datasets.coco import read_coco
    from roadsynth.datasets.label_maps import read_label_map_frames

    cfg = _weather_config(tmp_path, "{conditions: {clear: 1.0, rain: 1.0, fog: 1.0, night: 1.0}, severity: [2, 3]}")
    r = CliRunner().invoke(app, ["restyle", str(cfg), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    ds = read_coco(tmp_path / "out" / "annotations.json")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert len(ds.images) == 6 and sum(manifest["conditions"].values()) == 6 and len(manifest["conditions"]) >= 2
    src = read_label_map_frames(DATA / "camvid" / "images", DATA / "camvid" / "road_labels", object_values={8: "Car"})
    src_boxes = {im.file_name: sorted(a.bbox.xywh() for a in src.annotations if a.image_id == im.id) for im in src.images}
    by_image = ds.annotations_by_image()
    for im in ds.images:
        assert im.attributes["condition"] in {"clear", "rain", "fog", "night"}
        assert im.attributes["condition"] == "clear" or im.attributes["severity"] in (2, 3)
        # Every label of the background frame is there, box for box (the CamVid boxes lie inside the frame).
        assert sorted(a.bbox.xywh() for a in by_image.get(im.id, [])) == src_boxes[im.attributes["background"]]
        assert all(a.provenance is None for a in by_image.get(im.id, []))
        rgb = load_image(tmp_path / "out" / "images" / im.file_name)
        orig = load_image(DATA / "camvid" / "images" / im.attributes["background"])
        changed = np.abs(rgb.astype(int) - orig).mean()
        assert (changed > 2.0) == (im.attributes["condition"] != "clear"), (im.attributes, changed)
    assert manifest["generated_objects"] == 0 and manifest["failures"] == []


def test_weather_after_insertion_keeps_inserted_objects_and_their_provenance(tmp_path):
    from roadsynth.datasets.coco import read_coco
    from roadsynth.generate import generate_dataset

    cfg_path = _weather_config(tmp_path, "{conditions: {fog: 1.0}, severity: [3, 3]}", n=3)
    cfg_path.write_text(cfg_path.read_text() + f"""
  cutouts: [{{kind: msrc, path: {DATA}/cutouts/msrc_v2_animals, categories: [cow]}}]
  insert: {{categories: {{cow: 1.0}}, objects_per_image: [2, 2]}}
""")
    cfg = load_config(cfg_path)
    plain = cfg.model_copy(update={"generate": cfg.generate.model_copy(update={"weather": None})})
    generate_dataset(cfg, tmp_path / "fog")
    generate_dataset(plain, tmp_path / "plain")
    fog, clear = read_coco(tmp_path / "fog" / "annotations.json"), read_coco(tmp_path / "plain" / "annotations.json")
    # Weather draws from its own random stream: the same objects land in the same places, then get fogged.
    assert [a.bbox for a in fog.annotations] == [a.bbox for a in clear.annotations]
    assert sum(a.generated for a in fog.annotations) >= 3
    assert all(im.attributes["condition"] == "fog" and im.attributes["severity"] == 3 for im in fog.images)
    for a, b in zip(fog.images, clear.images):
        x, y = (load_image(tmp_path / d / "images" / im.file_name).astype(int) for d, im in (("fog", a), ("plain", b)))
        assert np.abs(x - y).mean() > 5


def test_paint_restyle_recolours_inside_the_silhouette_only():
    from roadsynth.datasets.yolo import read_yolo
    from roadsynth.generators.restyle import PaintRestyler, Style
    from roadsynth.generators.verify import edge_fscore, outside_mask_identical

    ds, root = read_yolo(DATA / "vehicles")
    names = {c.id: c.name for c in ds.categories}
    by_image = ds.annotations_by_image()
    from roadsynth.generators.masks import grabcut_mask

    def paintable(i):  # a car big enough, whose box GrabCut can cut a silhouette from (this test is the paint's)
        rgb = load_image(root / i.file_name)
        return any(names[a.category_id] == "Car" and min(a.bbox.w, a.bbox.h) >= 60 and grabcut_mask(rgb, a.bbox)[1]
                   == "grabcut" for a in by_image.get(i.id, []))

    im = next(i for i in ds.images if any(names[a.category_id] == "Car" and min(a.bbox.w, a.bbox.h) >= 60
                                          for a in by_image.get(i.id, [])) and paintable(i))
    rgb, anns = load_image(root / im.file_name), by_image[im.id]
    red = Style("red", color=(180, 20, 25))
    out = PaintRestyler([red], names, categories=["Car"], min_box_px=60, max_objects=1).restyle(
        rgb, anns, np.random.default_rng(0))
    assert len(out.edits) == 1 and out.mask.any()
    assert outside_mask_identical(rgb, out.image, out.mask)[0]
    m = out.mask
    assert out.image[m][:, 0].astype(int).mean() > rgb[m][:, 0].astype(int).mean() + 10  # redder
    assert edge_fscore(rgb, out.image, m) > 0.7  # shading and outline kept
    edited = next(a for a in out.annotations if a.provenance is not None)
    assert edited.bbox == next(a for a in anns if a.id == edited.id).bbox and names[edited.category_id] == "Car"
    assert edited.provenance.params["style"] == "red" and edited.attributes["restyled"] == "red"
    with pytest.raises(ValueError, match="paint styles need a `color`"):
        PaintRestyler([Style("x", prompt="a classic car")], names)
    with pytest.raises(ValueError, match="paint styles keep the vehicle's category"):
        PaintRestyler([Style("ambulance-white", color=(240, 240, 240), category="Ambulance")], names)
