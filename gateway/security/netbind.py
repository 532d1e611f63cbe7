"""Listening sockets that may bind an address the box does not have yet (the VPN tunnel's).

A gateway serving over OpenVPN only binds its OPC UA and web listeners to its tunnel
address (``[opcua] host = "10.88.0.17"``). At boot that address appears only once the
tunnel is up, and a plain ``bind`` fails with EADDRNOTAVAIL. On Linux ``IP_FREEBIND``
(ip(7)) lets the socket bind it anyway: it accepts connections as soon as the address
exists and keeps listening across tunnel restarts. Elsewhere the plain bind is used.
"""

from __future__ import annotations

import ipaddress
import socket
import sys

#: ip(7) IP_FREEBIND (at IPPROTO_IP; Linux honours it for IPv6 sockets as well).
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)
BACKLOG = 100


def is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def listening_socket(host: str, port: int) -> socket.socket:
    """A non-blocking TCP socket listening on ``host`` (an IP address) and ``port``.

    OSError with the address in the message if it cannot (port taken, no such address
    outside Linux).
    """
    address = ipaddress.ip_address(host)
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if sys.platform == "linux" and not address.is_unspecified:
            sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
