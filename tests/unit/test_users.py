"""Users and roles: scrypt hashes compared in constant time, a lockout against guessing,
a users file that round-trips and whose mistakes are named by line."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.security.users import (
    LOCKOUT,
    MAX_FAILURES,
    AuthError,
    Role,
    UserDb,
    hash_password,
    verify_password,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
THUMB = "3f1c" + "0" * 34 + "e9"


def test_hash_is_salted_scrypt_and_verifies() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first.startswith("scrypt$16384$8$1$")
    assert first != second  # a fresh salt each time
    assert verify_password("correct horse", first)
    assert not verify_password("correct horsf", first)
    assert not verify_password("correct horse", "md5$abc")
    assert not verify_password("correct horse", "scrypt$x$8$1$AA$AA")


def test_users_file_round_trips_with_owner_only_mode(tmp_path: Path) -> None:
    db = UserDb(tmp_path / "users")
    db.add("scada", Role.OPERATOR, password="s3cret-enough")
    db.add("vpp", Role.VIEWER, certificate=THUMB.upper())
    db.save()
    assert stat.S_IMODE((tmp_path / "users").stat().st_mode) == 0o600
    again = UserDb.load(tmp_path / "users")
    assert again.users == db.users
    assert again.authenticate("scada", "s3cret-enough", NOW).role is Role.OPERATOR
    user = again.by_certificate(THUMB)
    assert user is not None
    assert user.name == "vpp"
    assert Role.ADMIN > Role.OPERATOR > Role.VIEWER
    assert "s3cret" not in (tmp_path / "users").read_text()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("scada:operator", "expected name:role:password-hash:certificate, got 2 fields"),
        ("scada:root:scrypt$1$1$1$AA$AA:", "role must be one of viewer, operator, admin, got 'root'"),
        ("9lives:viewer:scrypt$1$1$1$AA$AA:", "user name must match"),
        ("scada:viewer:plaintext:", "the password must be a scrypt hash"),
        ("scada:viewer::abc", "certificate thumbprint must be 40 hex digits"),
    ],
)
def test_mistakes_in_the_users_file_are_named_by_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "users"
    path.write_text(f"# users\n\n{line}\n")
    with pytest.raises(ConfigError, match=f"users:3: .*{message.replace('$', '.')}"):
        UserDb.load(path)


def test_weak_or_missing_credentials_are_refused(tmp_path: Path) -> None:
    db = UserDb(tmp_path / "users")
    with pytest.raises(ValueError, match="at least 10 characters"):
        db.add("a", Role.VIEWER, password="short")
    with pytest.raises(ValueError, match="a password or a certificate"):
        db.add("a", Role.VIEWER)


def test_guessing_is_locked_out_and_unknown_names_fail_the_same_way(tmp_path: Path) -> None:
    db = UserDb(tmp_path / "users")
    db.add("scada", Role.OPERATOR, password="s3cret-enough")
    db.add("vpp", Role.VIEWER, certificate=THUMB)
    for n in range(1, MAX_FAILURES + 1):
        with pytest.raises(AuthError, match=f"wrong password \\({n} in a row\\)"):
            db.authenticate("scada", f"guess-{n}", NOW)
    # Locked: even the right password is refused until the lockout has passed.
    with pytest.raises(AuthError, match="locked after 5 wrong passwords"):
        db.authenticate("scada", "s3cret-enough", NOW + timedelta(seconds=30))
    assert db.authenticate("scada", "s3cret-enough", NOW + LOCKOUT).name == "scada"
    with pytest.raises(AuthError, match="unknown user"):
        db.authenticate("root", "s3cret-enough", NOW)
    with pytest.raises(AuthError, match="no password login"):
        db.authenticate("vpp", "anything-at-all", NOW)
