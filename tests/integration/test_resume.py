"""A run killed with SIGKILL at a random point resumes to exactly the dataset of an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import DATA


def config(tmp_path: Path) -> Path:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"""
name: resume
generate:
  seed: 3
  n_images: 96
  chunk_size: 4
  scenes: [{{name: camvid, format: label_maps, path: {DATA}/camvid/images, label_maps: {DATA}/camvid/road_labels,
             object_values: {{8: Car}}, camera: {{horizon_frac: 0.47, height_m: 1.3}}}}]
  cutouts: [{{kind: msrc, path: {DATA}/cutouts/msrc_v2_animals, categories: [cow, sheep]}}]
  insert: {{categories: {{cow: 1.0, sheep: 1.0}}, objects_per_image: [1, 3]}}
""")
    return cfg


def run(cfg: Path, out: Path, engine: str, kill_after_chunks: int | None = None) -> int:
    cmd = [sys.executable, "-m", "roadsynth.cli", "generate", str(cfg), "--out", str(out), "--engine", engine]
    # Own process group: the kill takes the run's ephemeral Prefect server with it, as a killed job's
    # container would, instead of leaving it orphaned on the machine.
    # A Prefect home of the test's own: not the user's, and not shared with another pytest-xdist worker's run.
    env = {**os.environ, "PREFECT_HOME": str(out.parent / "prefect")}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, env=env)
    if kill_after_chunks is None:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-2000:]
        return 0
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if len(list((out / "chunks").glob("*.json"))) >= kill_after_chunks:
            break
        time.sleep(0.05)
    time.sleep(random.uniform(0, 0.1))  # land anywhere inside the next chunk (~0.1-0.2 s each)
    # A run that died before the kill is a failure to show, not a ProcessLookupError from killpg.
    assert proc.poll() is None, f"the run exited ({proc.returncode}) before the kill: " + proc.stderr.read().decode()[-2000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return len(list((out / "chunks").glob("*.json")))


def check_same(reference: Path, resumed: Path) -> None:
    assert (resumed / "annotations.json").read_bytes() == (reference / "annotations.json").read_bytes()
    assert not [p for p in resumed.rglob("*") if p.name.endswith(".tmp")], "temp files left behind"
    d = json.loads((resumed / "annotations.json").read_text())
    ids = [a["id"] for a in d["annotations"]]
    assert len(ids) == len(set(ids)) and len({im["id"] for im in d["images"]}) == len(d["images"]) == 96
    assert sorted(p.name for p in (resumed / "images").iterdir()) == sorted(p.name for p in (reference / "images").iterdir())


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    """(config, the dataset of an uninterrupted run), which every killed and resumed run must reproduce."""
    tmp = tmp_path_factory.mktemp("resume")
    cfg = config(tmp)
    run(cfg, tmp / "ref", "local")
    return cfg, tmp / "ref"


@pytest.mark.slow
@pytest.mark.xdist_group("resume")
def test_sigkill_then_resume_gives_the_uninterrupted_dataset_local_engine(tmp_path, reference):
    cfg, ref = reference
    # Fixed kill points, early and late, so that a failure names one that reproduces it.
    for k in (3, 13):
        out = tmp_path / f"killed_after_{k}"
        done = run(cfg, out, "local", kill_after_chunks=k)
        assert 2 <= done < 24, f"kill after {k} chunks landed after {done} chunks"
        run(cfg, out, "local")
        check_same(ref, out)


@pytest.mark.slow
@pytest.mark.xdist_group("resume")
def test_sigkill_then_resume_through_prefect(tmp_path, reference):
    cfg, ref = reference
    out = tmp_path / "killed"
    done = run(cfg, out, "prefect", kill_after_chunks=3)
    assert 3 <= done < 24, f"kill landed after {done} chunks"
    run(cfg, out, "prefect")
    check_same(ref, out)


def test_chunks_of_another_config_are_not_reused(tmp_path):
    from roadsynth import __version__
    from roadsynth.generate.resume import CHUNK_FORMAT, chunk_done, chunk_path

    p = chunk_path(tmp_path, 0)
    p.parent.mkdir(parents=True)
    ok = {"format": CHUNK_FORMAT, "config_digest": "aaa", "roadsynth_version": __version__, "images": []}
    p.write_text(json.dumps(ok))
    assert chunk_done(tmp_path, 0, "aaa") and not chunk_done(tmp_path, 0, "bbb")
    p.write_text(json.dumps({**ok, "roadsynth_version": "0.0.0-old"}))
    assert not chunk_done(tmp_path, 0, "aaa")
    p.write_text(json.dumps({**ok, "format": CHUNK_FORMAT - 1}))  # an older chunk layout is regenerated
    assert not chunk_done(tmp_path, 0, "aaa")
    p.write_text("{truncated")
    assert not chunk_done(tmp_path, 0, "aaa")


def test_temp_files_of_a_killed_write_are_swept(tmp_path):
    from roadsynth.generate.resume import sweep_temp_files

    (tmp_path / "images").mkdir()
    (tmp_path / "chunks").mkdir()
    stale = [tmp_path / "images" / ".roadsynth-000013.jpg.r8xfyrui.tmp", tmp_path / "chunks" / ".roadsynth-00002.json.abc.tmp",
             tmp_path / ".roadsynth-annotations.json.x1.tmp"]
    for p in stale:
        p.write_bytes(b"half")
    keep = [tmp_path / "images" / "000013.jpg", tmp_path / ".my-draft.tmp"]  # a result, and a user's own temp file
    for p in keep:
        p.write_bytes(b"done")
    assert sweep_temp_files(tmp_path) == 3
    assert not any(p.exists() for p in stale) and all(p.exists() for p in keep)
