import socket

from tests.conftest import NetworkAudit


def test_audit_records_non_loopback_lookups_and_ignores_loopback():
    with NetworkAudit() as audit:
        try:
            socket.getaddrinfo("roadsynth-test.invalid", 80)
        except OSError:
            pass
        socket.getaddrinfo("127.0.0.1", 80)
    assert audit.events == ["socket.getaddrinfo roadsynth-test.invalid"]
