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


@pytest.fixture(scope="module")
def threads_run(tmp_path_factory, prefect_harness) -> tuple[Path, Path]:
    """The default (threads) runner's dataset, which every other runner must reproduce byte for byte."""
    from roadsynth.flows.generate import run_generate

    tmp = tmp_path_factory.mktemp("threads")
    images = DATA / "udacity_lanelines" / "images"
    assert run_generate(str(write_config(tmp, images, "threads")), str(tmp / "threads"))["images"] == 8
    return images, tmp / "threads" / "annotations.json"


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_dataset_as_threads(tmp_path, threads_run):
    from roadsynth.flows.generate import run_generate

    images, threads = threads_run
    assert run_generate(str(write_config(tmp_path, images, "dask")), str(tmp_path / "dask"))["images"] == 8
    assert threads.read_bytes() == (tmp_path / "dask" / "annotations.json").read_bytes()


@pytest.mark.slow
def test_ray_local_cluster_gives_the_same_dataset_as_threads(tmp_path, threads_run, network_audit):
    """Ray (prefect-ray) runs the same chunk tasks in its worker processes: same bytes as the default runner."""
    from roadsynth.flows.generate import run_generate

    images, threads = threads_run
    assert run_generate(str(write_config(tmp_path, images, "ray")), str(tmp_path / "ray"))["images"] == 8
    assert threads.read_bytes() == (tmp_path / "ray" / "annotations.json").read_bytes()
    assert network_audit.events == []
    # GPU tasks on a cluster without GPUs fail with a reason instead of queueing forever.
    cfg = write_config(tmp_path, images, "ray")
    cfg.write_text(cfg.read_text().replace("max_in_flight: 2}", "max_in_flight: 2, gpus_per_task: 1}"))
    with pytest.raises(RuntimeError, match="`orchestration.gpus_per_task` is 1.0, but the Ray cluster has 0 GPUs"):
        run_generate(str(cfg), str(tmp_path / "ray-gpu"))


@pytest.mark.slow
def test_corrupt_inputs_are_reported_and_good_frames_still_made(tmp_path, prefect_harness):
    """Truncated JPEG, text named .jpg, empty PNG, and a COCO source with broken annotations in one run."""
    from PIL import Image

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
    coco_images = tmp_path / "coco_images"
    coco_images.mkdir()
    (coco_images / "a.jpg").write_bytes(good[1].read_bytes())
    w, h = Image.open(good[1]).size
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": w, "height": h},
                   {"id": 2, "file_name": "b.jpg", "width": "wide", "height": h}],
        "categories": [{"id": 1, "name": "car"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 400, 120, 80], "area": 9600, "iscrowd": 0},
                        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [10, 10, -5, 20], "area": 0, "iscrowd": 0},
                        {"id": 3, "image_id": 99, "category_id": 1, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0}],
    }
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    cfg = write_config(tmp_path, frames, n=10)
    cfg.write_text(cfg.read_text().replace(
        "  cutouts:", f"  - {{name: coco, format: coco, path: {tmp_path / 'coco.json'}, images_root: {coco_images}, "
                     "camera: {horizon_frac: 0.5, height_m: 1.4}}\n  cutouts:").replace(
        "  scenes: [{name: frames, format: folder, path: " + str(frames) + ", camera: {horizon_frac: 0.5, height_m: 1.4}}]",
        "  scenes:\n  - {name: frames, format: folder, path: " + str(frames) + ", camera: {horizon_frac: 0.5, height_m: 1.4}}"))
    summary = run_generate(str(cfg), str(tmp_path / "out"))
    out = tmp_path / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    by_file = {}
    for f in manifest["failures"]:
        by_file.setdefault(Path(f["file"]).name, []).append(f["error"])
    assert "cannot read image" in by_file["not_an_image.jpg"][0] and "cannot read image" in by_file["empty.png"][0]
    assert "image file is truncated" in by_file["truncated.jpg"][0]
    coco_errors = " | ".join(by_file["coco.json"])
    assert "annotation 2" in coco_errors and "annotation 3" in coco_errors and "image 2" in coco_errors
    assert set(by_file) == {"not_an_image.jpg", "empty.png", "truncated.jpg", "coco.json"}
    frame_failures = [f for f in manifest["failures"] if f["index"] is not None]
    assert summary["images"] == 10 - len(frame_failures) >= 7
    d = json.loads((out / "annotations.json").read_text())
    assert {im["background"] for im in d["images"]} <= {p.name for p in good} | {"a.jpg"}
    assert "a.jpg" in {im["background"] for im in d["images"]}  # the COCO source's good image was used
    # Bad image files are copied to quarantine/ with their reasons; annotation problems name the record.
    listed = json.loads((out / "quarantine" / "failures.json").read_text())
    assert len(listed) == len(manifest["failures"]) == summary["failures"]
    copies = {f["quarantined"] for f in listed if "quarantined" in f}
    assert {Path(c).name.split("_", 1)[1] for c in copies} == {"not_an_image.jpg", "empty.png", "truncated.jpg"}
    assert (out / sorted(c for c in copies if c.endswith("truncated.jpg"))[0]).read_bytes() == data[: len(data) // 3]
