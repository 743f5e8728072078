"""Shared test helpers: repository paths and an outbound-network audit."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "sample"
FIXTURES = ROOT / "tests" / "fixtures"


class NetworkAudit:
    """Records every attempt to reach a non-loopback host (via `sys.addaudithook`, which cannot be removed,
    so one process-wide hook feeds whichever audit is active)."""

    active: "NetworkAudit | None" = None
    _installed = False

    def __init__(self) -> None:
        self.events: list[str] = []

    @classmethod
    def _hook(cls, event: str, args: tuple) -> None:
        audit = cls.active
        if audit is None or event not in ("socket.connect", "socket.getaddrinfo", "socket.sendto"):
            return
        host = None
        if event == "socket.getaddrinfo":
            host = args[0]
        elif len(args) >= 2 and isinstance(args[1], tuple) and args[1]:
            host = args[1][0]
        if host is None or isinstance(host, bytes):
            host = host.decode() if isinstance(host, bytes) else host
        if host is None or _is_local(str(host)):
            return
        audit.events.append(f"{event} {host}")

    def __enter__(self) -> "NetworkAudit":
        if not NetworkAudit._installed:
            sys.addaudithook(NetworkAudit._hook)
            NetworkAudit._installed = True
        NetworkAudit.active = self
        return self

    def __exit__(self, *exc) -> None:
        NetworkAudit.active = None


def _is_local(host: str) -> bool:
    if host in ("localhost", "", socket.gethostname()) or host.startswith("/"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: one worker per usable core, at most 4. Experiments in the slow layer fan their trainings out
    over the cores themselves, and each worker holds torch, so more workers add memory, not speed."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return int(os.environ["PYTEST_XDIST_AUTO_NUM_WORKERS"])
    from roadsynth.experiment import usable_cores

    return min(usable_cores(), 4)


@pytest.fixture
def network_audit():
    with NetworkAudit() as audit:
        yield audit


@pytest.fixture(scope="session")
def prefect_harness():
    """A throw-away Prefect server and database for in-process flow tests (not the user's ~/.cache one)."""
    from roadsynth.flows._prefect import import_prefect

    import_prefect()  # roadsynth's offline defaults first, as every roadsynth entry into Prefect does
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


class InProcessResult:
    def __init__(self, exit_code: int, exception: BaseException | None):
        self.exit_code, self.exception, self.output = exit_code, exception, ""


def invoke_in_process(args) -> InProcessResult:
    """roadsynth's CLI in this process, on the real (pytest-captured) streams. CliRunner swaps sys.stdout for
    a BytesIO; in full-suite order a long `experiment` run there ended with that BytesIO closed under it
    ("I/O operation on closed file", cause not found: see the session notes), so experiment runs use this."""
    import click

    from roadsynth.cli import app

    try:
        app([str(a) for a in args], standalone_mode=False, prog_name="roadsynth")
    except click.exceptions.Exit as e:
        return InProcessResult(e.exit_code, e if e.exit_code else None)
    except SystemExit as e:
        return InProcessResult(int(e.code or 0), e)
    except Exception as e:  # noqa: BLE001
        return InProcessResult(1, e)
    return InProcessResult(0, None)
