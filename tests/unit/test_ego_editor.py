"""The ego editor: a polygon clicked on a frame becomes its scene source's `ego`, in a config beside the
user's (never rewriting theirs), and generation from that config keeps objects off it."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from roadsynth.config import load_config
from roadsynth.config.edit import MARK, ego_config_path, with_ego_polygon
from tests.conftest import DATA

FRAME = "comma_speedchallenge__source-image"  # a bonnet across the bottom of the frame


def user_config(folder):
    (folder / "frames").mkdir(parents=True)
    shutil.copy(DATA / "dashcam" / "images" / f"{FRAME}.jpg", folder / "frames")
    path = folder / "animals.yaml"
    path.write_text(f"""# my config: comments are mine
name: ego-test
generate:
  seed: 0
  n_images: 3
  scenes:
    - name: dash
      format: folder
      path: frames            # relative to this file
      camera: {{horizon_frac: 0.47, height_m: 1.3}}
  cutouts:
    - {{kind: weizmann, path: {DATA / 'cutouts' / 'weizmann_horse'}}}
  insert:
    method: paste
    categories: {{horse: 1.0}}
    objects_per_image: [2, 2]
""")
    return path


def clicked_outline() -> tuple[list[tuple[float, float]], np.ndarray]:
    """The hand-drawn bonnet mask's outline, as a person would click it, and the mask."""
    with Image.open(DATA / "dashcam" / "ego_masks" / f"{FRAME}.png") as im:
        m = (np.asarray(im.convert("L")) > 0).astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    c = max(contours, key=cv2.contourArea)
    return [tuple(map(float, p)) for p in cv2.approxPolyDP(c, 2.0, True).reshape(-1, 2)], m.astype(bool)


def test_a_drawn_polygon_is_saved_beside_the_config_and_generation_uses_it(tmp_path):
    from roadsynth.generate import generate_dataset
    from roadsynth.review import Studio

    cfg_path = user_config(tmp_path / "cfg")
    original = cfg_path.read_text()
    studio = Studio(load_config(cfg_path), tmp_path / "session", config_path=cfg_path)
    points, truth = clicked_outline()
    assert len(points) >= 3
    before = studio.ego_view(0, points[:2])
    written = studio.save_ego(0, points)
    assert written == ego_config_path(cfg_path) == tmp_path / "cfg" / "animals.ego.yaml"
    assert cfg_path.read_text() == original  # the user's file is theirs
    assert written.read_text().startswith(MARK)
    cfg = load_config(written)
    assert cfg.generate.scenes[0].ego.polygon is not None and cfg.generate.scenes[0].ego_warning is None
    assert str(cfg.generate.scenes[0].path) == str((tmp_path / "cfg" / "frames").resolve())
    assert studio.cfg.generate.scenes[0].ego is not None  # the UI's next samples use it
    after = studio.ego_view(0, [])
    assert (after[truth] != before[truth]).any()  # the saved mask is shaded now

    out = tmp_path / "run"
    generate_dataset(cfg, out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["ego_warnings"] == [] and manifest["ego_sources"] == {"config-polygon": 3}
    anns = json.loads((out / "annotations.json").read_text())["annotations"]
    placed = [a for a in anns if "provenance" in a]
    assert placed
    for a in placed:  # every object's ground contact point is off the bonnet
        x, y, w, h = a["bbox"]
        assert not truth[min(int(y + h), truth.shape[0] - 1), min(int(x + w / 2), truth.shape[1] - 1)]


def test_the_editor_refuses_what_it_cannot_save(tmp_path):
    cfg_path = user_config(tmp_path / "cfg")
    with pytest.raises(ValueError, match="no scene source named 'camvid'"):
        with_ego_polygon(cfg_path, "camvid", [(0, 0), (10, 0), (10, 10)])
    with pytest.raises(ValueError, match="at least 3 points, but got 2"):
        with_ego_polygon(cfg_path, "dash", [(0, 0), (10, 0)])
    theirs = ego_config_path(cfg_path)
    theirs.write_text("# the user's own file of that name\n")
    with pytest.raises(ValueError, match="was not written by roadsynth; refusing to overwrite it"):
        with_ego_polygon(cfg_path, "dash", [(0, 400), (640, 400), (640, 480)])
    assert theirs.read_text() == "# the user's own file of that name\n"
    theirs.unlink()
    first = with_ego_polygon(cfg_path, "dash", [(0, 400), (640, 400), (640, 480)])
    again = with_ego_polygon(first, "dash", [(0, 380), (640, 380), (640, 480), (0, 480)])  # edited again in place
    assert again == first and load_config(again).generate.scenes[0].ego.polygon[0] == (0.0, 380.0)


def test_the_ui_session_is_an_interactive_generation_run_that_survives_a_restart(tmp_path):
    from roadsynth.generate.run import GenerationRun
    from roadsynth.review import Studio

    cfg_path = user_config(tmp_path / "cfg")
    studio = Studio(load_config(cfg_path), tmp_path / "session", config_path=cfg_path)
    assert isinstance(studio.run, GenerationRun) and studio.samples == 0
    first = studio.generate(0, 1, "Paste")
    studio.generate(0, 2, "Paste")
    assert studio.samples == 2 and len(first.dataset.images) == 1
    again = Studio(load_config(cfg_path), tmp_path / "session", config_path=cfg_path)  # the UI restarted
    assert again.samples == 2
    review = again.generate(0, 1, "Original")
    assert len(review.dataset.images) == 3
    assert (tmp_path / "session" / "config.yaml").is_file() and (tmp_path / "session" / "manifest.json").is_file()
    planned = GenerationRun(load_config(cfg_path), tmp_path / "planned")
    with pytest.raises(ValueError, match="`add` is for interactive runs"):
        planned.add(None, [])
