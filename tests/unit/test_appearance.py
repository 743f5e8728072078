"""The appearance steps of a generation run (roadsynth/generate/appearance.py): vehicle restyle before insertion,
weather after it, each from its own random stream."""

import numpy as np

from roadsynth.generate.appearance import Appearance
from roadsynth.config import GenerateConfig
from roadsynth.datasets.io import load_image
from roadsynth.datasets.label_maps import read_label_map_frames
from tests.conftest import DATA

CAMVID = read_label_map_frames(DATA / "camvid" / "images", DATA / "camvid" / "road_labels",
                               object_values={8: "Car"})
SCENE = {"name": "camvid", "format": "label_maps", "path": str(DATA / "camvid" / "images")}


def config(**sections) -> GenerateConfig:
    return GenerateConfig.model_validate({"scenes": [SCENE], **sections})


def frame(i: int):
    im = CAMVID.images[i]
    return load_image(DATA / "camvid" / "images" / im.file_name), [a for a in CAMVID.annotations if a.image_id == im.id]


def test_weather_draws_a_condition_per_frame_seed_and_clear_leaves_the_frame_alone():
    rgb, anns = frame(0)
    weather = Appearance(config(weather={"conditions": {"fog": 1.0}, "severity": [2, 2]}), ["Car"])
    out, kept, tags = weather.apply_weather(rgb, anns, seed=5)
    again, _, tags2 = weather.apply_weather(rgb, anns, seed=5)
    assert tags == tags2 == {"condition": "fog", "severity": 2, **{k: v for k, v in tags.items()
                                                                   if k not in ("condition", "severity")}}
    assert np.array_equal(out, again) and np.abs(out.astype(int) - rgb).mean() > 3
    assert [a.bbox for a in kept] == [a.bbox for a in anns]  # pixel-level effects keep every box
    clear = Appearance(config(weather={"conditions": {"clear": 1.0}}), ["Car"])
    same, _, tags = clear.apply_weather(rgb, anns, seed=5)
    assert same is rgb and tags == {"condition": "clear"}
    off = Appearance(config(restyle={"styles": [{"name": "red", "color": [200, 0, 0]}], "frame_prob": 0.0}), ["Car"])
    assert off.apply_weather(rgb, anns, 5) == (rgb, anns, {})


def test_vehicle_restyle_runs_on_a_fraction_of_frames_and_changes_only_vehicles():
    styles = [{"name": "red", "color": [200, 20, 20]}]
    never = Appearance(config(restyle={"styles": styles, "categories": ["Car"], "frame_prob": 0.0}), ["Car"])
    always = Appearance(config(restyle={"styles": styles, "categories": ["Car"], "frame_prob": 1.0,
                                        "min_box_px": 10}), ["Car"])
    changed = 0
    for i in range(0, 64, 8):
        rgb, anns = frame(i)
        assert never.restyle_vehicles(rgb, anns, seed=i)[2] is None
        out, kept, record = always.restyle_vehicles(rgb, anns, seed=i)
        assert record is not None and len(kept) == len(anns)
        inside = np.zeros(rgb.shape[:2], bool)
        for a in anns:
            x1, y1, x2, y2 = (int(round(v)) for v in a.bbox.xyxy())
            inside[max(y1 - 2, 0):y2 + 2, max(x1 - 2, 0):x2 + 2] = True
        assert not (out != rgb).any(axis=2)[~inside].any()  # nothing outside the vehicles' boxes moves
        changed += len(record["edits"])
    assert changed >= 1
