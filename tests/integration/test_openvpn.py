"""OpenVPN remote access with the real OpenVPN, in two network namespaces joined by a veth
pair (tests/support/netns.py): the operator's concentrator (underlay 192.0.2.1) and the gateway
(192.0.2.2). The PKI, server.conf and the gateway's profile come from gateway/provision/openvpn.py.

The gateway serves OPC UA and its web page on its fixed tunnel address only; from the
concentrator's namespace a real asyncua client reads a live value through the tunnel,
while the same ports on the gateway's underlay address refuse connections. Then the
concentrator refuses a client certificate of a foreign CA, a client with a wrong tls-crypt
key, and a revoked gateway, each seen in its log.

Nothing sleeps: every step waits for a line of a process's output (OpenVPN with --verb 3,
the gateway's start banner) with a timeout, and each output is kept in a file under the
test's temporary folder. Every process is ended and both namespaces removed at the end,
also when a test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from gateway.provision.openvpn import VpnFolder, inline_block, static_key
from tests.support.netns import (
    Namespace,
    leftover_namespaces,
    namespace_pair,
    netns_unavailable,
    openvpn_binary,
)

# One tunnel and one gateway for the module: they live on the module's event loop.
pytestmark = pytest.mark.asyncio(loop_scope="module")

CONCENTRATOR = "192.0.2.1/24"
GATEWAY = "192.0.2.2/24"
OPCUA_PORT = 4840
WEB_PORT = 8080
#: OpenVPN is up within a second or two here; the gateway makes its OPC UA certificate first.
VPN_TIMEOUT = 20.0
GATEWAY_TIMEOUT = 60.0

#: Run with ``ip netns exec <concentrator> python -c``: read a live voltage over OPC UA and
#: the REST API through the tunnel, then try the same ports on the gateway's underlay address.
PROBE = textwrap.dedent("""\
    import asyncio, json, socket, sys, urllib.request
    from asyncua import Client, ua
    from gateway.opcua.ids import SMX_NAMESPACE

    endpoint, web, underlay, ports = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]

    async def voltage():
        async with Client(endpoint, timeout=10) as client:
            ns = await client.get_namespace_index(SMX_NAMESPACE)
            good = asyncio.Queue()

            class Handler:
                def datachange_notification(self, node, val, data):
                    if data.monitored_item.Value.StatusCode.is_good():
                        good.put_nowait(val)

            sub = await client.create_subscription(200, Handler())
            await sub.subscribe_data_change(client.get_node(ua.NodeId("meter1.1-0:32.7.0", ns)))
            async with asyncio.timeout(30):
                return await good.get()

    def underlay_port(port):
        try:
            socket.create_connection((underlay, int(port)), timeout=5).close()
        except ConnectionRefusedError:
            return "refused"
        except OSError as err:
            return f"{type(err).__name__}: {err}"
        return "connected"

    result = {"voltage": asyncio.run(voltage())}
    with urllib.request.urlopen(web + "api/meters", timeout=10) as answer:
        result["web"] = [answer.status, json.load(answer)]
    result["underlay"] = {port: underlay_port(port) for port in ports}
    print(json.dumps(result))
    """)


class LoggedProcess:
    """A process whose output (stdout and stderr) is copied line by line to a log file,
    and whose lines can be waited for."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.name = name
        self.proc = proc
        self.log = log
        self.lines: list[str] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, name: str, args: list[str], log: Path, cwd: Path | None = None) -> LoggedProcess:
        proc = await asyncio.create_subprocess_exec(
            *args, cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        return cls(name, proc, log)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.log.open("w", encoding="utf-8") as out:
            while line := await self.proc.stdout.readline():
                text = line.decode(errors="replace").rstrip("\n")
                out.write(text + "\n")
                out.flush()
                async with self._changed:
                    self.lines.append(text)
                    self._changed.notify_all()
        await self.proc.wait()
        async with self._changed:
            self._changed.notify_all()

    def mark(self) -> int:
        """Where the output is now: wait for lines after it with ``wait_for(..., since=mark)``."""
        return len(self.lines)

    def matching(self, pattern: str, since: int = 0) -> list[str]:
        return [line for line in self.lines[since:] if re.search(pattern, line)]

    async def wait_for(self, pattern: str, *, timeout: float, since: int = 0) -> str:
        """The first line from ``since`` on that matches ``pattern``; fails with the log's tail
        if none comes within ``timeout`` seconds or the process ends first."""
        regex = re.compile(pattern)
        seen = since
        try:
            async with asyncio.timeout(timeout), self._changed:
                while True:
                    for line in self.lines[seen:]:
                        if regex.search(line):
                            return line
                    seen = len(self.lines)
                    if self._reader.done() or self.proc.returncode is not None:
                        raise AssertionError(
                            f"{self.name} ended (exit {self.proc.returncode}) without a line matching "
                            f"{pattern!r}; {self.log}:\n{self.tail()}"
                        )
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"{self.name}: no line matching {pattern!r} within {timeout} s; {self.log}:\n{self.tail()}"
            ) from None

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.lines[-n:])

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """End the process (``sig``, then SIGKILL after ``timeout``); its exit status."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            try:
                async with asyncio.timeout(timeout):
                    await self.proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        await self._reader
        assert self.proc.returncode is not None
        return self.proc.returncode


@dataclass
class Site:
    """The running tunnel: namespaces, the PKI folder, the concentrator and the gateway."""

    tmp: Path
    folder: VpnFolder
    concentrator: Namespace
    gateway: Namespace
    server: LoggedProcess
    tunnel_address: str
    endpoint: str
    web_url: str
    processes: list[LoggedProcess]

    async def openvpn_client(self, name: str, profile: Path) -> LoggedProcess:
        """An OpenVPN client with ``profile`` in the gateway's namespace (ended with the module)."""
        binary = openvpn_binary()
        assert binary is not None
        args = self.gateway.exec_args(binary, "--config", str(profile), "--verb", "3")
        proc = await LoggedProcess.start(name, args, self.tmp / f"{name}.log")
        self.processes.append(proc)
        return proc


def gateway_config(address: str) -> str:
    """One simulated meter, OPC UA and the web page on the tunnel address only."""
    return textwrap.dedent(f"""\
        [security]
        profile = "demo"

        [opcua]
        host = "{address}"
        port = {OPCUA_PORT}

        [web]
        host = "{address}"
        port = {WEB_PORT}

        [[meters]]
        id = "meter1"
        protocol = "dlms"
        referencing = "ln"

        [meters.simulator]
        history_days = 1.0
        """)


def variant(profile: str, tmp: Path, name: str, **blocks: str) -> Path:
    """A copy of ``profile`` with some inline blocks replaced (``tls_crypt=...`` for <tls-crypt>)."""
    for tag, body in blocks.items():
        profile = profile.replace(inline_block(profile, tag.replace("_", "-")), body.strip() + "\n")
    path = tmp / f"{name}.ovpn"
    path.write_text(profile, encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(reason)
    binary = openvpn_binary()
    assert binary is not None
    tmp = tmp_path_factory.mktemp("openvpn")
    folder = VpnFolder(tmp / "openvpn")
    folder.init(CONCENTRATOR.split("/")[0])  # the concentrator's underlay address
    _profile, tunnel_address = folder.add("gw1")
    with namespace_pair(CONCENTRATOR, GATEWAY, role_a="conc", role_b="gw") as (conc, gw):
        processes: list[LoggedProcess] = []
        try:
            server = await LoggedProcess.start(
                "concentrator",
                conc.exec_args(
                    binary, "--cd", str(folder.server_dir), "--config", "server.conf", "--verb", "3"
                ),
                tmp / "concentrator.log",
            )
            processes.append(server)
            await server.wait_for("Initialization Sequence Completed", timeout=VPN_TIMEOUT)
            site = Site(tmp, folder, conc, gw, server, tunnel_address, "", "", processes)
            client = await site.openvpn_client("gw1-openvpn", folder.profile("gw1"))
            await client.wait_for("Initialization Sequence Completed", timeout=VPN_TIMEOUT)
            await server.wait_for(
                rf"gw1/.* MULTI: primary virtual IP .*: {re.escape(tunnel_address)}$", timeout=5
            )

            config = tmp / "smx.toml"
            config.write_text(gateway_config(tunnel_address), encoding="utf-8")
            work = tmp / "gateway"
            work.mkdir()
            gateway = await LoggedProcess.start(
                "gateway",
                gw.exec_args(sys.executable, "-m", "gateway", "run", "--config", str(config)),
                tmp / "gateway.log",
                cwd=work,  # its archive and OPC UA certificate go here, not into the repository
            )
            processes.append(gateway)
            banner = await gateway.wait_for(r"^SMX gateway serving OPC UA at ", timeout=GATEWAY_TIMEOUT)
            site.endpoint = banner.rsplit(" ", 1)[1]
            web = await gateway.wait_for(r"web page and REST API: http://", timeout=5)
            site.web_url = re.findall(r"http://\S+/", web)[0]
            yield site
        finally:
            # Ended before the namespaces go: a namespace lives on while a process is in it. All at
            # once: the concentrator takes 2 s to tell its clients (explicit-exit-notify).
            await asyncio.gather(
                *(p.stop(signal.SIGINT if p.name == "gateway" else signal.SIGTERM) for p in processes)
            )
    assert leftover_namespaces() == []


# -- tests -------------------------------------------------------------------------------------


async def test_gateway_serves_over_the_tunnel_only(site: Site) -> None:
    assert site.endpoint == f"opc.tcp://{site.tunnel_address}:{OPCUA_PORT}/smx"
    assert site.web_url == f"http://{site.tunnel_address}:{WEB_PORT}/"
    underlay = site.gateway.ip
    probe = await asyncio.create_subprocess_exec(
        *site.concentrator.exec_args(
            sys.executable, "-c", PROBE, site.endpoint, site.web_url, underlay, str(OPCUA_PORT), str(WEB_PORT)
        ),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(60):
            out, err = await probe.communicate()
    finally:
        if probe.returncode is None:
            probe.kill()
            await probe.wait()
    assert probe.returncode == 0, err.decode()
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert 200 < result["voltage"] < 260  # a live value of the simulated meter, through the tunnel
    status, meters = result["web"]
    assert status == 200
    assert [m["id"] for m in meters] == ["meter1"]
    # A refusal (not a timeout) proves the underlay address answers, but not on these ports.
    assert result["underlay"] == {str(OPCUA_PORT): "refused", str(WEB_PORT): "refused"}


async def test_client_of_a_foreign_ca_is_refused(site: Site) -> None:
    """A certificate of another CA, even with the right tls-crypt key, fails the server's TLS check."""
    foreign = VpnFolder(site.tmp / "foreign")
    foreign.init(site.concentrator.ip)  # same server name: only the CA differs
    path, _address = foreign.add("intruder")
    ours = site.folder.profile("gw1").read_text(encoding="utf-8")
    # The genuine CA (so the intruder trusts the concentrator and sends its certificate) and
    # the genuine tls-crypt key (so its packets reach TLS at all): only its certificate is foreign.
    profile = variant(
        path.read_text(encoding="utf-8"), site.tmp, "intruder",
        ca=inline_block(ours, "ca"), tls_crypt=inline_block(ours, "tls-crypt"),
    )  # fmt: skip
    since = site.server.mark()
    client = await site.openvpn_client("intruder-openvpn", profile)
    await site.server.wait_for(
        r"VERIFY ERROR: depth=0, error=unable to get local issuer certificate: CN=intruder",
        since=since, timeout=VPN_TIMEOUT,
    )  # fmt: skip
    await site.server.wait_for(r"TLS Error: TLS handshake failed", since=since, timeout=VPN_TIMEOUT)
    await client.stop()
    assert not site.server.matching(r"\[intruder\] Peer Connection Initiated", since)
    assert not client.matching("Initialization Sequence Completed")


async def test_client_with_a_wrong_tls_crypt_key_is_refused(site: Site) -> None:
    """Packets without the pre-shared tls-crypt key are dropped before any TLS processing."""
    ours = site.folder.profile("gw1").read_text(encoding="utf-8")
    profile = variant(ours, site.tmp, "wrong-tls-crypt", tls_crypt=static_key())
    since = site.server.mark()
    client = await site.openvpn_client("wrong-tls-crypt-openvpn", profile)
    await site.server.wait_for(
        r"tls-crypt unwrap error: packet authentication failed", since=since, timeout=VPN_TIMEOUT
    )
    line = await site.server.wait_for(
        rf"TLS Error: tls-crypt unwrapping failed from \[AF_INET\]{re.escape(site.gateway.ip)}:\d+$",
        since=since,
        timeout=VPN_TIMEOUT,
    )
    await client.stop()
    # Dropped before TLS: the server never got to a certificate from that address and port.
    source = line.rsplit("]", 1)[1]
    assert not site.server.matching(rf"{re.escape(source)} (VERIFY|.*Peer Connection)", since)
    assert not client.matching("Initialization Sequence Completed")


async def test_revoked_gateway_is_refused(site: Site) -> None:
    """``vpn revoke`` puts the certificate on the CRL, which the running server reads again."""
    folder = site.folder
    _path, _address = folder.add("gw-old")
    kept = variant(folder.profile("gw-old").read_text(encoding="utf-8"), site.tmp, "gw-old")
    folder.revoke("gw-old")
    since = site.server.mark()
    client = await site.openvpn_client("gw-old-openvpn", kept)
    await site.server.wait_for(
        r"VERIFY ERROR: depth=0, error=certificate revoked: CN=gw-old", since=since, timeout=VPN_TIMEOUT
    )
    await client.stop()
    assert not site.server.matching(r"\[gw-old\] Peer Connection Initiated", since)
