"""Users and roles of the gateway (DESIGN §8), shared by OPC UA and the web.

The users file holds one user per line, ``name:role:password-hash:certificate``::

    # SMX users (smx-gateway users add NAME --role ROLE)
    scada:operator:scrypt$16384$8$1$<salt>$<hash>:
    vpp:viewer::3f1c...e9     (no password: an X.509 user token with this thumbprint)

Passwords are stored as scrypt hashes (RFC 7914; N=2^14, r=8, p=1, 16-byte salt) and
compared in constant time; a name that does not exist costs the same hash, so timing
does not tell which names exist. After :data:`MAX_FAILURES` wrong passwords in a row a
name is locked for :data:`LOCKOUT` (a guesser gets a handful of tries per minute, the
operator who mistyped waits a minute). Roles are ordered: viewer < operator < admin.

The file is written whole (temporary file, fsync, rename) with mode 0600. Synchronous
code: the async callers run it in a worker thread; :meth:`UserDb.authenticate` costs one
scrypt hash (about 50 ms), so it runs there too.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from gateway.errors import ConfigError, GatewayError
from gateway.files import replace_file

#: scrypt cost (N, r, p): ~16 MiB and ~50 ms per hash on a Raspberry Pi class core.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 14, 8, 1
MAX_FAILURES = 5
LOCKOUT = timedelta(seconds=60)
#: Names with failed logins remembered at most (beyond, those older than LOCKOUT are dropped).
MAX_TRACKED = 10_000
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,31}$")
_THUMBPRINT = re.compile(r"^[0-9a-f]{40}$")


class Role(enum.IntEnum):
    """What a user may do; each role includes the ones below it."""

    #: Browse, read, subscribe, read history.
    VIEWER = 1
    #: Viewer + RegisterProfile and external data writes.
    OPERATOR = 2
    #: Operator + configuration methods.
    ADMIN = 3

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(
                f"role must be one of {', '.join(r.name.lower() for r in cls)}, got {text!r}"
            ) from None

    def __str__(self) -> str:
        return self.name.lower()


class AuthError(GatewayError):
    """A login is refused; the message says why for the log, not for the client."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    #: ``scrypt$N$r$p$salt$hash`` or "" (certificate only).
    password_hash: str = ""
    #: SHA-1 thumbprint of the user's X.509 certificate, or "".
    certificate: str = ""


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64 without padding)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded``, in constant time for a given hash."""
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = _scrypt(password, _unb64(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


#: A hash to spend the same time on for names that do not exist.
_DUMMY = hash_password("smx-no-such-user", salt=b"\0" * 16)


class UserDb:
    """The users file, and the failed-login counts since start (in memory)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.users: dict[str, User] = {}
        self._failures: dict[str, tuple[int, datetime]] = {}

    @classmethod
    def load(cls, path: Path | str) -> UserDb:
        """Read the file (missing: no users); a malformed line is a ConfigError naming it."""
        db = cls(path)
        try:
            text = db.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return db
        except OSError as err:
            raise ConfigError(f"{db.path}: cannot read: {err.strerror or err}") from err
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.split(":")
            where = f"{db.path}:{number}"
            if len(parts) != 4:
                raise ConfigError(
                    f"{where}: expected name:role:password-hash:certificate, got {len(parts)} fields"
                )
            name, role_text, password_hash, certificate = parts
            try:
                user = User(
                    _check_name(name), Role.parse(role_text), password_hash, _check_thumbprint(certificate)
                )
            except ValueError as err:
                raise ConfigError(f"{where}: {err}") from None
            if password_hash and not password_hash.startswith("scrypt$"):
                raise ConfigError(f"{where}: the password must be a scrypt hash (smx-gateway users add)")
            if name in db.users:
                raise ConfigError(f"{where}: user {name!r} appears twice")
            db.users[name] = user
        return db

    def save(self) -> None:
        lines = ["# SMX users: name:role:password-hash:certificate-thumbprint (smx-gateway users ...)"]
        lines += [f"{u.name}:{u.role}:{u.password_hash}:{u.certificate}" for u in self.users.values()]
        replace_file(self.path, ("\n".join(lines) + "\n").encode("utf-8"), mode=0o600)

    def add(self, name: str, role: Role, *, password: str = "", certificate: str = "") -> User:
        """Add or change a user (ValueError for a bad name, a short password or no credential)."""
        _check_name(name)
        if password and len(password) < 10:
            raise ValueError("a password needs at least 10 characters")
        if not password and not certificate:
            raise ValueError("a user needs a password or a certificate thumbprint")
        user = User(name, role, hash_password(password) if password else "", _check_thumbprint(certificate))
        self.users[name] = user
        return user

    def remove(self, name: str) -> None:
        if self.users.pop(name, None) is None:
            raise KeyError(f"no user {name!r}")

    def set_role(self, name: str, role: Role) -> User:
        user = replace(self.users[name], role=role)
        self.users[name] = user
        return user

    def authenticate(self, name: str, password: str, now: datetime) -> User:
        """The user for a name and password, or AuthError (wrong, unknown, locked)."""
        count, since = self._failures.get(name, (0, now))
        if count >= MAX_FAILURES and now - since < LOCKOUT:
            raise AuthError(
                f"user {name!r} is locked after {count} wrong passwords until {since + LOCKOUT:%H:%M:%S}"
            )
        user = self.users.get(name)
        ok = verify_password(password, user.password_hash if user and user.password_hash else _DUMMY)
        if user is None or not user.password_hash or not ok:
            count = 1 if count >= MAX_FAILURES else count + 1  # a lockout that ran out starts over
            if len(self._failures) >= MAX_TRACKED:  # made-up names must not fill the memory
                self._failures = {n: f for n, f in self._failures.items() if now - f[1] < LOCKOUT}
            self._failures[name] = (count, now)
            why = (
                "unknown user"
                if user is None
                else "no password login"
                if not user.password_hash
                else "wrong password"
            )
            raise AuthError(f"login of {name!r} refused: {why} ({count} in a row)")
        self._failures.pop(name, None)
        return user

    def by_certificate(self, thumbprint: str) -> User | None:
        """The user an X.509 user token with this certificate thumbprint maps to."""
        thumbprint = thumbprint.lower()
        return next((u for u in self.users.values() if u.certificate == thumbprint), None)


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"user name must match [A-Za-z][A-Za-z0-9_.-]{{0,31}}, got {name!r}")
    return name


def _check_thumbprint(text: str) -> str:
    text = text.lower().replace(":", "")
    if text and not _THUMBPRINT.match(text):
        raise ValueError(f"certificate thumbprint must be 40 hex digits (SHA-1), got {text!r}")
    return text
