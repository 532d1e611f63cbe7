"""``smx-gateway doctor``: the checks an installer runs next to the meter (DESIGN §13).

Each check says PASS or FAIL with what it found and, on FAIL, the fix in one line. They run
in the order an installer works: the configuration, each meter's serial device (present,
open to this user, not held by another program), the meter itself (a sign-on at the
configured protocol and speed; if that fails, the other ways it might answer, and which
did), the meter's clock against the box's, the box's clock synchronisation, the archive's
disk, the gateway's own certificate and trust list, the address OPC UA binds to (an
OpenVPN tunnel's) and the uplink's broker. Run it with the service stopped: the service
owns the meter line.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import datetime as dt
import os
import shutil
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography import x509

from gateway.config import GatewayConfig, MeterConfig
from gateway.errors import GatewayError
from gateway.meter.model import MeterInfo
from gateway.security.pki import Pki
from gateway.uplink.link import BrokerUrl, tls_context

#: A sign-on gets this long (a silent line is given up after it).
SIGN_ON_S = 20.0
#: The meter's clock may be this far off the box's (seconds) before it is a FAIL.
CLOCK_DEVIATION_S = 10.0
#: The own certificate should be valid for at least this long.
CERTIFICATE_DAYS = 60
#: The archive's disk: at least this much free, and this many days left at the current rate.
MIN_FREE_BYTES = 100 * 1024 * 1024
MIN_DAYS_LEFT = 30.0


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report."""

    name: str
    ok: bool
    found: str
    fix: str = ""

    def lines(self) -> list[str]:
        head = f"{'PASS' if self.ok else 'FAIL'}  {self.name}: {self.found}"
        return [head] if self.ok or not self.fix else [head, f"      fix: {self.fix}"]


def report(checks: list[Check]) -> str:
    """The report as printed, a summary last."""
    failed = sum(not c.ok for c in checks)
    lines = [line for c in checks for line in c.lines()]
    lines.append(f"{len(checks) - failed} passed, {failed} failed")
    return "\n".join(lines)


# -- the serial device ----------------------------------------------------------------------


def _is_device(url: str) -> bool:
    return "://" not in url


def holders(path: str) -> list[int]:
    """The processes (other than this one) with ``path`` open, from /proc (as fuser does;
    without root only this user's processes are seen)."""
    target = os.path.realpath(path)
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.path.realpath(f"/proc/{pid}/fd/{fd}") == target:
                        found.append(int(pid))
                        break
    return found


def check_device(meter: MeterConfig) -> Check:
    name = f"meter {meter.id}: serial device"
    url = meter.url
    if not _is_device(url):
        return Check(name, True, f"{url} (not a serial device: no device check)")
    if not os.path.exists(url):
        return Check(
            name,
            False,
            f"{url} does not exist",
            "plug the optical probe or RS485 adapter in; ls -l /dev/serial/by-id/ names it "
            "for [[meters]] url",
        )
    if not os.access(url, os.R_OK | os.W_OK):
        return Check(
            name,
            False,
            f"{url}: this user may not open it",
            "add the service user to its group: usermod -aG dialout smx (then log in again)",
        )
    busy = holders(url)
    if busy:
        return Check(
            name,
            False,
            f"{url} is open in process(es) {', '.join(map(str, busy))}",
            "stop what holds it (systemctl stop smx-gateway) and run doctor again",
        )
    return Check(name, True, f"{url} present, readable and writable, not in use")


# -- the meter ----------------------------------------------------------------------------

#: Other ways a meter may answer, tried when the configured one fails: (protocol, referencing).
WAYS = (("dlms", "ln"), ("dlms", "sn"), ("dlms-mode-e", "ln"), ("iec62056-21", "ln"))
#: Speeds tried for a direct HDLC line (mode E and IEC 62056-21 negotiate theirs).
HDLC_SPEEDS = (9600, 19200, 4800, 2400)


def _way(meter: MeterConfig) -> str:
    if meter.protocol == "iec62056-21":
        return f"iec62056-21 up to {meter.baudrate} Bd"
    return f"{meter.protocol} {meter.referencing.upper()} at {meter.baudrate} Bd"


def alternatives(meter: MeterConfig) -> list[MeterConfig]:
    """The other configurations the meter might answer to, likeliest first."""
    out = []
    for protocol, referencing in WAYS:
        speeds = HDLC_SPEEDS if protocol == "dlms" else (meter.baudrate,)
        for baud in speeds:
            other = replace(meter, protocol=protocol, referencing=referencing, baudrate=baud)
            if (other.protocol, other.referencing, other.baudrate) != (
                meter.protocol,
                meter.referencing,
                meter.baudrate,
            ):
                out.append(other)
    return out


async def sign_on(meter: MeterConfig, now: Callable[[], dt.datetime]) -> tuple[MeterInfo, float]:
    """Sign on, read the meter's identity and clock; the clock's deviation (s, meter - box)."""
    from gateway.app import link_factory  # the gateway's own way to the meter

    async with asyncio.timeout(SIGN_ON_S):
        link = await link_factory(meter)()
        try:
            info = await link.open()
            box = now()
            clock = await link.read_clock(box)
            return info, (clock - box).total_seconds()
        finally:
            with contextlib.suppress(Exception):
                await link.close()


def _refused_password(err: Exception) -> bool:
    text = str(err)
    return "wrong password" in text or "refused the password" in text


async def check_meter(
    meter: MeterConfig, now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
) -> list[Check]:
    name = f"meter {meter.id}"
    try:
        info, deviation = await sign_on(meter, now)
    except (GatewayError, OSError, TimeoutError) as err:
        why = str(err) or type(err).__name__
        if _refused_password(err):
            return [
                Check(
                    name,
                    False,
                    f"answers {_way(meter)} but refused the password: {why}",
                    "set [[meters]] password to the meter's (DLMS LLS / IEC 62056-21 P1)",
                )
            ]
        for other in alternatives(meter):
            with contextlib.suppress(GatewayError, OSError, TimeoutError):
                info, _ = await sign_on(other, now)
                return [
                    Check(
                        name,
                        False,
                        f"no answer {_way(meter)} ({why}); it answers {_way(other)}",
                        f'set protocol = "{other.protocol}", referencing = "{other.referencing}", '
                        f"baudrate = {other.baudrate} in [[meters]] {meter.id}",
                    )
                ]
        return [
            Check(
                name,
                False,
                f"no answer {_way(meter)} nor any other way tried ({why})",
                "check the cable or probe (its position on the meter's optical port), the meter's "
                "address and that it is powered",
            )
        ]
    who = " ".join(x for x in (info.manufacturer, info.model, info.serial_number) if x) or "a meter"
    checks = [Check(name, True, f"{who} answers {_way(meter)}")]
    off = abs(deviation) > CLOCK_DEVIATION_S
    checks.append(
        Check(
            f"meter {meter.id}: clock",
            not off,
            f"{deviation:+.1f} s from the box's clock",
            "synchronise the box first (below), then set the meter's clock with its "
            "tool or let the head-end's time sync do it"
            if off
            else "",
        )
    )
    return checks


# -- the box ------------------------------------------------------------------------------

#: adjtimex(2)'s clock states; TIME_ERROR (5): not synchronised.
TIME_ERROR = 5


def clock_synchronised() -> bool | None:
    """Whether the kernel says the clock is synchronised (adjtimex(2) with no change: its
    state is not TIME_ERROR), None if that cannot be asked."""
    path = ctypes.util.find_library("c")
    if path is None:
        return None
    libc = ctypes.CDLL(path, use_errno=True)
    buffer = ctypes.create_string_buffer(512)  # struct timex (208 bytes on 64-bit) zeroed: read only
    state = libc.adjtimex(buffer)
    return None if state < 0 else state != TIME_ERROR


def check_clock() -> Check:
    state = clock_synchronised()
    if state is None:
        return Check(
            "box clock",
            False,
            "the kernel's clock state could not be read",
            "check with timedatectl; enable NTP: timedatectl set-ntp true",
        )
    if not state:
        return Check(
            "box clock",
            False,
            "not synchronised (kernel: TIME_ERROR)",
            "enable NTP (timedatectl set-ntp true) and let it reach a server (the tunnel "
            "or the uplink network)",
        )
    return Check("box clock", True, "synchronised")


def check_disk(path: str, *, used_per_day: float | None = None) -> Check:
    name = "archive disk"
    if not path:
        return Check(name, True, "no archive configured")
    root = Path(path).absolute()
    where = next(p for p in (root, *root.parents) if p.exists())  # not made yet: its disk
    usage = shutil.disk_usage(where)
    rate = archive_rate(root) if used_per_day is None else used_per_day
    days = usage.free / rate if rate else float("inf")
    found = f"{usage.free / 2**20:.0f} MiB free of {usage.total / 2**20:.0f} MiB at {where}"
    if rate:
        found += f"; {rate / 2**20:.2f} MiB a day: {days:.0f} days left"
    if usage.free < MIN_FREE_BYTES or days < MIN_DAYS_LEFT:
        return Check(
            name,
            False,
            found,
            "free space or shorten [archive.keep_days]; a bigger SD card for years of load profile",
        )
    return Check(name, True, found)


def archive_rate(root: Path) -> float:
    """Bytes a day the archive grows by: its files' bytes over the days they span (0 if
    less than a day of files)."""
    if not root.is_dir():
        return 0.0
    files = [p for p in root.rglob("*") if p.is_file()]
    if not files:
        return 0.0
    times = [p.stat().st_mtime for p in files]
    span = (max(times) - min(times)) / 86400
    return sum(p.stat().st_size for p in files) / span if span >= 1 else 0.0


def check_certificate(pki: str, now: dt.datetime) -> list[Check]:
    own = Path(pki) / "own" / "certs" / "smx.der"
    trusted = list((Path(pki) / "trusted" / "certs").glob("*"))
    rejected = list((Path(pki) / "rejected" / "certs").glob("*"))
    trust = Check(
        "trust list",
        True,
        f"{len(trusted)} trusted, {len(rejected)} rejected (a client's first try; decide with "
        "smx-gateway certs list / trust)",
    )
    if not own.exists():
        return [
            Check("own certificate", False, f"none at {own}", "start the gateway once: it makes one"),
            trust,
        ]
    cert = x509.load_der_x509_certificate(own.read_bytes())
    days = (cert.not_valid_after_utc - now).total_seconds() / 86400
    found = f"valid until {cert.not_valid_after_utc:%Y-%m-%d} ({days:.0f} days)"
    if days < CERTIFICATE_DAYS:
        renew = (f"move {own.parent.parent} aside and restart the gateway (it makes a new one), then "
                 "trust the new one in the clients")  # fmt: skip
        return [Check("own certificate", False, found, renew), trust]
    return [Check("own certificate", True, found), trust]


def check_bind(host: str) -> Check:
    name = "OPC UA address"
    if host in ("", "0.0.0.0", "::", "127.0.0.1", "::1", "localhost"):
        return Check(name, True, f"{host or 'all addresses'}")
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.bind((host, 0))
    except OSError as err:
        return Check(
            name,
            False,
            f"{host} is not an address of this box ({err.strerror})",
            "bring the tunnel up (systemctl status openvpn-client@smx) or fix [opcua] host",
        )
    return Check(name, True, f"{host} present")


async def check_broker(config: GatewayConfig) -> Check:
    name = "uplink broker"
    up = config.upstream
    if not up.enabled:
        return Check(name, True, "no uplink configured")
    url = BrokerUrl.parse(up.broker)
    context = None
    try:
        if url.tls:  # as the uplink makes it: its own certificate unless [upstream] names one
            if up.certificate:
                cert, key = Path(up.certificate), Path(up.key)
            else:
                pki = Pki(config.security.pki)
                cert, key = pki.own_certificate_pem(), pki.own_key
            context = await asyncio.to_thread(tls_context, up.ca, cert, key)
    except (OSError, ssl.SSLError, GatewayError) as err:
        return Check(
            name,
            False,
            f"{up.broker}: the TLS files: {err}",
            "check [upstream] ca, certificate and key (readable by the service user)",
        )
    try:
        async with asyncio.timeout(15):
            _, writer = await asyncio.open_connection(
                url.host, url.port, ssl=context, server_hostname=url.host if context else None
            )
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
    except (OSError, TimeoutError, ssl.SSLError) as err:
        return Check(
            name,
            False,
            f"{up.broker}: {err}",
            "check the network or tunnel to the broker and [upstream] ca/certificate/key",
        )
    return Check(name, True, f"{up.broker} reachable{' with TLS' if url.tls else ''}")


async def diagnose(config: GatewayConfig, *, only_meters: bool = False) -> list[Check]:
    """Every check of ``config``, in the installer's order."""
    checks: list[Check] = []
    for meter in config.meters:
        device = check_device(meter)
        checks.append(device)
        if device.ok:
            checks += await check_meter(meter)
    if only_meters:
        return checks
    steps: list[Callable[[], Check | list[Check] | Awaitable[Check]]] = [
        check_clock,
        lambda: check_disk(config.archive.path),
        lambda: check_certificate(config.security.pki, dt.datetime.now(dt.UTC)),
        lambda: check_bind(config.opcua.host),
        lambda: check_broker(config),
    ]
    for step in steps:
        got = step()
        if asyncio.iscoroutine(got):
            got = await got
        checks += got if isinstance(got, list) else [got]  # type: ignore[list-item]
    return checks
