"""UserDirectory: the one login door of OPC UA and the web (gateway/security/auth.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from gateway.security.auth import UserDirectory
from gateway.security.users import MAX_FAILURES, AuthError, Role, UserDb

PASSWORD = "correct horse battery"


def users_file(tmp_path: Path, **roles: Role) -> Path:
    path = tmp_path / "users"
    db = UserDb.load(path)
    for name, role in roles.items():
        db.add(name, role, password=PASSWORD)
    db.save()
    return path


async def test_login_reads_the_file_again_when_it_changes(tmp_path: Path) -> None:
    path = users_file(tmp_path, ada=Role.VIEWER)
    directory = UserDirectory(path, login_delay_s=0)
    assert (await directory.login("ada", PASSWORD, via="test")).role is Role.VIEWER
    assert await directory.count() == 1
    # `smx-gateway users add` on a running gateway: the next login sees it.
    db = UserDb.load(path)
    db.set_role("ada", Role.OPERATOR)
    db.add("bob", Role.ADMIN, password=PASSWORD)
    db.save()
    assert (await directory.login("ada", PASSWORD, via="test")).role is Role.OPERATOR
    assert (await directory.login("bob", PASSWORD, via="test")).role is Role.ADMIN


async def test_a_refusal_waits_and_is_logged_without_the_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = UserDirectory(users_file(tmp_path, ada=Role.VIEWER), login_delay_s=0.2)
    caplog.set_level(logging.WARNING, logger="gateway.security.auth")
    began = time.monotonic()
    with pytest.raises(AuthError):
        await directory.login("ada", "guess number one", via="web 10.0.0.9")
    assert time.monotonic() - began >= 0.2
    assert "web 10.0.0.9: login of 'ada' refused: wrong password (1 in a row)" in caplog.text
    assert "guess number one" not in caplog.text


async def test_a_guesser_is_locked_out_and_an_edit_of_the_file_does_not_unlock(tmp_path: Path) -> None:
    path = users_file(tmp_path, ada=Role.VIEWER, bob=Role.VIEWER)
    directory = UserDirectory(path, login_delay_s=0)
    for n in range(MAX_FAILURES):
        with pytest.raises(AuthError, match=f"wrong password \\({n + 1} in a row\\)"):
            await directory.login("ada", f"guess {n}", via="test")
    db = UserDb.load(path)
    db.add("carol", Role.VIEWER, password=PASSWORD)
    db.save()
    with pytest.raises(AuthError, match="locked"):
        await directory.login("ada", PASSWORD, via="test")
    assert (await directory.login("bob", PASSWORD, via="test")).name == "bob"


async def test_logins_do_not_block_the_event_loop(tmp_path: Path) -> None:
    """scrypt (~50 ms a hash) runs in a worker thread: the loop keeps ticking meanwhile."""
    directory = UserDirectory(users_file(tmp_path, ada=Role.VIEWER), login_delay_s=0)
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    for _ in range(3):
        await directory.login("ada", PASSWORD, via="test")
    stop.set()
    await task
    assert ticks > 10


async def test_a_broken_file_keeps_the_last_good_users(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = users_file(tmp_path, ada=Role.OPERATOR)
    directory = UserDirectory(path, login_delay_s=0)
    await directory.login("ada", PASSWORD, via="test")
    path.write_text(path.read_text() + "half:written\n")
    with caplog.at_level(logging.ERROR, logger="gateway.security.auth"):
        assert (await directory.login("ada", PASSWORD, via="test")).role is Role.OPERATOR
    assert "users file not reloaded, keeping the previous one" in caplog.text


async def test_certificate_users(tmp_path: Path) -> None:
    path = tmp_path / "users"
    db = UserDb(path)
    db.add("scada", Role.OPERATOR, certificate="ab" * 20)
    db.save()
    directory = UserDirectory(path, login_delay_s=0)
    assert (await directory.by_certificate("AB" * 20, via="test")).name == "scada"
    with pytest.raises(AuthError, match="no user for certificate"):
        await directory.by_certificate("cd" * 20, via="test")
    # A certificate-only user has no password to guess.
    with pytest.raises(AuthError, match="no password login"):
        await directory.login("scada", "", via="test")


def test_relative_paths_are_taken_from_the_working_directory_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative users file or PKI folder means the one beside the gateway's start, even if the
    process later works elsewhere (the tests do; a library the gateway uses might)."""
    from gateway.app import Gateway
    from gateway.config import demo_config

    monkeypatch.chdir(tmp_path)
    directory = UserDirectory("var/certs/users")
    gateway = Gateway(demo_config())
    monkeypatch.chdir("/")
    assert directory.path == tmp_path / "var/certs/users"
    assert Path(gateway.config.security.users) == tmp_path / "var/certs/users"
    assert Path(gateway.config.security.pki) == tmp_path / "var/certs"
