from pathlib import Path

import pytest

from roadsynth.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]


def test_bundled_configs_load_with_absolute_existing_paths():
    for name in ("quickstart.yaml", "animals.yaml", "conditions.yaml"):
        cfg = load_config(ROOT / "configs" / name)
        for scene in cfg.generate.scenes:
            assert scene.path.is_absolute() and scene.path.is_dir(), scene.path
        for c in cfg.generate.cutouts:
            assert c.path.exists(), c.path
    q = load_config(ROOT / "configs" / "quickstart.yaml")
    assert q.experiment.real.path.joinpath("data.yaml").exists()
    assert q.digest() == load_config(ROOT / "configs" / "quickstart.yaml").digest()


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


MINIMAL = """
generate:
  scenes: [{name: s, format: folder, path: .}]
  cutouts: []
  insert: {categories: {deer: 1.0}}
"""


def test_minimal_config_resolves_relative_paths(tmp_path):
    cfg = load_config(_write(tmp_path, MINIMAL))
    assert cfg.generate.scenes[0].path == tmp_path.resolve()
    assert cfg.experiment is None
    checked = MINIMAL.replace("{categories: {deer: 1.0}}", "{categories: {deer: 1.0}, detector_check: {weights: w/best.pt}}")
    assert load_config(_write(tmp_path, checked)).generate.insert.detector_check.weights == tmp_path.resolve() / "w/best.pt"


@pytest.mark.parametrize(
    "text, expected",
    [
        (MINIMAL + "bogus: 1\n", "bogus: Extra inputs are not permitted"),
        (MINIMAL.replace("{deer: 1.0}", "{deer: -1}"), "`categories` must map at least one class to a positive weight"),
        (MINIMAL.replace("format: folder,", "format: folder, camera: {height_m: -1.5},"),
         "`height_m` must be in [0.2, 10], but got -1.5"),
        (MINIMAL.replace("format: folder,", "format: folder, camera: {pitch_deg: 45},"),
         "`pitch_deg` must be in [-30, 30], but got 45"),
        (MINIMAL.replace("{categories: {deer: 1.0}}", "{categories: {deer: 1.0}, objects_per_image: [3, 1]}"),
         "`objects_per_image` must satisfy"),
        ("- a list\n", "expected a mapping at the top level"),
        ("generate: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_configs_get_clear_errors_naming_the_file(tmp_path, text, expected):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(path) in str(e.value)
    assert expected in str(e.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_a_runs_config_is_parsed_once_per_process_and_again_when_the_file_changes(tmp_path):
    import os

    from roadsynth.config import run_config

    path = tmp_path / "c.yaml"
    path.write_text((ROOT / "configs" / "animals.yaml").read_text().replace("../data", str(ROOT / "data")))
    first = run_config(path)
    assert run_config(path) is first and run_config(str(path)) is first  # the CLI and the flow share one parse
    path.write_text(path.read_text().replace("n_images: 24", "n_images: 25"))
    os.utime(path, ns=(1, 1))  # a rewrite within the same mtime tick is told apart by size; this one by both
    again = run_config(path)
    assert again is not first and again.generate.n_images == 25
