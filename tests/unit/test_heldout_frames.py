"""benchmarks/heldout_frames.py: only frames the repository does not bundle, named and configured like the bundled ones."""

from __future__ import annotations

import importlib.util

import numpy as np
import yaml
from PIL import Image

from roadsynth.config import load_config
from tests.conftest import ROOT


def _module():
    spec = importlib.util.spec_from_file_location("heldout_frames", ROOT / "benchmarks" / "heldout_frames.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_heldout_frames_skip_bundled_ones_and_swap_only_the_paths(tmp_path):
    mod = _module()
    bundled_cam = sorted((ROOT / "data/sample/camvid/images").glob("*.jpg"))[0].name
    shared = tmp_path / "road_frames"
    for split, names in (("train", [bundled_cam, "0001TP_999999.jpg"]), ("val", []), ("test", [])):
        (shared / "camvid" / split).mkdir(parents=True)
        (shared / "camvid" / f"{split}annot").mkdir()
        for n in names:
            Image.new("RGB", (8, 8)).save(shared / "camvid" / split / n)
            Image.new("L", (8, 8)).save(shared / "camvid" / f"{split}annot" / n.replace(".jpg", ".png"))
    dad = shared / "dashcam" / "dad_dashcam_accident__smallcorgi_x" / "images"
    (dad / "000493").mkdir(parents=True)
    (dad / "000999").mkdir()
    Image.new("RGB", (8, 8)).save(dad / "000493" / "001.jpg")  # bundled as dad_dashcam_accident__000493__001.jpg
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(dad / "000999" / "002.png")

    out = tmp_path / "heldout"
    assert mod.camvid(shared / "camvid", out / "camvid") == 1
    assert sorted(p.name for p in (out / "camvid" / "images").iterdir()) == ["0001TP_999999.jpg"]
    assert (out / "camvid" / "road_labels" / "0001TP_999999.png").exists()
    assert mod.dashcam(shared / "dashcam", out / "dashcam") == 1
    assert [p.name for p in (out / "dashcam" / "images").iterdir()] == ["dad_dashcam_accident__000999__002.jpg"]

    for name, bundled in (("camvid", "animals.yaml"), ("dashcam", "dashcam.yaml")):
        cfg = mod.config(bundled, out / name, 1)
        path = out / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        loaded, original = load_config(path), load_config(ROOT / "configs" / bundled)
        scene = loaded.generate.scenes[0]
        assert len(loaded.generate.scenes) == 1 and scene.path == out / name / "images"
        assert loaded.generate.insert == original.generate.insert  # the matching under test is the bundled one
        assert [c.path for c in loaded.generate.cutouts] == [c.path for c in original.generate.cutouts]
        if name == "dashcam":  # no hand-drawn masks for these frames: a bottom band stands in for the bonnet
            assert scene.ego.model_dump(exclude_none=True) == {"bottom_frac": 0.3}
