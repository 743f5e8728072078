"""The review UI's data side (roadsynth/review.py): what it may read."""

import json
import shutil

from tests.conftest import ROOT


def test_review_shows_original_frames_only_from_the_users_scene_folders(tmp_path):
    """A dataset's own files are data: a crafted background_path (or config.yaml) cannot make the UI read elsewhere."""
    from roadsynth.config import load_config
    from roadsynth.generate import generate_dataset
    from roadsynth.review import Review

    cfg = load_config(ROOT / "configs" / "animals.yaml")
    cfg = cfg.model_copy(update={"generate": cfg.generate.model_copy(update={"n_images": 1, "chunk_size": 1})})
    generate_dataset(cfg, tmp_path / "gen")
    roots = tuple(s.path.resolve() for s in cfg.generate.scenes)
    assert Review(tmp_path / "gen", roots).original(0) is not None
    assert Review(tmp_path / "gen").original(0) is None  # no roots declared: nothing read
    secret = tmp_path / "secret.jpg"
    shutil.copy(ROOT / "docs" / "img" / "ui.jpg", secret)
    d = json.loads((tmp_path / "gen" / "annotations.json").read_text())
    d["images"][0]["background_path"] = str(secret)
    (tmp_path / "gen" / "annotations.json").write_text(json.dumps(d))
    (tmp_path / "gen" / "config.yaml").write_text(f"generate: {{scenes: [{{path: {tmp_path}}}]}}\n")
    assert Review(tmp_path / "gen", roots).original(0) is None
