"""The output-folder lock: one roadsynth run writes a folder at a time, across processes (issue #27, item 6)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from roadsynth.datasets import outdir
from roadsynth.datasets.outdir import LOCK, MARKER, OutputFolderError, claim, release
from tests.conftest import ROOT

# Claims `folder` as an experiment of config `digest`, writes one of its outputs, says so, and holds the
# folder until its stdin closes (then exits normally).
HOLDER = """
import sys
from pathlib import Path
from roadsynth.datasets.outdir import claim
out = claim(sys.argv[1], "experiment", sys.argv[2])
(out / "runs.csv").write_text("the holder's own results")
print("held", flush=True)
sys.stdin.read()
"""


def hold(folder, digest="config-a") -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), digest], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = proc.stdout.readline()
    assert line == "held\n", proc.stderr.read()
    return proc


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    return proc.pid


def test_a_second_process_with_another_config_is_refused_at_once_naming_the_holder(tmp_path):
    out = tmp_path / "runs" / "x"
    proc = hold(out)
    try:
        lock = json.loads((out / LOCK).read_text())
        assert (lock["pid"], lock["host"], lock["kind"]) == (proc.pid, socket.gethostname(), "experiment")
        assert lock["since"].endswith("Z") and "-c" in lock["command"]
        t0 = time.perf_counter()
        with pytest.raises(OutputFolderError) as e:
            claim(out, "experiment", "config-b", overwrite=True)  # --overwrite must not delete a live run's files
        assert time.perf_counter() - t0 < 1
        assert str(e.value) == (f"`{out}` is in use by another roadsynth run (experiment, pid {proc.pid} on "
                                f"{socket.gethostname()}, since {lock['since']}); wait for it to finish or use "
                                "another --out")
        assert (out / "runs.csv").read_text() == "the holder's own results"
        assert json.loads((out / MARKER).read_text())["digest"] == "config-a"
    finally:
        proc.stdin.close()
        proc.wait(timeout=5)


def test_a_stale_lock_of_a_dead_pid_is_taken_over_and_says_so(tmp_path, caplog):
    out = tmp_path / "x"
    out.mkdir()
    pid = dead_pid()
    (out / LOCK).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "kind": "generate",
                                        "since": "2026-01-01T00:00:00Z"}))
    with caplog.at_level("WARNING", logger=outdir.__name__):
        assert claim(out, "generate", "d") == out
    assert json.loads((out / LOCK).read_text())["pid"] == os.getpid()
    assert f"`{out}`: taking over the lock of a roadsynth run that is gone (generate, pid {pid} on " in caplog.text
    assert f"pid {pid} is not running" in caplog.text
    release(out)
    assert not (out / LOCK).exists()


def test_the_lock_is_released_when_its_process_exits_however_it_exits(tmp_path, caplog):
    out = tmp_path / "x"
    proc = hold(out)
    proc.stdin.close()  # a normal exit deletes the lock file
    assert proc.wait(timeout=5) == 0
    assert not (out / LOCK).exists()
    assert claim(out, "experiment", "config-a") == out  # the same config resumes
    release(out)

    proc = hold(out)
    proc.send_signal(signal.SIGKILL)  # no cleanup runs: the file stays, but the OS dropped its flock
    proc.wait(timeout=5)
    assert json.loads((out / LOCK).read_text())["pid"] == proc.pid
    with caplog.at_level("WARNING", logger=outdir.__name__):
        claim(out, "experiment", "config-b", overwrite=True)
    assert f"pid {proc.pid}" in caplog.text and json.loads((out / MARKER).read_text())["digest"] == "config-b"
    assert not (out / "runs.csv").exists()  # the dead run's outputs were replaced, as --overwrite asks
    release(out)


def test_claiming_again_in_the_same_process_is_reentrant(tmp_path):
    out = tmp_path / "x"
    assert claim(out, "generate", "d") == out
    first = (out / LOCK).read_text()
    assert claim(out, "generate", "d") == out  # e.g. `restyle` claims, then its generation flow claims again
    assert (out / LOCK).read_text() == first and json.loads(first)["pid"] == os.getpid()
    with pytest.raises(OutputFolderError, match="another config"):  # the marker still guards the config
        claim(out, "generate", "other")
    assert (out / LOCK).exists()  # a refused re-claim keeps the lock the first claim took
    release(out)
    assert sorted(p.name for p in out.iterdir()) == [MARKER]


def test_without_flock_the_holders_pid_and_host_decide(tmp_path, monkeypatch):
    monkeypatch.setattr(outdir, "fcntl", None)  # as on Windows
    out = tmp_path / "x"
    out.mkdir()
    for holder in ({"pid": os.getppid(), "host": socket.gethostname()},  # alive on this host
                   {"pid": 1, "host": "another-host"}):  # cannot be checked from here
        (out / LOCK).write_text(json.dumps({**holder, "kind": "generate", "since": "2026-01-01T00:00:00Z"}))
        with pytest.raises(OutputFolderError, match=f"pid {holder['pid']} on {holder['host']}.*delete .*{LOCK}"):
            claim(out, "generate", "d")
    (out / LOCK).write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname()}))
    assert claim(out, "generate", "d") == out
    assert json.loads((out / LOCK).read_text())["pid"] == os.getpid()
    release(out)
    assert not (out / LOCK).exists()


def test_a_users_folder_gets_no_lock_file(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputFolderError, match="not a roadsynth output"):
        claim(tmp_path, "generate", "d")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
