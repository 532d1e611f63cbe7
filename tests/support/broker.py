"""A real MQTT broker (mosquitto) on loopback for the uplink tests, its PKI, an observing
MQTT 5 client and a TCP proxy that can turn into a black hole.

* :func:`make_pki`: a test CA with a server certificate for 127.0.0.1/localhost and one
  client certificate per name (CN = the name: the broker's username with
  ``use_identity_as_username``, which is the box's PublisherId); and a second, unrelated
  "rogue" CA with its own server and client certificate, for the refusals.
* :func:`mosquitto`: ``mosquitto -c <conf>`` with a configuration written for the test
  (plain or TLS, optionally an ACL: :func:`documented_acl` is ``docs/mosquitto/acl``, so the
  documented file is the tested one), on a free loopback port; :meth:`Broker.stop` and
  :meth:`Broker.start` take it away and bring it back on the same port (with persistence,
  retained messages survive), :meth:`Broker.kill` ends it without a goodbye.
* :func:`subscriber`: an aiomqtt MQTT 5 client that records every message it receives;
  tests wait for what they expect with :meth:`Subscriber.wait_for`, woken by each arrival.
* :func:`blackhole_proxy`: a loopback TCP proxy whose links can go silent
  (:meth:`BlackholeProxy.stall`: nothing forwarded, nothing closed) or be cut with a reset.

Nothing here sleeps to let something happen: the broker is ready when it logs that it runs
(read from its stderr as it comes), messages and connections are waited for as events.
Every process, task and socket is ended when its ``async with`` block ends, also on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

ROOT = Path(__file__).resolve().parents[2]
#: The broker's ACL and configuration as documented for operators; tests load these very files.
DOCUMENTED_ACL = ROOT / "docs" / "mosquitto" / "acl"
DOCUMENTED_CONF = ROOT / "docs" / "mosquitto" / "mosquitto.conf"
HOST = "127.0.0.1"
#: Client certificates every PKI has: the observing client and the operator's head-end.
DEFAULT_CLIENTS = ("observer", "headend")
#: The rogue CA's client certificate carries the most privileged name there is: the broker
#: must refuse it for its issuer, whatever it says it is.
ROGUE_CLIENT = "headend"
#: mosquitto is up within a fraction of a second; a loaded CI machine gets plenty more.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
_PORT_ATTEMPTS = 5
#: What the tests' own logging lines set (BrokerConfig._logging).
_LOGGING_OPTIONS = ("log_dest", "log_type", "log_timestamp_format", "connection_messages", "user")
#: A stopping mosquitto that has not ended after this long is woken (see Broker._wake).
_WAKE_INTERVAL = 0.5
_BACKDATE = dt.timedelta(minutes=5)
_LIFETIME = dt.timedelta(days=30)


def mosquitto_binary() -> str | None:
    """The ``mosquitto`` program (Debian puts it in /usr/sbin, which a user's PATH may lack)."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


def require_mosquitto() -> str:
    """The mosquitto program for a test; skips the test without one, but fails it on CI (which
    installs mosquitto, so a missing one there is a broken setup, not a reason to pass quietly)."""
    binary = mosquitto_binary()
    if binary is not None:
        return binary
    reason = "mosquitto not installed (apt-get install mosquitto)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def documented_acl() -> str:
    """The text of ``docs/mosquitto/acl``, read now from the repository."""
    return DOCUMENTED_ACL.read_text(encoding="utf-8")


# -- PKI ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerPki:
    """PEM files of a broker test PKI (key files mode 0600)."""

    folder: Path
    ca: Path
    server_cert: Path
    server_key: Path
    #: A second CA that has nothing to do with :attr:`ca`, its server certificate (also for
    #: 127.0.0.1/localhost) and a client certificate (CN :data:`ROGUE_CLIENT`).
    rogue_ca: Path
    rogue_cert: Path
    rogue_key: Path
    rogue_client_cert: Path
    rogue_client_key: Path
    #: name -> (certificate, key) of the client certificates issued by :attr:`ca`.
    clients: dict[str, tuple[Path, Path]] = field(default_factory=dict)

    def client_cert(self, name: str) -> Path:
        return self._client(name)[0]

    def client_key(self, name: str) -> Path:
        return self._client(name)[1]

    def _client(self, name: str) -> tuple[Path, Path]:
        try:
            return self.clients[name]
        except KeyError:
            raise KeyError(
                f"no client certificate {name!r} in {self.folder} (have {sorted(self.clients)})"
            ) from None

    def client_context(
        self, name: str, *, rogue_identity: bool = False, trust_rogue: bool = False
    ) -> ssl.SSLContext:
        """A client TLS context as a box would have: it trusts :attr:`ca` (or the rogue CA with
        ``trust_rogue``), checks the server's name, and presents the client certificate
        ``name`` (or, with ``rogue_identity``, the rogue CA's client certificate)."""
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=self.rogue_ca if trust_rogue else self.ca
        )
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if rogue_identity:
            context.load_cert_chain(self.rogue_client_cert, self.rogue_client_key)
        else:
            context.load_cert_chain(self.client_cert(name), self.client_key(name))
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: made in a millisecond (an RSA key takes tens), and OpenSSL in mosquitto takes it.
    return ec.generate_private_key(ec.SECP256R1())


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _ca(common_name: str, now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _issue(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    common_name: str,
    *,
    server: bool,
    now: dt.datetime,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = _new_key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
    )
    if server:
        # Python's ssl checks the address the client dialled against the SAN (not the CN).
        names: list[x509.GeneralName] = [
            x509.IPAddress(ipaddress.ip_address(HOST)),
            x509.DNSName("localhost"),
        ]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    os.chmod(path, 0o600)  # also when the file was there before with other bits
    return path


def make_pki(folder: Path, *, clients: Sequence[str] = ()) -> BrokerPki:
    """A broker PKI in ``folder`` (made if missing): CA, server certificate, a client
    certificate for each of ``clients`` and of :data:`DEFAULT_CLIENTS`, and the rogue CA."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca = _ca("SMX test broker CA", now)
    server = _issue(ca, "localhost", server=True, now=now)
    rogue = _ca("SMX rogue CA", now)
    rogue_server = _issue(rogue, "localhost", server=True, now=now)
    rogue_client = _issue(rogue, ROGUE_CLIENT, server=False, now=now)
    issued: dict[str, tuple[Path, Path]] = {}
    for i, name in enumerate(dict.fromkeys([*DEFAULT_CLIENTS, *clients])):
        cert, key = _issue(ca, name, server=False, now=now)
        # The CN may be anything a test tries ("a/b"); the file name is safe and unique.
        stem = f"client{i}-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}"
        issued[name] = (_write_cert(folder / f"{stem}.crt", cert), _write_key(folder / f"{stem}.key", key))
    return BrokerPki(
        folder=folder,
        ca=_write_cert(folder / "ca.crt", ca[0]),
        server_cert=_write_cert(folder / "server.crt", server[0]),
        server_key=_write_key(folder / "server.key", server[1]),
        rogue_ca=_write_cert(folder / "rogue-ca.crt", rogue[0]),
        rogue_cert=_write_cert(folder / "rogue-server.crt", rogue_server[0]),
        rogue_key=_write_key(folder / "rogue-server.key", rogue_server[1]),
        rogue_client_cert=_write_cert(folder / "rogue-client.crt", rogue_client[0]),
        rogue_client_key=_write_key(folder / "rogue-client.key", rogue_client[1]),
        clients=issued,
    )


# -- the broker --------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (another process may take it before
    the caller binds it: :func:`mosquitto` then tries another)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


class BrokerStartError(RuntimeError):
    """mosquitto did not come up; the message has its log."""


@dataclass
class BrokerConfig:
    """What :func:`mosquitto` was asked for: the configuration file is made from this."""

    work: Path
    tls: BrokerPki | None = None
    rogue: bool = False
    acl: str | None = None
    password_file: Path | None = None
    persistence: bool = False
    max_queued_messages: int = 1000
    #: docs/mosquitto/mosquitto.conf with the documented ACL, only paths and port replaced.
    documented: bool = False
    #: A production broker's logging (notices and up, no connection lines) for load: the
    #: tests' ``log_type all`` writes a line per PUBLISH, which would be the broker's main
    #: work (and the reading test's) at thousands of messages a second.
    quiet: bool = False

    def _logging(self) -> list[str]:
        if self.quiet:
            lines = [f"log_dest file {self.work / 'mosquitto.log'}", "log_dest stderr"]
            lines += [f"log_type {t}" for t in ("error", "warning", "notice", "information")]
            lines.append("connection_messages false")
            if os.geteuid() == 0:
                lines.append("user root")
            return lines
        lines = [
            f"log_dest file {self.work / 'mosquitto.log'}",
            # stderr is read by the test as it comes: the broker's readiness and its refusals are events.
            "log_dest stderr",
            "log_type all",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            # As root, mosquitto would change to the user "mosquitto", which may not read the
            # test's 0700 folders (keys, log, persistence). A broker in production runs as its user.
            lines.append("user root")
        return lines

    def _documented(self, port: int) -> str:
        """docs/mosquitto/mosquitto.conf for this test: its listener on ``127.0.0.1:port``, the
        test PKI's files, the documented ACL copied here, persistence here, logging to the test."""
        assert self.tls is not None, "the documented configuration is TLS only"
        acl_path = self.work / "acl"
        acl_path.write_text(documented_acl(), encoding="utf-8")
        store = self.work / "persistence"
        store.mkdir(exist_ok=True)
        cert, key = (
            (self.tls.rogue_cert, self.tls.rogue_key)
            if self.rogue
            else (self.tls.server_cert, self.tls.server_key)
        )
        replace = {
            "listener": f"{port} {HOST}",
            "cafile": str(self.tls.ca),
            "certfile": str(cert),
            "keyfile": str(key),
            "acl_file": str(acl_path),
            "persistence_location": f"{store}/",
        }
        lines, seen = [], set()
        for line in DOCUMENTED_CONF.read_text(encoding="utf-8").splitlines():
            option = line.split(None, 1)[0] if line.strip() and not line.startswith("#") else ""
            if option in replace:
                line = f"{option} {replace[option]}"
                seen.add(option)
            elif option in _LOGGING_OPTIONS:
                continue  # the test's logging instead (mosquitto refuses some options twice)
            lines.append(line)
        assert seen == set(replace), f"{DOCUMENTED_CONF} lacks {set(replace) - seen}"
        return "\n".join([*lines, "# added by tests/support/broker.py", *self._logging()]) + "\n"

    def text(self, port: int) -> str:
        """The mosquitto.conf for a listener on ``127.0.0.1:port``."""
        if self.documented:
            return self._documented(port)
        lines = [
            "# written by tests/support/broker.py",
            "per_listener_settings false",
            f"listener {port} {HOST}",
            *self._logging(),
            f"max_queued_messages {self.max_queued_messages}",
        ]
        if self.tls is not None:
            pki = self.tls
            cert, key = (pki.rogue_cert, pki.rogue_key) if self.rogue else (pki.server_cert, pki.server_key)
            lines += [
                f"cafile {pki.ca}",
                f"certfile {cert}",
                f"keyfile {key}",
                "require_certificate true",
                "use_identity_as_username true",
                "tls_version tlsv1.2",
            ]
        if self.password_file is not None:
            lines += [f"password_file {self.password_file}", "allow_anonymous false"]
        elif self.tls is not None:
            # The identity is the certificate's CN: nobody is anonymous, as in production.
            lines.append("allow_anonymous false")
        else:
            lines.append("allow_anonymous true")
        if self.acl is not None:
            acl_path = self.work / "acl"
            acl_path.write_text(self.acl, encoding="utf-8")
            lines.append(f"acl_file {acl_path}")
        if self.persistence:
            store = self.work / "persistence"
            store.mkdir(exist_ok=True)
            lines += ["persistence true", f"persistence_location {store}/"]
        else:
            lines.append("persistence false")
        return "\n".join(lines) + "\n"


class Broker:
    """A mosquitto process with a configuration of its own in ``work``."""

    def __init__(self, config: BrokerConfig, port: int) -> None:
        config.work.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.host = HOST
        self.port = port
        self.log_path = config.work / "mosquitto.log"
        self.conf_path = config.work / "mosquitto.conf"
        #: Every line mosquitto wrote to stderr, over all its runs.
        self.lines: list[str] = []
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        #: The process whose output has ended (it has exited and all it wrote is read).
        self._silent: asyncio.subprocess.Process | None = None
        self._changed = asyncio.Condition()
        self._choose_port = port == 0
        self._killed = False

    @property
    def tls(self) -> bool:
        return self.config.tls is not None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def log_text(self) -> str:
        """mosquitto's log file (all its runs)."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def mark(self) -> int:
        """Where the log is now: wait for lines after it with ``wait_log(..., since=mark)``."""
        return len(self.lines)

    def matching(self, pattern: str, since: int = 0) -> list[str]:
        return [line for line in self.lines[since:] if re.search(pattern, line)]

    async def wait_log(self, pattern: str, *, since: int = 0, count: int = 1, timeout: float = 30) -> str:
        """The ``count``-th log line from ``since`` on that matches ``pattern`` (a regular expression)."""
        regex = re.compile(pattern)
        seen, found = since, 0
        try:
            async with asyncio.timeout(timeout), self._changed:
                while True:
                    for line in self.lines[seen:]:
                        if regex.search(line):
                            found += 1
                            if found >= count:
                                return line
                    seen = len(self.lines)
                    if self._silent is self._process:  # all it wrote is read, and it has ended
                        raise AssertionError(
                            f"mosquitto is not running; {found} of {count} line(s) matching {pattern!r}:\n"
                            + self.tail()
                        )
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"mosquitto: {found} of {count} line(s) matching {pattern!r} within {timeout} s:\n"
                + self.tail()
            ) from None

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.lines[-n:])

    async def start(self) -> None:
        """Start mosquitto (again on the same port once it has one) and wait until it runs."""
        if self._killed:
            await self._end(signal.SIGKILL)  # reap the killed one first
        if self.running:
            raise RuntimeError("mosquitto is running already")
        binary = mosquitto_binary()
        if binary is None:
            raise BrokerStartError("no mosquitto binary (apt install mosquitto)")
        attempts = _PORT_ATTEMPTS if self._choose_port else 1
        for attempt in range(attempts):
            if self._choose_port and (attempt or not self.port):
                self.port = free_port()
            self.conf_path.write_text(self.config.text(self.port), encoding="utf-8")
            since = self.mark()
            self._process = await asyncio.create_subprocess_exec(
                binary, "-c", str(self.conf_path), cwd=self.config.work, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            self._reader = asyncio.create_task(self._read(self._process))
            try:
                await self.wait_log(r"mosquitto version \S+ running", since=since, timeout=START_TIMEOUT)
            except AssertionError as err:
                await self._end(signal.SIGKILL)
                if self.matching("Address already in use", since) and attempt + 1 < attempts:
                    continue  # another process took the port between free_port() and the bind
                raise BrokerStartError(f"mosquitto did not start on port {self.port}: {err}") from None
            self._choose_port = False  # from now on: the same port, as a restarted broker has
            return

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stderr is not None
        while line := await process.stderr.readline():
            async with self._changed:
                self.lines.append(line.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()
        await process.wait()
        async with self._changed:
            self._silent = process
            self._changed.notify_all()

    async def stop(self) -> int | None:
        """SIGTERM (mosquitto saves its persistence database and says goodbye) and wait; the
        exit status, None if it was not running."""
        return await self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL now: no goodbye, no persistence saved (the next :meth:`start` or the end of
        the block reaps it)."""
        if self.running:
            assert self._process is not None
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            self._killed = True

    async def _end(self, sig: int) -> int | None:
        self._killed = False
        process, reader = self._process, self._reader
        if process is None:
            return None
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    while True:
                        try:
                            await asyncio.wait_for(asyncio.shield(process.wait()), _WAKE_INTERVAL)
                            break
                        except TimeoutError:
                            await self._wake(process, sig)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        try:
            # Killed or ended: it is gone at once and its stderr closes; a wait beyond this
            # is a broken stop, to fail with the log rather than hang.
            async with asyncio.timeout(STOP_TIMEOUT):
                await process.wait()
                if reader is not None:
                    await reader
        except TimeoutError:
            raise AssertionError(
                f"mosquitto (pid {process.pid}) or its output not ended {STOP_TIMEOUT} s after the stop:\n"
                + self.tail()
            ) from None
        return process.returncode

    async def _wake(self, process: asyncio.subprocess.Process, sig: int) -> None:
        """The signal again, and a connection to make it look at it: mosquitto 2.0.11 loses a
        SIGTERM that comes just after it logged "running" (seen here in one stop of three
        right after the start: it runs on with the signal handled, not pending), and it
        blocks the signal while it waits for its sockets."""
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection(self.host, self.port)
            writer.transport.abort()


@contextlib.asynccontextmanager
async def mosquitto(
    work: Path,
    *,
    tls: BrokerPki | None = None,
    rogue: bool = False,
    acl: str | None = None,
    password_file: Path | None = None,
    port: int = 0,
    persistence: bool = False,
    max_queued_messages: int = 1000,
    documented: bool = False,
    quiet: bool = False,
) -> AsyncIterator[Broker]:
    """A running mosquitto on ``127.0.0.1:port`` (``port=0``: a free one), configured in ``work``.

    ``tls``: a TLS listener with the PKI's server certificate (the rogue one with ``rogue``),
    client certificates required and their CN the username. ``acl``: the text of an ACL file
    (:func:`documented_acl` for the documented one). Without TLS and password file, anonymous
    clients may connect (tests only). ``documented``: docs/mosquitto/mosquitto.conf itself, with
    its ACL, only the port, the paths and the logging replaced (``persistence`` and
    ``max_queued_messages`` are then what it says). ``quiet``: a production broker's logging
    (for load). The broker is ended when the block ends.
    """
    if rogue and tls is None:
        raise ValueError("rogue=True needs tls")
    if documented and (tls is None or acl is not None or password_file is not None):
        raise ValueError("documented=True needs tls, and brings its own ACL")
    config = BrokerConfig(
        work, tls, rogue, acl, password_file, persistence, max_queued_messages, documented, quiet
    )
    broker = Broker(config, port)
    try:
        await broker.start()
        yield broker
    finally:
        await broker._end(signal.SIGTERM)


# -- an observing MQTT 5 client ----------------------------------------------------------------


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches the MQTT topic filter (``+`` one level, ``#`` the rest).

    As MQTT 3.1.1/5 §4.7.2: a filter starting with a wildcard does not match topics starting
    with ``$``.
    """
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    levels = topic.split("/")
    wanted = topic_filter.split("/")
    for i, part in enumerate(wanted):
        if part == "#":
            return True  # also the parent level: "a/#" matches "a"
        if i >= len(levels):
            return False
        if part != "+" and part != levels[i]:
            return False
    return len(levels) == len(wanted)


@dataclass(frozen=True)
class Received:
    """One PUBLISH the subscriber got."""

    topic: str
    payload: bytes
    retain: bool
    qos: int
    content_type: str | None
    #: ``time.monotonic()`` when it arrived.
    time: float
    #: The MQTT 5 user properties, in order.
    user_properties: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        flags = f"qos {self.qos}{' retained' if self.retain else ''}"
        body = self.payload[:80].decode(errors="replace")
        return f"{self.topic} ({flags}, {self.content_type}): {body}{'...' if len(self.payload) > 80 else ''}"


def mqtt_client(
    broker: Broker,
    client_name: str,
    *,
    tls: BrokerPki | None = None,
    context: ssl.SSLContext | None = None,
    port: int | None = None,
    **kwargs: object,
) -> aiomqtt.Client:
    """An (unconnected) aiomqtt MQTT 5 client of ``broker``; with ``tls`` it presents the
    client certificate ``client_name`` and trusts the PKI's CA (or uses ``context``). The
    client id is ``client_name`` plus the pid and a counter (ids must be unique on a broker).
    ``port``: dial this loopback port instead (a :class:`BlackholeProxy` in front of the
    broker). ``kwargs`` go to :class:`aiomqtt.Client` (``will``, ``timeout``, ``keepalive``...)."""
    if context is None and tls is not None:
        context = tls.client_context(client_name)
    return aiomqtt.Client(
        broker.host,
        broker.port if port is None else port,
        identifier=f"{client_name}-{os.getpid()}-{next(_ids)}",
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=context,
        **kwargs,  # type: ignore[arg-type]
    )


_ids = iter(range(1, 1 << 62))


class Subscriber:
    """An MQTT 5 client subscribed (QoS 1) to some topic filters, keeping every message."""

    def __init__(self, client: aiomqtt.Client, topics: Sequence[str]) -> None:
        self.client = client
        self.topics = tuple(topics)
        self.messages: list[Received] = []
        #: topic filter -> the SUBACK's reason code (``.is_failure`` when the broker refused).
        self.granted: dict[str, ReasonCode] = {}
        self._changed = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None
        #: The messages end (connection lost, or the block ended), and why.
        self._closed = False
        self._ended: BaseException | None = None

    async def _subscribe(self) -> None:
        for topic in self.topics:
            (code,) = await self.client.subscribe(topic, qos=1)
            assert isinstance(code, ReasonCode), code  # MQTT 5: a reason code, not a bare QoS
            self.granted[topic] = code
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.client.messages:
                props = message.properties
                content_type = getattr(props, "ContentType", None) if props is not None else None
                user = tuple(getattr(props, "UserProperty", ()) or ()) if props is not None else ()
                payload = message.payload if isinstance(message.payload, bytes | bytearray) else b""
                received = Received(
                    str(message.topic), bytes(payload), bool(message.retain), int(message.qos),
                    content_type, time.monotonic(), user,
                )  # fmt: skip
                async with self._changed:
                    self.messages.append(received)
                    self._changed.notify_all()
        except BaseException as error:
            self._ended = error
            raise
        finally:
            async with self._changed:
                self._closed = True
                self._changed.notify_all()

    def on(self, topic_filter: str) -> list[Received]:
        """The messages so far whose topic matches ``topic_filter``."""
        return [m for m in self.messages if topic_matches(topic_filter, m.topic)]

    def summary(self, n: int = 20) -> str:
        counts: dict[str, int] = {}
        for m in self.messages:
            counts[m.topic] = counts.get(m.topic, 0) + 1
        lines = [f"subscribed {self.granted}; {len(self.messages)} message(s)"]
        lines += [f"  {count} x {topic}" for topic, count in sorted(counts.items())]
        lines += [f"  {m}" for m in self.messages[-n:]]
        return "\n".join(lines)

    async def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 30) -> None:
        """Wait until ``predicate(messages)`` holds, woken by every message; AssertionError
        with what arrived after ``timeout`` s or when the connection is gone."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                while not predicate(self.messages):
                    if self._closed:
                        raise AssertionError(
                            f"the subscriber's connection ended ({self._ended!r}):\n{self.summary()}"
                        )
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"not within {timeout} s:\n{self.summary()}") from None

    async def wait_on(self, topic_filter: str, count: int = 1, timeout: float = 30) -> list[Received]:
        """Wait for ``count`` messages matching ``topic_filter``; all that match."""
        await self.wait_for(lambda _: len(self.on(topic_filter)) >= count, timeout)
        return self.on(topic_filter)


@contextlib.asynccontextmanager
async def subscriber(
    broker: Broker,
    topics: Sequence[str] | str,
    *,
    tls: BrokerPki | None = None,
    client_name: str = "observer",
    port: int | None = None,
) -> AsyncIterator[Subscriber]:
    """A :class:`Subscriber` of ``broker`` whose subscriptions are acknowledged (SUBACK) when
    the block starts: whatever is published after that is recorded. ``port``: as for
    :func:`mqtt_client`."""
    topics = [topics] if isinstance(topics, str) else list(topics)
    async with mqtt_client(broker, client_name, tls=tls, port=port) as client:
        sub = Subscriber(client, topics)
        await sub._subscribe()
        try:
            yield sub
        finally:
            if sub._reader is not None:
                sub._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await sub._reader


def exception_chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and every exception behind it (``__cause__`` and ``__context__``, also one
    hidden by ``raise ... from None``, as aiomqtt does with the errors of its connect)."""
    seen: set[int] = set()
    todo: list[BaseException] = [error]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
        if isinstance(current, BaseExceptionGroup):
            todo += list(current.exceptions)


def content_type_properties(content_type: str = "application/json") -> Properties:
    """MQTT 5 PUBLISH properties with a content type."""
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ContentType = content_type
    return props


# -- a link that can go silent ------------------------------------------------------------------


@dataclass(eq=False)  # kept in a set: by identity
class _Link:
    """One proxied connection: the client's and the target's streams."""

    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class BlackholeProxy:
    """A TCP proxy ``127.0.0.1:port`` -> ``target_host:target_port``, both ways.

    :meth:`stall`: the link goes silent, as a mobile link that drops every packet: nothing is
    forwarded any more in either direction, and neither socket is closed (no FIN, no RST);
    the proxy stops reading, so once the buffers are full the sender's writes block as they
    would without ACKs. New connections made while stalled are accepted (the kernel completes
    the handshake) and carry nothing. :meth:`resume` forwards again. :meth:`cut`: every
    connection is reset (RST to both ends); new connections are forwarded as before.
    """

    def __init__(self, target_host: str, target_port: int, *, host: str = HOST) -> None:
        self.target_host, self.target_port = target_host, target_port
        self.host = host
        self.port = 0
        #: Connections accepted so far.
        self.connections = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._changed = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def stalled(self) -> bool:
        return not self._flowing.is_set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def stall(self) -> None:
        """Forward nothing from now on, in either direction; close nothing."""
        self._flowing.clear()

    def resume(self) -> None:
        """Forward again (what the target or client sent meanwhile and the proxy had not
        read yet follows; the chunks read when the stall began are lost)."""
        self._flowing.set()

    def cut(self) -> int:
        """Reset every connection now (RST to both ends); how many there were."""
        links = list(self._links)
        for link in links:
            self._abort(link)
        return len(links)

    async def wait_connections(self, n: int, timeout: float = 30) -> None:
        """Wait until ``n`` connections have been accepted in all."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: self.connections >= n)
        except TimeoutError:
            raise AssertionError(f"{self.connections} connection(s), not {n}, within {timeout} s") from None

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self.cut()
        for task in list(self._handlers):
            task.cancel()
        for task in list(self._handlers):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @staticmethod
    def _abort(link: _Link) -> None:
        for task in link.tasks:
            task.cancel()
        for writer in link.writers:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                # Linger 0: close() sends RST instead of FIN.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        link = _Link(writers=[writer])
        self._links.add(link)
        async with self._changed:
            self.connections += 1
            self._changed.notify_all()
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
            except OSError:
                self._abort(link)
                return
            link.writers.append(up_writer)
            link.tasks += [
                asyncio.create_task(self._pump(reader, up_writer)),
                asyncio.create_task(self._pump(up_reader, writer)),
            ]
            await asyncio.gather(*link.tasks, return_exceptions=True)
        finally:
            self._links.discard(link)
            for w in link.writers:
                w.close()  # after both ends said goodbye (FIN): what is still buffered goes out first
            self._handlers.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy ``reader`` to ``writer`` while flowing; pass an end (FIN) on as a half close."""
        try:
            while True:
                await self._flowing.wait()
                data = await reader.read(65536)
                if not self._flowing.is_set():
                    # Read just as the stall began: lost, as on the dead link.
                    continue
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            return


@contextlib.asynccontextmanager
async def blackhole_proxy(target_host: str, target_port: int) -> AsyncIterator[BlackholeProxy]:
    """A :class:`BlackholeProxy` listening for the length of the block."""
    proxy = BlackholeProxy(target_host, target_port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
