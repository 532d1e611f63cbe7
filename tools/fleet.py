"""A local SMX fleet: mosquitto, simulated gateways and the head-end, as real processes.

``make fleet`` (issue 17, point 5) runs it for a demonstration until Ctrl-C::

    python -m tools.fleet [--gateways 3] [--instances 1] [--storage sqlite|postgresql]
                          [--http 127.0.0.1:8090] [--var var/fleet]

and the end-to-end checks (point 1) run it bounded, on PostgreSQL, with two instances::

    python -m tools.fleet --instances 2 --storage postgresql --minutes 20 --check

Why a tool and not a ``headend`` module: it starts a broker and (for ``--storage
postgresql``) a throwaway PostgreSQL cluster with the tests' own helper
(:mod:`tests.support.postgres`), which the shipped head-end must not depend on; and it
drives both programs from outside, as an operator would: ``smx-gateway run --config`` and
``smx-headend run --config`` with configurations written here, nothing in-process.

* mosquitto listens on a free 127.0.0.1 port with a generated configuration; anonymous
  clients are allowed only because nothing but this machine can reach it (the demo).
* Each gateway has a simulated meter (its own seed), its own PublisherId (``smx-1`` ...),
  time zone, archive and ports the OS picks (OPC UA, web); the uplink acknowledges on the
  head-end's ``Through`` (``ack = "consumer"``).
* The head-end lists the sites with their time zones; the first instance serves the fleet
  page at ``--http`` (``127.0.0.1:0``: a free port), the others on free ports; the URL
  printed is the one the first instance says it serves.
* Every child runs in its own process group; Ctrl-C or SIGTERM stops them all (SIGTERM to
  each group, SIGKILL to a group that has not ended in time), so nothing is left behind.
* ``--check`` after ``--minutes``: waits until the head-end has stored what the gateways
  had archived when the time was up, stops everything, then compares each gateway's
  archive (read with the gateway's own reader) with the database and prints, per site and
  stream, archived / stored / stored more than once / missing, and each instance's share.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import sys
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from headend.storage import Repository

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
ZONES = ("Europe/Vienna", "Europe/London", "America/New_York", "Asia/Tokyo", "Australia/Sydney")
#: The streams the check compares (the issue's "every LP period and minute record").
CHECKED = ("lp1", "minute")
START_TIMEOUT = 120.0
STOP_TIMEOUT = 20.0
MISSING_MOSQUITTO = "mosquitto not found: apt-get install mosquitto"
_KEEP_LINES = 2000
MARKER = ".smx-fleet"


def mosquitto_binary() -> str | None:
    """Debian puts mosquitto in /usr/sbin, which a user's PATH may lack."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Child:
    """A child process in its own process group, its output kept (last lines) and logged."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=_KEEP_LINES))
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    ended: bool = False
    reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    async def read(self, echo: bool) -> None:
        assert self.process.stdout is not None
        with self.log_path.open("a", encoding="utf-8") as log:
            while raw := await self.process.stdout.readline():
                line = raw.decode(errors="replace").rstrip("\n")
                log.write(line + "\n")
                log.flush()
                if echo:
                    print(f"[{self.name}] {line}", flush=True)
                async with self.changed:
                    self.lines.append(line)
                    self.changed.notify_all()
        await self.process.wait()
        async with self.changed:
            self.ended = True
            self.changed.notify_all()

    async def wait_line(self, pattern: str, timeout: float = START_TIMEOUT) -> str:
        """The first kept line matching ``pattern`` (a regular expression), waiting for it."""
        regex = re.compile(pattern)
        try:
            async with asyncio.timeout(timeout), self.changed:
                while True:
                    for line in self.lines:
                        if regex.search(line):
                            return line
                    if self.ended:
                        raise FleetError(f"{self.name} ended before {pattern!r}:\n" + self.tail())
                    await self.changed.wait()
        except TimeoutError:
            raise FleetError(f"{self.name}: no {pattern!r} within {timeout} s:\n" + self.tail()) from None

    def tail(self, n: int = 30) -> str:
        return "\n".join(list(self.lines)[-n:])

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """``sig`` to the whole group, then SIGKILL to the group if it has not ended in time;
        the exit status once its output is read to the end."""
        if self.process.returncode is None:
            self.signal_group(sig)
            try:
                await asyncio.wait_for(asyncio.shield(self.process.wait()), timeout)
            except TimeoutError:
                self.signal_group(signal.SIGKILL)
                await self.process.wait()
        # Whatever else the group had (a grandchild) goes with it.
        self.signal_group(signal.SIGKILL)
        if self.reader is not None:
            await self.reader
        code = self.process.returncode
        assert code is not None
        return code


class FleetError(RuntimeError):
    """Something of the fleet did not start or misbehaved; the message says what."""


@dataclass
class Options:
    gateways: int = 3
    instances: int = 1
    storage: str = "sqlite"
    var: Path = ROOT / "var" / "fleet"
    http: str = "127.0.0.1:8090"
    minutes: float = 0.0
    check: bool = False
    echo: bool = False
    #: Head-end ``[completeness]`` overrides (the tests make it quick).
    completeness: dict[str, float] = field(default_factory=dict)
    #: Gateway ``[upstream]`` overrides (TOML values as text).
    upstream: dict[str, str] = field(default_factory=dict)


@dataclass
class Gateway:
    publisher: str
    zone: str
    seed: int
    work: Path
    config: Path
    child: Child | None = None
    web_url: str = ""
    endpoint: str = ""


@dataclass
class Fleet:
    """The running parts; :func:`fleet` starts and stops them."""

    options: Options
    broker_url: str = ""
    broker: Child | None = None
    gateways: list[Gateway] = field(default_factory=list)
    headends: list[Child] = field(default_factory=list)
    headend_config: Path | None = None
    #: The database as the head-end reaches it (PostgreSQL: with its password, for checks).
    dsn: str = ""
    sqlite: Path | None = None

    #: The fleet page as the first instance serves it.
    page_url: str = ""

    async def spawn(self, name: str, *argv: str, cwd: Path) -> Child:
        logs = self.options.var / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        child = Child(name, process, logs / f"{name}.log")
        child.reader = asyncio.create_task(child.read(self.options.echo))
        return child

    async def start_broker(self) -> None:
        binary = mosquitto_binary()
        assert binary is not None
        work = self.options.var / "mosquitto"
        work.mkdir(parents=True, exist_ok=True)
        for _attempt in range(5):
            port = free_port()
            conf = work / "mosquitto.conf"
            lines = [
                "# written by tools/fleet.py: the demo broker, reachable from this machine only",
                f"listener {port} {HOST}",
                "allow_anonymous true",
                "persistence false",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "log_type information",
                "max_queued_messages 10000",
            ]
            if os.geteuid() == 0:
                lines.append("user root")  # as root mosquitto would switch to a user that cannot read var/
            conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
            self.broker = await self.spawn("mosquitto", binary, "-c", str(conf), cwd=work)
            try:
                await self.broker.wait_line(r"mosquitto version \S+ running", 30)
            except FleetError:
                await self.broker.stop(signal.SIGKILL, 5)
                if any("Address already in use" in line for line in self.broker.lines):
                    continue  # another process took the port meanwhile
                raise
            self.broker_url = f"mqtt://{HOST}:{port}"
            return
        raise FleetError("mosquitto: no free port after 5 attempts")

    def write_gateway(self, n: int) -> Gateway:
        publisher = f"smx-{n}"
        zone = ZONES[(n - 1) % len(ZONES)]
        work = self.options.var / publisher
        work.mkdir(parents=True, exist_ok=True)
        upstream = {
            "broker": f'"{self.broker_url}"',
            "publisher_id": f'"{publisher}"',
            "ack": '"consumer"',
            "initial_days": "1",
            "replay_messages_per_s": "50",
            "replay_bytes_per_s": "262144",
            **self.options.upstream,
        }
        text = "\n".join(
            [
                "# written by tools/fleet.py",
                'log_level = "WARNING"',
                "[opcua]",
                f'host = "{HOST}"',
                f'node_cache = "{self.options.var / "node-cache"}"',
                "[security]",
                'profile = "demo"',
                "anonymous = true",
                f'pki = "{work / "certs"}"',
                f'users = "{work / "certs" / "users"}"',
                "[archive]",
                f'path = "{work / "archive"}"',
                "[web]",
                f'host = "{HOST}"',
                "[upstream]",
                *(f"{key} = {value}" for key, value in upstream.items()),
                "[[meters]]",
                'id = "meter1"',
                'name = "Simulated meter"',
                'protocol = "dlms"',
                'referencing = "ln"',
                "baudrate = 9600",
                f'url = "socket://{HOST}:0"',
                f'timezone = "{zone}"',
                "[meters.simulator]",
                f"seed = {n}",
                "history_days = 2",
                "hdlc_baudrate = 9600",
            ]
        )
        config = work / "smx.toml"
        config.write_text(text + "\n", encoding="utf-8")
        return Gateway(publisher, zone, n, work, config)

    async def start_gateway(self, gw: Gateway) -> None:
        gw.child = await self.spawn(
            gw.publisher, sys.executable, "-m", "gateway", "run", "--config", str(gw.config),
            "--port", "0", "--web-port", "0", cwd=gw.work,
        )  # fmt: skip
        line = await gw.child.wait_line(r"^SMX gateway serving OPC UA at ")
        gw.endpoint = line.split(" at ", 1)[1].strip()
        web = await gw.child.wait_line(r"web page and REST API: ", 10)
        gw.web_url = web.split("API: ", 1)[1].split(" ", 1)[0]

    def write_headend(self) -> Path:
        o = self.options
        lines = ["# written by tools/fleet.py", 'profile = "demo"', 'log_level = "INFO"', "[broker]",
                 f'url = "{self.broker_url}"', 'group = "smx-headend"', "[storage]"]  # fmt: skip
        if o.storage == "postgresql":
            lines += ['backend = "postgresql"', f'dsn = "{self.dsn_without_password()}"',
                      f'password_file = "{o.var / "db-password"}"']  # fmt: skip
        else:
            self.sqlite = o.var / "headend.sqlite"
            lines += ['backend = "sqlite"', f'path = "{self.sqlite}"']
        if o.completeness:
            lines += ["[completeness]", *(f"{k} = {v}" for k, v in o.completeness.items())]
        lines += ["[http]", f'listen = "{o.http}"']
        for gw in self.gateways:
            lines += ["[[sites]]", f'publisher = "{gw.publisher}"', f'name = "Simulated site {gw.seed}"',
                      f'timezone = "{gw.zone}"', 'tags = ["fleet"]']  # fmt: skip
        # One portfolio of every site: the fleet page's portfolio view has something to show.
        lines += [
            "[[portfolios]]",
            'name = "fleet"',
            'tags = ["fleet"]',
            'description = "Every site of make fleet"',
        ]
        path = o.var / "headend.toml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def dsn_without_password(self) -> str:
        return re.sub(r"//([^:@/]+):[^@]*@", r"//\1@", self.dsn)

    async def start_headends(self) -> None:
        """Every instance started, then waited for: each is in :attr:`headends` from its
        start on, so one that never says it runs is stopped at the end all the same."""
        assert self.headend_config is not None
        for n in range(1, self.options.instances + 1):
            # One configuration for all; the second and later instances serve on any free port.
            listen = ("--listen", f"{HOST}:0") if n > 1 else ()
            self.headends.append(
                await self.spawn(
                    f"headend-{n}", sys.executable, "-m", "headend.cli", "run", "--config",
                    str(self.headend_config), "--name", f"headend-{n}", *listen, cwd=self.options.var,
                )
            )  # fmt: skip
        first = await self.headends[0].wait_line(r"^fleet page: ")
        self.page_url = first.removeprefix("fleet page: ").strip()
        await asyncio.gather(*(h.wait_line(rf"head-end {h.name}: ingesting from ") for h in self.headends))

    async def stop_gateways(self) -> None:
        """SIGINT as Ctrl-C: each gateway stops cleanly (its status says Disabled)."""
        await asyncio.gather(*(gw.child.stop(signal.SIGINT) for gw in self.gateways if gw.child))

    async def stop_headends(self) -> list[str]:
        """Stop the instances cleanly; their summary lines."""
        await asyncio.gather(*(h.stop(signal.SIGTERM) for h in self.headends))
        return [next((x for x in h.lines if x.startswith("SMX head-end ") and " stopped: " in x), "")
                for h in self.headends]  # fmt: skip

    async def stop_all(self) -> None:
        """The gateways first (their goodbye, status Disabled, reaches the head-end), then
        the instances, then the broker."""
        for group in ([gw.child for gw in self.gateways if gw.child], self.headends):
            await asyncio.gather(*(c.stop(signal.SIGINT) for c in group), return_exceptions=True)
        if self.broker is not None:
            await self.broker.stop()


def _repository(fleet: Fleet) -> object:
    from headend.storage.postgres import PostgresRepository
    from headend.storage.sqlite import SqliteRepository

    if fleet.options.storage == "postgresql":
        return PostgresRepository(fleet.dsn)
    assert fleet.sqlite is not None
    return SqliteRepository(fleet.sqlite)


@contextlib.asynccontextmanager
async def repository(fleet: Fleet) -> AsyncIterator[Repository]:
    """The fleet's database through the head-end's own storage code."""
    repo: Repository = _repository(fleet)  # type: ignore[assignment]
    await repo.open()
    try:
        yield repo
    finally:
        await repo.close()


@contextlib.asynccontextmanager
async def database(options: Options) -> AsyncIterator[str]:
    """PostgreSQL: a throwaway cluster (the tests' helper) for the block; its DSN. SQLite: ''."""
    if options.storage != "postgresql":
        yield ""
        return
    from tests.support.postgres import postgres_bin, postgres_cluster

    if postgres_bin() is None:
        raise FleetError("PostgreSQL not found: apt-get install postgresql")
    async with postgres_cluster(options.var / "postgres") as cluster:
        (options.var / "db-password").write_text(cluster.password + "\n", encoding="utf-8")
        (options.var / "db-password").chmod(0o600)
        yield cluster.dsn


@contextlib.asynccontextmanager
async def fleet(options: Options) -> AsyncIterator[Fleet]:
    """The fleet running for the block (started in order: broker, head-end, gateways);
    everything stopped at its end, also on failure."""
    options.var.mkdir(parents=True, exist_ok=True)
    (options.var / MARKER).write_text("made by tools/fleet.py; removed by its next run\n")
    running = Fleet(options)
    async with database(options) as dsn:
        running.dsn = dsn
        try:
            await running.start_broker()
            running.gateways = [running.write_gateway(n) for n in range(1, options.gateways + 1)]
            running.headend_config = running.write_headend()
            await running.start_headends()
            # One after the other: the first makes the shared OPC UA node cache the others read.
            for gw in running.gateways:
                await running.start_gateway(gw)
            yield running
        finally:
            await running.stop_all()


async def wait_online(running: Fleet, timeout: float, report: bool = True) -> float:
    """Seconds until every gateway's site is online in the head-end's database (polled)."""
    t0 = time.monotonic()
    wanted = {gw.publisher for gw in running.gateways}
    seen: set[str] = set()
    async with repository(running) as repo, asyncio.timeout(timeout):
        while seen != wanted:
            for site in await repo.sites():
                if site.publisher in wanted and site.state == "online" and site.publisher not in seen:
                    seen.add(site.publisher)
                    if report:
                        print(f"site {site.publisher} online (last seen {site.last_seen})", flush=True)
            if seen != wanted:
                await asyncio.sleep(0.5)  # polling a database: no event to wait for
    return time.monotonic() - t0


@dataclass
class StreamCheck:
    publisher: str
    stream: str
    archived: int
    acknowledged: int
    stored: int
    duplicates: int
    missing: int
    foreign: int


def _archived(gw: Gateway, stream: str) -> tuple[list[datetime], datetime | None]:
    """The record times of ``stream`` in the gateway's archive, and its uplink cursor."""
    from gateway.archive.files import ArchiveReader
    from gateway.config import load_config
    from gateway.uplink.outbox import STATE_FILE, StateFile
    from gateway.uplink.writers import BY_NAME, writer_fields

    config = load_config(gw.config)
    meter = config.meters[0]
    columns = [f.column for f in writer_fields(meter, BY_NAME[stream]) if f.column]
    reader = ArchiveReader(gw.work / "archive", meter.id)
    times = [t for t, _s, _v in reader.read_columns(stream, columns)]
    states = StateFile(gw.work / "archive" / meter.id / STATE_FILE).load()
    cursor = states[stream].cursor.time if stream in states else None
    return times, cursor


async def check(running: Fleet) -> list[StreamCheck]:
    """Each gateway's archive against the database, per site and stream."""
    out = []
    start, end = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    async with repository(running) as repo:
        for gw in running.gateways:
            for stream in CHECKED:
                archived, cursor = _archived(gw, stream)
                rows = await repo.samples(gw.publisher, "meter1", stream, start, end)
                per_key = Counter((r.field, r.time) for r in rows)
                stored = {r.time for r in rows}
                acknowledged = [t for t in archived if cursor is not None and t <= cursor]
                out.append(
                    StreamCheck(
                        gw.publisher, stream, len(set(archived)), len(set(acknowledged)), len(stored),
                        sum(1 for n in per_key.values() if n > 1),
                        len(set(acknowledged) - stored), len(stored - set(archived)),
                    )
                )  # fmt: skip
    return out


async def drain(running: Fleet, timeout: float) -> None:
    """Wait until the database has what each gateway had archived now (polled)."""
    targets = {}
    for gw in running.gateways:
        for stream in CHECKED:
            times, _cursor = _archived(gw, stream)
            if times:
                targets[(gw.publisher, stream)] = max(times)
    async with repository(running) as repo, asyncio.timeout(timeout):
        while targets:
            for (publisher, stream), last in list(targets.items()):
                latest = await repo.latest(publisher, "meter1", stream)
                if latest is not None and latest >= last:
                    del targets[(publisher, stream)]
            if targets:
                await asyncio.sleep(0.5)  # polling a database: no event to wait for


SPLIT = re.compile(r"SMX head-end (\S+) stopped: (\d+) messages, (\d+) accepted, (\d+) rows")


def split_of(summaries: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """Instance -> (messages, accepted, rows) from their summary lines."""
    out = {}
    for line in summaries:
        if m := SPLIT.search(line):
            out[m[1]] = (int(m[2]), int(m[3]), int(m[4]))
    return out


def report(results: Sequence[StreamCheck], split: dict[str, tuple[int, int, int]]) -> bool:
    print(f"{'site':<8} {'stream':<7} {'archived':>8} {'acked':>6} {'stored':>6} {'dup':>4} "
          f"{'missing':>7} {'foreign':>7}")  # fmt: skip
    for r in results:
        print(f"{r.publisher:<8} {r.stream:<7} {r.archived:>8} {r.acknowledged:>6} {r.stored:>6} "
              f"{r.duplicates:>4} {r.missing:>7} {r.foreign:>7}")  # fmt: skip
    total = sum(a for _m, a, _r in split.values()) or 1
    for name, (messages, accepted, rows) in sorted(split.items()):
        print(
            f"{name}: {messages} messages, {accepted} accepted ({100 * accepted / total:.1f} %), {rows} rows"
        )
    ok = all(r.duplicates == 0 and r.missing == 0 and r.foreign == 0 and r.acknowledged > 0 for r in results)
    if len(split) > 1:
        ok = ok and all(a > 0 for _m, a, _r in split.values())
    print("CHECK " + ("PASSED" if ok else "FAILED"), flush=True)
    return ok


async def main_async(options: Options) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with fleet(options) as running:
        print(f"mosquitto: {running.broker_url} (anonymous, 127.0.0.1 only: the demo)", flush=True)
        print(f"head-end: {options.instances} instance(s), storage {options.storage}, "
              f"config {running.headend_config}, logs {options.var / 'logs'}", flush=True)  # fmt: skip
        for gw in running.gateways:
            print(f"gateway {gw.publisher} ({gw.zone}, seed {gw.seed}): web {gw.web_url} "
                  f"OPC UA {gw.endpoint}", flush=True)  # fmt: skip
        print(f"fleet page: {running.page_url}", flush=True)
        waiting = asyncio.create_task(stop.wait())
        online = asyncio.create_task(wait_online(running, START_TIMEOUT))
        await asyncio.wait({waiting, online}, return_when=asyncio.FIRST_COMPLETED)
        if online.done():
            print(f"all {len(running.gateways)} sites online after {online.result():.1f} s", flush=True)
        else:
            online.cancel()
        if options.minutes > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiting, options.minutes * 60)
        else:
            await waiting
        if not (options.check and not stop.is_set()):
            print("stopping", flush=True)
            return 0
        print("time is up: waiting for the head-end to store what is archived", flush=True)
        await drain(running, 180)
        await running.stop_gateways()
        summaries = await running.stop_headends()
        ok = report(await check(running), split_of(summaries))
        return 0 if ok else 1


def parse(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m tools.fleet", description=__doc__.split("\n")[0])
    parser.add_argument("--gateways", type=int, default=3)
    parser.add_argument("--instances", type=int, default=1, help="head-end instances (one group)")
    parser.add_argument("--storage", choices=("sqlite", "postgresql"), default="sqlite",
                        help="postgresql: a throwaway cluster made for the run")  # fmt: skip
    parser.add_argument(
        "--var", type=Path, default=None, help="working folder (default: var/fleet, made afresh)"
    )
    parser.add_argument("--http", default="127.0.0.1:8090", help="the head-end's [http] listen address")
    parser.add_argument("--minutes", type=float, default=0.0, help="stop after this long (0: at Ctrl-C)")
    parser.add_argument("--check", action="store_true", help="then compare archives and database")
    parser.add_argument("--echo", action="store_true", help="print the children's output too")
    args = parser.parse_args(argv)
    var = args.var or ROOT / "var" / "fleet"
    return Options(args.gateways, args.instances, args.storage, var.resolve(), args.http, args.minutes,
                   args.check, args.echo)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(argv)
    # A fresh folder each run: last run's archives and database would be replayed and mixed
    # in. Only a folder this tool made (its marker inside) is removed.
    if options.var.exists() and any(options.var.iterdir()):
        if not (options.var / MARKER).exists():
            print(
                f"fleet: {options.var} is not empty and not a fleet folder; choose another --var",
                file=sys.stderr,
            )
            return 2
        shutil.rmtree(options.var)
    if mosquitto_binary() is None:
        print(MISSING_MOSQUITTO, file=sys.stderr)
        return 2
    try:
        return asyncio.run(main_async(options))
    except FleetError as err:
        print(f"fleet: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
