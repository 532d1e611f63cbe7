"""Network namespaces joined by a veth pair, for tests that need a real network between two
hosts (OpenVPN concentrator and gateway). Needs root, ``ip`` (iproute2) and ``/dev/net/tun``.

Names carry the test run's pid (and a counter), so parallel runs do not collide, and
:func:`namespace_pair` removes everything it made, also when the test fails. Processes
started in a namespace must be ended before it is removed (the caller's job: a namespace
lives on as long as a process is in it).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_counter = itertools.count()


def openvpn_binary() -> str | None:
    """The ``openvpn`` program (Debian puts it in /usr/sbin, which a user's PATH may lack)."""
    found = shutil.which("openvpn") or shutil.which("openvpn", path="/usr/sbin:/usr/local/sbin")
    return found


def ip_binary() -> str | None:
    return shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin:/usr/bin:/bin")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    ip = ip_binary()
    assert ip is not None, "no ip command"
    return subprocess.run([ip, *args], capture_output=True, text=True, check=check, timeout=10)


def netns_unavailable() -> str | None:
    """Why namespaces with OpenVPN cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if ip_binary() is None:
        return "no ip command (iproute2)"
    if not Path("/dev/net/tun").exists():
        return "no /dev/net/tun (tun devices are not available)"
    if openvpn_binary() is None:
        return "no openvpn binary (apt install openvpn)"
    probe = f"smx-probe-{os.getpid()}-{next(_counter)}"
    try:
        added = _ip("netns", "add", probe, check=False)
    except (OSError, subprocess.SubprocessError) as err:
        return f"ip netns add failed: {err}"
    if added.returncode != 0:
        return f"ip netns add failed: {added.stderr.strip() or added.returncode}"
    try:
        # A container may allow the namespace but not what OpenVPN does in it: entering it
        # (ip netns exec remounts /sys) and making a tun device.
        made = _ip(
            "netns",
            "exec",
            probe,
            ip_binary() or "ip",
            "tuntap",
            "add",
            "mode",
            "tun",
            "name",
            "smxprobe0",
            check=False,
        )
        if made.returncode != 0:
            return f"cannot make a tun device in a namespace: {made.stderr.strip() or made.returncode}"
    except (OSError, subprocess.SubprocessError) as err:
        return f"ip netns exec failed: {err}"
    finally:
        _ip("netns", "delete", probe, check=False)
    return None


@dataclass(frozen=True)
class Namespace:
    """A network namespace and its end of the veth pair."""

    name: str
    interface: str
    address: str  # with prefix, e.g. 192.0.2.1/24

    @property
    def ip(self) -> str:
        return self.address.split("/")[0]

    def exec_args(self, *command: str) -> list[str]:
        """``command`` run inside the namespace (``ip netns exec`` execs it: same pid)."""
        ip = ip_binary()
        assert ip is not None
        return [ip, "netns", "exec", self.name, *command]


@contextlib.contextmanager
def namespace_pair(
    address_a: str, address_b: str, *, role_a: str = "a", role_b: str = "b"
) -> Iterator[tuple[Namespace, Namespace]]:
    """Two namespaces with loopback up, joined by a veth pair with the given addresses.

    Both namespaces are removed on exit (which removes the veth pair with them).
    """
    pid, n = os.getpid(), next(_counter)
    # Interface names have at most 15 characters: "smx" + a/b + pid (<= 7 digits) + "n" + counter.
    a = Namespace(f"smx-{role_a}-{pid}-{n}", f"smxa{pid}n{n}", address_a)
    b = Namespace(f"smx-{role_b}-{pid}-{n}", f"smxb{pid}n{n}", address_b)
    created: list[str] = []
    try:
        for ns in (a, b):
            _ip("netns", "add", ns.name)
            created.append(ns.name)
        _ip("link", "add", a.interface, "netns", a.name, "type", "veth", "peer", "name", b.interface,
            "netns", b.name)  # fmt: skip
        for ns in (a, b):
            _ip("-n", ns.name, "link", "set", "lo", "up")
            _ip("-n", ns.name, "addr", "add", ns.address, "dev", ns.interface)
            _ip("-n", ns.name, "link", "set", ns.interface, "up")
        yield a, b
    finally:
        for name in reversed(created):
            remove_namespace(name)


def remove_namespace(name: str) -> None:
    """Delete a namespace made here (no error if it is gone already)."""
    _ip("netns", "delete", name, check=False)


def leftover_namespaces() -> list[str]:
    """Namespaces of this process still present (for a check at the end of a test)."""
    listing = _ip("netns", "list", check=False).stdout
    names = [line.split()[0] for line in listing.splitlines() if line.strip()]
    return [name for name in names if name.startswith("smx-") and f"-{os.getpid()}-" in name]
