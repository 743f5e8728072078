"""A local Prefect server, a one-minute cron deployment served by `roadsynth deploy`, and a scheduled run
that completes into its dated folder. Everything on loopback; both processes are stopped at the end."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import DATA


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, procs=()) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"{what}: a process exited early with {p.returncode}: {p.stderr.read()[-3000:]}")
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.mark.slow
def test_cron_deployment_runs_on_a_local_server(tmp_path):
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": api,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false"}
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"""
name: every-minute
generate:
  n_images: 2
  chunk_size: 2
  scenes: [{{name: udacity, format: folder, path: {DATA}/udacity_lanelines/images, camera: {{horizon_frac: 0.6}}}}]
  cutouts: [{{kind: msrc, path: {DATA}/cutouts/msrc_v2_animals, categories: [sheep]}}]
  insert: {{categories: {{sheep: 1.0}}}}
""")
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                               str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    deployer = None
    try:
        wait_for(lambda: healthy(api), 120, "the Prefect server", [server])
        out_root = tmp_path / "scheduled"
        deployer = subprocess.Popen([sys.executable, "-m", "roadsynth.cli", "deploy", str(cfg), "--cron", "* * * * *",
                                     "--out-root", str(out_root)], env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True, start_new_session=True)
        done = lambda: any((d / "manifest.json").exists() for d in out_root.glob("*"))  # noqa: E731
        wait_for(done, 200, "a scheduled run to finish", [server, deployer])
        run_dir = next(d for d in out_root.glob("*") if (d / "manifest.json").exists())
        assert json.loads((run_dir / "manifest.json").read_text())["images"] == 2
        assert run_dir.name.endswith("Z") and run_dir.name[:4].isdigit()  # dated folder
        with urllib.request.urlopen(urllib.request.Request(f"{api}/deployments/filter", data=b"{}",
                                                           headers={"Content-Type": "application/json"})) as r:
            deployments = json.loads(r.read())
        assert any(d["name"] == "every-minute" and d["schedules"] for d in deployments)
    finally:
        for p in (deployer, server):
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
