"""Listeners on an address the box does not have yet (gateway/security/netbind.py)."""

from __future__ import annotations

import socket
import sys

import pytest

from gateway.security.netbind import is_address, listening_socket

#: TEST-NET-3 (RFC 5737): never an address of this machine.
ABSENT = "203.0.113.77"


def test_a_loopback_listener_accepts() -> None:
    sock = listening_socket("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        assert not sock.getblocking()
    finally:
        sock.close()


@pytest.mark.skipif(sys.platform != "linux", reason="IP_FREEBIND is Linux only")
def test_an_address_the_box_has_not_yet_can_be_bound_on_linux() -> None:
    # What a plain bind says: the reason the gateway could not start before its VPN tunnel.
    plain = socket.socket()
    with pytest.raises(OSError, match="Cannot assign requested address"):
        plain.bind((ABSENT, 0))
    plain.close()
    sock = listening_socket(ABSENT, 0)
    try:
        assert sock.getsockname()[0] == ABSENT
    finally:
        sock.close()


def test_a_taken_port_is_an_error_naming_it() -> None:
    first = listening_socket("127.0.0.1", 0)
    try:
        port = first.getsockname()[1]
        with pytest.raises(OSError, match="Address already in use"):
            listening_socket("127.0.0.1", port)
    finally:
        first.close()


def test_is_address() -> None:
    assert is_address("10.88.0.17")
    assert is_address("::1")
    assert not is_address("localhost")
    assert not is_address("")
