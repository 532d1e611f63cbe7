"""Logins of the web page and the REST API: the same users and roles as OPC UA (DESIGN §8).

A browser logs in with ``POST /api/login`` (JSON name and password, never in a URL) and
gets a session cookie (random 256-bit token, ``HttpOnly``, ``SameSite=Strict``, ``Secure``
over HTTPS; forgotten after :data:`IDLE` without requests and at restart). A script may
instead send ``Authorization: Basic`` on each request (checked once, then remembered for
:data:`BASIC_MEMORY`). What a request needs:

- the page, its static files, ``/api/login``, ``/api/logout``, ``/api/session`` and the
  OpenAPI document: nobody;
- every other ``GET``: a viewer, or nobody when ``[security] anonymous`` is on;
- ``PUT``/``POST`` (profiles, external values): an operator.

401 says "log in" (``WWW-Authenticate: SMX-Login``, a scheme browsers do not answer with
their own password dialog), 403 says "your role may not". Cross-site requests cannot
write: the cookie is SameSite=Strict and writes take only ``application/json`` bodies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass

from aiohttp import web

from gateway.httpjson import ApiError
from gateway.security.auth import UserDirectory
from gateway.security.users import AuthError, Role

log = logging.getLogger(__name__)

COOKIE = "smx_session"
#: A session unused this long is forgotten.
IDLE = 8 * 3600.0
#: At most this many sessions are kept (the oldest is dropped): a flood of logins cannot fill memory.
MAX_SESSIONS = 256
#: A checked Basic header is trusted this long (a changed password takes effect after it).
BASIC_MEMORY = 300.0
#: Paths anybody may ask for.
PUBLIC = frozenset({"/", "/api/login", "/api/logout", "/api/session", "/api/openapi.json"})


@dataclass(frozen=True, slots=True)
class WebUser:
    name: str
    role: Role


class Denied(ApiError):
    """401 (not logged in: with the challenge) or 403 (role too low)."""

    def __init__(self, status: int, message: str) -> None:
        challenge = {"WWW-Authenticate": 'SMX-Login realm="SMX gateway"'} if status == 401 else None
        super().__init__(status, message, headers=challenge)


class WebSessions:
    """Session cookies and who may do what."""

    def __init__(self, users: UserDirectory, *, anonymous: bool, secure: bool) -> None:
        self.users = users
        self.anonymous = anonymous
        self.secure = secure
        self._sessions: dict[str, tuple[WebUser, float]] = {}
        self._basic: dict[str, tuple[WebUser, float]] = {}
        self._key = secrets.token_bytes(32)

    @staticmethod
    def needs(request: web.Request) -> Role | None:
        """The least role a request needs (None: anybody)."""
        path = request.path
        if path in PUBLIC or path.startswith("/static/"):
            return None
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return Role.VIEWER
        return Role.OPERATOR

    async def user_of(self, request: web.Request) -> WebUser | None:
        """The logged-in user of a request (cookie or Basic), None if there is none."""
        token = request.cookies.get(COOKIE)
        if token:
            held = self._sessions.get(token)
            now = time.monotonic()
            if held is not None and now - held[1] < IDLE:
                current = await self._current(held[0])
                if current is not None:
                    self._sessions[token] = (current, now)
                    return current
            self._sessions.pop(token, None)
        header = request.headers.get("Authorization", "")
        if header[:6].lower() == "basic ":
            # A script polling with Basic would pay a scrypt hash per request: a checked
            # header is remembered (as a keyed digest, not the password) like a session.
            key = hmac.new(self._key, header.encode("utf-8"), hashlib.sha256).hexdigest()
            held = self._basic.get(key)
            if held is not None and time.monotonic() - held[1] < BASIC_MEMORY:
                current = await self._current(held[0])
                if current is not None:
                    return current
                del self._basic[key]
            try:
                name, _, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise Denied(401, "malformed Authorization header") from None
            user = await self._login(name, password, request)
            if len(self._basic) >= MAX_SESSIONS:
                self._basic.clear()
            self._basic[key] = (user, time.monotonic())
            return user
        return None

    async def _current(self, user: WebUser) -> WebUser | None:
        """The user as the users file says now (role changed, or None: removed)."""
        role = await self.users.role_of(user.name)
        if role is None:
            return None
        return user if role == user.role else WebUser(user.name, role)

    async def check(self, request: web.Request) -> WebUser | None:
        """Raise Denied unless the request may go on; returns its user."""
        need = self.needs(request)
        user = await self.user_of(request)
        if need is None:
            return user
        if user is None:
            if need == Role.VIEWER and self.anonymous:
                return None
            raise Denied(401, "log in first (POST /api/login)")
        if user.role < need:
            log.warning("web %s %s refused to %s (%s): needs the %s role", request.method, request.path,
                        user.name, user.role, need)  # fmt: skip
            raise Denied(403, f"{user.name} is {user.role}; this needs the {need} role")
        return user

    async def _login(self, name: str, password: str, request: web.Request) -> WebUser:
        try:
            found = await self.users.login(name, password, via=f"web {request.remote}")
        except AuthError:
            raise Denied(401, "user name or password wrong (or locked after repeated failures)") from None
        return WebUser(found.name, found.role)

    async def login(self, request: web.Request, name: str, password: str) -> tuple[WebUser, str]:
        """Check a name and password; the user and a new session token."""
        user = await self._login(name, password, request)
        if len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions, key=lambda t: self._sessions[t][1])
            del self._sessions[oldest]
        token = secrets.token_urlsafe(32)
        self._sessions[token] = (user, time.monotonic())
        return user, token

    def logout(self, request: web.Request) -> None:
        token = request.cookies.get(COOKIE)
        if token:
            self._sessions.pop(token, None)

    def set_cookie(self, response: web.StreamResponse, token: str) -> None:
        response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", secure=self.secure, path="/")

    def clear_cookie(self, response: web.StreamResponse) -> None:
        response.del_cookie(COOKIE, path="/")
