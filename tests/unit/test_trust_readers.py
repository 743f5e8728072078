"""The readers of user-owned side files (camera intrinsics, COCO scene sources, Cityscapes camera and polygon
files, a curated annotations file) go through the bounded JSON reader: a FIFO, a huge or broken file is refused
with an error that names it, and a dataset import records the bad side file and goes on."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from roadsynth.datasets.io import InputFileError


def test_camera_intrinsics_file_errors_name_the_file(tmp_path):
    from roadsynth.geometry.camera import from_intrinsics_json

    good = tmp_path / "k.json"
    good.write_text(json.dumps({"K": [[1000, 0, 640], [0, 1000, 360], [0, 0, 1]]}))
    assert from_intrinsics_json(good, 1.5).fx == 1000
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(InputFileError, match="fifo.json"):
        from_intrinsics_json(fifo, 1.5)  # refused without blocking on the open
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps({"K": [1, 2, 3]}))
    with pytest.raises(ValueError, match=r"flat.json: `K` must be a 3x3 matrix, but got shape \(3,\)"):
        from_intrinsics_json(flat, 1.5)
    missing_k = tmp_path / "nok.json"
    missing_k.write_text("{}")
    with pytest.raises(ValueError, match="nok.json: no 3x3 `K` matrix"):
        from_intrinsics_json(missing_k, 1.5)


def test_coco_scene_source_refuses_a_folder_and_broken_json_naming_it(tmp_path):
    from roadsynth.datasets.coco import read_coco_lenient

    (tmp_path / "labels.json").mkdir()
    with pytest.raises(InputFileError, match="labels.json"):
        read_coco_lenient(tmp_path / "labels.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [')
    with pytest.raises(InputFileError, match="broken.json: not valid JSON"):
        read_coco_lenient(broken)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(InputFileError, match="deeper than"):
        read_coco_lenient(deep)


def test_cityscapes_import_records_a_broken_camera_file_and_goes_on(tmp_path):
    from roadsynth.datasets.formats.cityscapes import read_cityscapes

    city = "aachen"
    stem = f"{city}_000000_000019"
    img_dir = tmp_path / "leftImg8bit" / "train" / city
    img_dir.mkdir(parents=True)
    Image.fromarray(np.zeros((32, 64, 3), np.uint8)).save(img_dir / f"{stem}_leftImg8bit.png")
    cam_dir = tmp_path / "camera" / "train" / city
    cam_dir.mkdir(parents=True)
    os.mkfifo(cam_dir / f"{stem}_camera.json")
    gt_dir = tmp_path / "gtFine" / "train" / city
    gt_dir.mkdir(parents=True)
    (gt_dir / f"{stem}_gtFine_polygons.json").write_text('{"objects": [')
    ds = read_cityscapes(tmp_path).dataset
    problems = ds.info.get("problems", [])
    assert len(ds.images) == 1 and "camera" not in ds.images[0].attributes
    assert any(f"{stem}_camera.json" in p and "not a regular file" in p for p in problems), problems
    assert any(f"{stem}_gtFine_polygons.json" in p and "not valid JSON" in p for p in problems), problems


# Run-folder files (a run's metrics, the training cache's entries, chunk records, progress files, the
# output lock) are written by roadsynth, but the folder is shared: a FIFO or a document nested past
# Python's recursion limit put there must neither hang a re-run nor crash it with a RecursionError.

DEEP = "[" * 100_000 + "]" * 100_000


def _within(fn, seconds: float = 10.0):
    """fn()'s value, failing the test (instead of hanging it) when fn blocks."""
    import threading

    box: dict = {}

    def run():
        try:
            box["v"] = fn()
        except Exception as e:  # re-raised in the test's own thread
            box["e"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{fn} blocked for {seconds} s"
    if "e" in box:
        raise box["e"]
    return box.get("v")


def _unblock(fifo):
    # A reader that did block is released by a writer, so a failing test leaves no thread behind.
    fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    os.close(fd)


def test_a_fifo_or_deep_training_record_is_retrained_not_waited_for(tmp_path):
    from roadsynth.experiment import _finished_here

    run_dir = tmp_path / "runs" / "real_seed0"
    run_dir.mkdir(parents=True)
    weights = run_dir / "weights.pt"
    weights.write_bytes(b"w")
    os.mkfifo(run_dir / "training.json")
    try:
        assert _within(lambda: _finished_here(run_dir, "k", weights)) is None
    finally:
        _unblock(run_dir / "training.json")
    (run_dir / "training.json").unlink()
    (run_dir / "training.json").write_text(DEEP)
    assert _finished_here(run_dir, "k", weights) is None
    (run_dir / "training.json").write_text("[]")  # valid JSON, not a record
    assert _finished_here(run_dir, "k", weights) is None


def test_a_deep_training_cache_entry_is_a_miss(tmp_path):
    from roadsynth.detectors.reuse import ENTRY, TrainedCache

    (tmp_path / "abc").mkdir()
    (tmp_path / "abc" / ENTRY).write_text(DEEP)
    (tmp_path / "abc" / "weights.pt").write_bytes(b"w")
    assert TrainedCache(tmp_path).get("abc") is None
    (tmp_path / "abc" / ENTRY).write_text('["weights_sha256"]')
    assert TrainedCache(tmp_path).get("abc") is None


def test_a_deep_or_fifo_chunk_record_counts_as_unfinished(tmp_path):
    from roadsynth.generate.resume import chunk_done, chunk_path

    path = chunk_path(tmp_path, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DEEP)
    assert chunk_done(tmp_path, 0, "digest") is False
    path.write_text("[1, 2]")
    assert chunk_done(tmp_path, 0, "digest") is False
    path.unlink()
    os.mkfifo(path)
    try:
        assert _within(lambda: chunk_done(tmp_path, 0, "digest")) is False
    finally:
        _unblock(path)


def test_a_fifo_metrics_file_does_not_hang_the_ui_or_the_progress_display(tmp_path):
    from roadsynth.review import DoseCurve, list_runs
    from roadsynth.runs import _read

    os.mkfifo(tmp_path / "metrics.json")
    (tmp_path / "runs" / "real_seed0").mkdir(parents=True)
    os.mkfifo(tmp_path / "runs" / "real_seed0" / "metrics.json")
    try:
        assert _within(lambda: DoseCurve(tmp_path).curves) == []
        assert _within(lambda: _read(tmp_path / "metrics.json")) is None
        with pytest.raises(InputFileError, match="real_seed0/metrics.json"):
            _within(lambda: list_runs(tmp_path))
    finally:
        _unblock(tmp_path / "metrics.json")
        _unblock(tmp_path / "runs" / "real_seed0" / "metrics.json")


def test_a_deep_lock_record_reads_as_unknown_holder(tmp_path):
    from roadsynth.datasets.outdir import _read_record

    (tmp_path / "lock").write_text("[" * 60_000)
    assert _read_record(tmp_path / "lock") == {}


def test_run_folder_json_goes_through_the_bounded_reader():
    # The behaviour above, kept for every reader: a bare json.loads of a file is a FIFO hang or a
    # RecursionError waiting for the next hostile folder. io.py is the bounded reader itself; outdir.py
    # parses a lock record it read with a 64 KiB cap.
    from pathlib import Path

    import roadsynth

    root = Path(roadsynth.__file__).parent
    bare = [f"{p.relative_to(root)}:{n}" for p in root.rglob("*.py") if p.name not in {"io.py", "outdir.py"}
            for n, line in enumerate(p.read_text().splitlines(), 1) if "json.load" in line]
    assert bare == []
