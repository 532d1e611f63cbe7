"""Logins for OPC UA and the web, off the event loop (DESIGN §8).

:class:`UserDirectory` is the one door both front ends use: it reads the users file again
when it changes (``smx-gateway users add`` works on a running gateway), checks passwords
in a worker thread (a scrypt hash costs about 50 ms, too long for the event loop), and
answers a refused login only after ``login_delay_s`` so that guessing costs time on top
of the lockout of :class:`~gateway.security.users.UserDb`. Refusals are logged with who and why;
the client learns only that it was refused.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from gateway.security.users import AuthError, Role, User, UserDb

log = logging.getLogger(__name__)

#: How often a running session's user is looked up in the file again (seconds).
RECHECK_S = 2.0


class UserDirectory:
    """The users file as the running gateway sees it."""

    def __init__(self, path: Path | str, *, login_delay_s: float = 1.0) -> None:
        self.path = Path(path).absolute()  # relative to the working directory at start, as documented
        self.login_delay_s = login_delay_s
        self._db = UserDb(self.path)
        self._stamp: tuple[int, int] | None = None
        self._checked = -RECHECK_S
        # One login at a time: the UserDb's failure counts are plain dicts, and a guesser
        # with many connections gets no more tries per second than with one.
        self._lock = asyncio.Lock()

    def _refresh(self) -> UserDb:
        """Read the file again if it changed (worker thread); a broken file keeps the last good one."""
        try:
            st = os.stat(self.path)
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            try:
                fresh = UserDb.load(self.path)
            except Exception as err:  # a half-edited file must not lock everybody out
                log.error("users file not reloaded, keeping the previous one: %s", err)
                return self._db
            # Failure counts survive a reload: editing the file does not reset a lockout.
            fresh._failures = self._db._failures
            self._db, self._stamp = fresh, stamp
        return self._db

    async def role_of(self, name: str) -> Role | None:
        """The current role of a logged-in user, None once removed from the file.

        Asked before privileged requests of a running session, so removing a user or
        lowering a role takes effect within :data:`RECHECK_S`, not at the next login.
        """
        now = time.monotonic()
        if now - self._checked >= RECHECK_S:
            async with self._lock:
                await asyncio.to_thread(self._refresh)
            self._checked = now
        user = self._db.users.get(name)
        return user.role if user is not None else None

    async def count(self) -> int:
        async with self._lock:
            return len((await asyncio.to_thread(self._refresh)).users)

    async def login(self, name: str, password: str, *, via: str) -> User:
        """The user for a name and password; AuthError (after the delay) if refused.

        ``via`` says where the attempt came from, for the log (e.g. "OPC UA 10.88.0.1:53211").
        """
        async with self._lock:

            def check() -> User:
                return self._refresh().authenticate(name, password, datetime.now(UTC))

            try:
                user = await asyncio.to_thread(check)
            except AuthError as err:
                log.warning("%s: %s", via, err)
                failed = err
            else:
                log.info("%s: %s logged in as %s", via, user.name, user.role)
                return user
        await asyncio.sleep(self.login_delay_s)  # outside the lock: one guesser does not block others
        raise failed

    async def by_certificate(self, thumbprint: str, *, via: str) -> User:
        """The user an X.509 user certificate is mapped to; AuthError if none."""
        async with self._lock:
            db = await asyncio.to_thread(self._refresh)
            user = db.by_certificate(thumbprint)
        if user is None:
            log.warning("%s: no user has the certificate %s", via, thumbprint)
            await asyncio.sleep(self.login_delay_s)
            raise AuthError(f"no user for certificate {thumbprint}")
        log.info("%s: %s logged in by certificate as %s", via, user.name, user.role)
        return user
