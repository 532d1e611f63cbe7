"""A throwaway PostgreSQL cluster on loopback for the head-end's storage tests (issue 17: "the
tests run a throwaway PostgreSQL cluster they create with Debian's initdb/pg_ctl").

:func:`postgres_cluster` makes a cluster with ``initdb`` from the newest
``/usr/lib/postgresql/<version>/bin`` (Debian's ``postgresql`` package; the packaged
service is not used), runs ``postgres`` on a free loopback port and yields a
:class:`Cluster`: a test role with a password (:attr:`Cluster.dsn`) that may create
databases, so each test can have its own (:meth:`Cluster.database`).

* **As root** (CI) ``initdb`` and ``postgres`` refuse to run, so both run as the
  ``postgres`` system user (``runuser -u postgres --``) in a folder it owns. That folder
  is a fresh ``mkdtemp`` under /tmp, not under the test's ``work``: pytest's folders are
  0700 root, which the ``postgres`` user could not traverse, and their paths are too long
  for the unix socket (107 bytes). It is removed when the block ends.
* **Authentication**: scram-sha-256 passwords over TCP on 127.0.0.1 only (``pg_hba.conf``
  has that one line; ``listen_addresses`` is 127.0.0.1; the unix socket is in the data
  folder, unused).
* **Speed over safety**: ``fsync=off``, ``synchronous_commit=off``, ``full_page_writes=off``
  — a crash of this machine may corrupt this cluster, which lives for one test module.
* Nothing sleeps: the server is waited for by reading its log as it comes (it says when it
  is ready) and then by connecting, both bounded; it is stopped with ``pg_ctl stop -m
  fast``, and killed if that does not end it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

from tests.support.broker import free_port

HOST = "127.0.0.1"
#: Where Debian's postgresql-<version> package puts its programs.
PG_ROOT = Path("/usr/lib/postgresql")
SYSTEM_USER = "postgres"
ADMIN = "smx_admin"
USER = "smx_test"
#: initdb takes a second or two, the start less; a loaded CI machine gets plenty more.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
_PORT_ATTEMPTS = 5
_READY = "database system is ready to accept connections"


def postgres_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that has ``initdb``, None without one."""
    found = []
    for initdb in PG_ROOT.glob("*/bin/initdb"):
        version = initdb.parent.parent.name
        if os.access(initdb, os.X_OK) and re.fullmatch(r"\d+(\.\d+)?", version):
            found.append((tuple(int(p) for p in version.split(".")), initdb.parent))
    return max(found)[1] if found else None


def require_postgres() -> Path:
    """The PostgreSQL programs' folder for a test; skips the test without them, but fails
    it on CI (which installs them, so a missing one there is a broken setup)."""
    binaries = postgres_bin()
    reason = ""
    if binaries is None:
        reason = "PostgreSQL not installed (apt-get install postgresql: /usr/lib/postgresql/*/bin/initdb)"
    elif os.geteuid() == 0:
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            reason = f"running as root, and there is no {SYSTEM_USER!r} user to run PostgreSQL as"
    if not reason:
        assert binaries is not None
        return binaries
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


class PostgresStartError(RuntimeError):
    """The cluster could not be made or did not come up; the message has its output."""


@dataclass
class Cluster:
    """A running throwaway cluster."""

    port: int
    #: The test role's DSN on its own database ``smx`` (password included: a test secret).
    dsn: str
    #: The superuser's DSN (on the ``postgres`` database).
    admin_dsn: str
    user: str
    password: str
    folder: Path
    log: list[str] = field(default_factory=list)

    def dsn_for(self, database: str, *, password: str | None = None) -> str:
        """The test role's DSN on ``database`` (with another ``password``, for the refusals)."""
        return f"postgresql://{self.user}:{password or self.password}@{HOST}:{self.port}/{database}"

    @contextlib.asynccontextmanager
    async def database(self, name: str) -> AsyncIterator[str]:
        """A fresh database owned by the test role for the block; yields its DSN. Dropped at
        the end (``WITH (FORCE)``: a connection a failed test left open does not keep it)."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"database name {name!r}")
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f"CREATE DATABASE {name} OWNER {self.user}")
        finally:
            await conn.close()
        try:
            yield self.dsn_for(name)
        finally:
            conn = await asyncpg.connect(self.admin_dsn)
            try:
                await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            finally:
                await conn.close()

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log[-n:])


def _as_postgres(argv: Sequence[str]) -> list[str]:
    """``argv`` as the ``postgres`` user when we are root (initdb and postgres refuse root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", SYSTEM_USER, "--", *argv]
    return list(argv)


async def _run(argv: Sequence[str], what: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *_as_postgres(argv),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "LC_ALL": "C"},
    )
    try:
        async with asyncio.timeout(START_TIMEOUT):
            out, _ = await process.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise PostgresStartError(f"{what} did not finish within {START_TIMEOUT} s") from None
    text = out.decode(errors="replace")
    if process.returncode != 0:
        raise PostgresStartError(f"{what} failed ({process.returncode}):\n{text}")
    return text


class _Server:
    """The ``postgres`` process (through ``runuser`` as root) and its log, read as it comes."""

    def __init__(self, binaries: Path, data: Path, port: int, log: list[str]) -> None:
        self.binaries, self.data, self.port, self.log = binaries, data, port, log
        self._changed = asyncio.Condition()
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ended = False

    async def start(self) -> None:
        settings = {
            "listen_addresses": HOST,
            "port": str(self.port),
            "unix_socket_directories": str(self.data),
            # A test cluster: durability is worth nothing here, speed is (see the module).
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "32MB",
            "max_connections": "60",
            "logging_collector": "off",
        }
        argv = [str(self.binaries / "postgres"), "-D", str(self.data)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        self.process = await asyncio.create_subprocess_exec(
            *_as_postgres(argv),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "LC_ALL": "C"},
        )
        # Read all the time, not only until ready: a full pipe would stop the server's logging.
        self._reader = asyncio.create_task(self._read(self.process))

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stderr is not None
        while line := await process.stderr.readline():
            async with self._changed:
                self.log.append(line.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()
        await process.wait()
        async with self._changed:
            self._ended = True
            self._changed.notify_all()

    async def wait_ready(self) -> bool:
        """True when the server says it is ready, False when it ended before (its log says why)."""
        seen = 0
        async with asyncio.timeout(START_TIMEOUT), self._changed:
            while True:
                if any(_READY in line for line in self.log[seen:]):
                    return True
                seen = len(self.log)
                if self._ended:
                    return False
                await self._changed.wait()

    async def next_line(self, timeout: float) -> None:
        """Wait for the server's next log line (or its end), at most ``timeout`` seconds."""
        seen = len(self.log)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: len(self.log) > seen or self._ended)

    async def stop(self) -> None:
        """``pg_ctl stop -m fast`` (ends the sessions, then the server); a kill if that fails."""
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            pg_ctl = [str(self.binaries / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w"]
            with contextlib.suppress(PostgresStartError):
                await _run([*pg_ctl, "-t", str(int(STOP_TIMEOUT))], "pg_ctl stop")
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    await process.wait()
            except TimeoutError:
                self._kill_postmaster()
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._reader is not None:
            await self._reader

    def _kill_postmaster(self) -> None:
        """SIGKILL the postmaster by its pid file (runuser's child), should pg_ctl have failed."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, 9)


@contextlib.asynccontextmanager
async def postgres_cluster(work: Path) -> AsyncIterator[Cluster]:
    """A fresh cluster for the block (``work``: the test's folder, where the server's log is
    left at the end; the cluster's own folder is under /tmp, see the module). Skips or fails
    as :func:`require_postgres` does without PostgreSQL."""
    binaries = require_postgres()
    folder = Path(tempfile.mkdtemp(prefix="smx-pg-", dir="/tmp"))
    log: list[str] = []
    server: _Server | None = None
    try:
        if os.geteuid() == 0:
            # The folder is the postgres user's: initdb makes the data folder inside it.
            account = pwd.getpwnam(SYSTEM_USER)
            os.chown(folder, account.pw_uid, account.pw_gid)
        admin_password, password = secrets.token_hex(16), secrets.token_hex(16)
        pwfile = folder / "pwfile"
        pwfile.write_text(admin_password + "\n", encoding="utf-8")
        if os.geteuid() == 0:
            os.chown(pwfile, account.pw_uid, account.pw_gid)
        pwfile.chmod(0o600)
        data = folder / "data"
        initdb = [
            str(binaries / "initdb"), "-D", str(data), "-U", ADMIN, f"--pwfile={pwfile}",
            "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions",
        ]  # fmt: skip
        log.extend((await _run(initdb, "initdb")).splitlines())
        pwfile.unlink()
        # Password logins over TCP from 127.0.0.1, nothing else (the file keeps its owner).
        (data / "pg_hba.conf").write_text(
            "# smx test cluster: scram-sha-256 on 127.0.0.1 only\nhost all all 127.0.0.1/32 scram-sha-256\n",
            encoding="utf-8",
        )
        for attempt in range(_PORT_ATTEMPTS):
            server = _Server(binaries, data, free_port(), log)
            await server.start()
            if await server.wait_ready():
                break
            await server.stop()
            in_use = any("could not bind" in line or "already in use" in line for line in log)
            if not in_use or attempt + 1 == _PORT_ATTEMPTS:
                raise PostgresStartError("postgres did not start:\n" + "\n".join(log[-40:]))
            # Another process took the port between free_port() and the bind: another one.
        assert server is not None
        admin_dsn = f"postgresql://{ADMIN}:{admin_password}@{HOST}:{server.port}/postgres"
        conn = await _connect(server, admin_dsn)
        try:
            await conn.execute(f"CREATE ROLE {USER} LOGIN CREATEDB PASSWORD '{password}'")
            await conn.execute(f"CREATE DATABASE smx OWNER {USER}")
        finally:
            await conn.close()
        cluster = Cluster(
            port=server.port,
            dsn=f"postgresql://{USER}:{password}@{HOST}:{server.port}/smx",
            admin_dsn=admin_dsn,
            user=USER,
            password=password,
            folder=folder,
            log=log,
        )
        yield cluster
    finally:
        try:
            if server is not None:
                await server.stop()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            _keep_log(work, log)


def _keep_log(work: Path, log: list[str]) -> None:
    """The server's log into the test's folder (which pytest keeps for a while): the cluster's
    own folder is gone."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "postgres.log").write_text("\n".join(log) + "\n", encoding="utf-8")


async def _connect(server: _Server, dsn: str) -> asyncpg.Connection:
    """The first connection, in a bounded loop: "ready" is logged when the server accepts
    connections, but a slow machine may still answer "starting up"; each retry waits for the
    server's next log line (or a moment, at most), never a fixed sleep."""
    last: BaseException | None = None
    for _ in range(20):
        try:
            conn: asyncpg.Connection = await asyncpg.connect(dsn, timeout=10)
            return conn
        except (asyncpg.CannotConnectNowError, OSError) as exc:
            last = exc
            await server.next_line(0.5)
    raise PostgresStartError(f"cannot connect to the test cluster: {last}\n" + "\n".join(server.log[-40:]))
