"""Prefect task runners and bad input: the same dataset whatever runs the tasks; bad frames reported, good ones made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import DATA


def write_config(tmp_path: Path, images: Path, runner: str = "threads", n: int = 8) -> Path:
    cfg = tmp_path / f"c_{runner}.yaml"
    cfg.write_text(f"""
name: runners
generate:
  seed: 1
  n_images: {n}
  chunk_size: 2
  scenes: [{{name: frames, format: folder, path: {images}, camera: {{horizon_frac: 0.5, height_m: 1.4}}}}]
  cutouts: [{{kind: msrc, path: {DATA}/cutouts/msrc_v2_animals, categories: [sheep]}}]
  insert: {{categories: {{sheep: 1.0}}, objects_per_image: [1, 2]}}
orchestration: {{task_runner: {runner}, workers: 2, max_in_flight: 2}}
""")
    return cfg


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_dataset_as_threads(tmp_path, prefect_harness):
    from roadsynth.flows.generate import run_generate

    images = DATA / "udacity_lanelines" / "images"
    a = run_generate(str(write_config(tmp_path, images, "threads")), str(tmp_path / "threads"))
    b = run_generate(str(write_config(tmp_path, images, "dask")), str(tmp_path / "dask"))
    assert a["images"] == b["images"] == 8
    assert (tmp_path / "threads" / "annotations.json").read_bytes() == (tmp_path / "dask" / "annotations.json").read_bytes()


@pytest.mark.slow
def test_corrupt_inputs_are_reported_and_good_frames_still_made(tmp_path, prefect_harness):
    from roadsynth.flows.generate import run_generate

    frames = tmp_path / "frames"
    frames.mkdir()
    good = sorted((DATA / "udacity_lanelines" / "images").glob("*.jpg"))[:4]
    for p in good:
        (frames / p.name).write_bytes(p.read_bytes())
    data = good[0].read_bytes()
    (frames / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (frames / "not_an_image.jpg").write_text("this is text")
    (frames / "empty.png").write_bytes(b"")
    summary = run_generate(str(write_config(tmp_path, frames, n=10)), str(tmp_path / "out"))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    by_file = {Path(f["file"]).name: f["error"] for f in manifest["failures"]}
    assert "cannot read image" in by_file["not_an_image.jpg"] and "cannot read image" in by_file["empty.png"]
    assert "image file is truncated" in by_file["truncated.jpg"]
    assert set(by_file) == {"not_an_image.jpg", "empty.png", "truncated.jpg"}
    frame_failures = [f for f in manifest["failures"] if f["index"] is not None]
    assert summary["images"] == 10 - len(frame_failures) >= 8
    d = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert {im["background"] for im in d["images"]} <= {p.name for p in good}
