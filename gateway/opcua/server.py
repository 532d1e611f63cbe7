"""The asyncua server, built explicitly (DESIGN §4, §8): nothing relies on asyncua's defaults.

asyncua's defaults offer every security policy including None, accept every client
certificate and let a built-in "admin" in. Here the endpoints, the policies, the identity
tokens, the limits and the build information are all set on purpose:

- **production** profile (every configuration file unless it says otherwise): only the
  configured policies (Basic256Sha256, Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss) in
  the configured modes (SignAndEncrypt; Sign if asked), no None endpoint, and a secure
  channel with any other policy is refused before it opens;
- **demo** profile (``make run``): the same, plus a None endpoint where only anonymous,
  read-only sessions are possible (browse, read, subscribe, history).

Every connection is checked by :mod:`gateway.opcua.guard` (trust list on the channel's
certificate, session bound to the channel, no password on an unencrypted channel, roles).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import socket
from datetime import UTC, datetime
from typing import Any

from asyncua import Server, ua
from asyncua.common.connection import TransportLimits
from asyncua.crypto import security_policies
from cryptography.hazmat.primitives import serialization

from gateway import __version__
from gateway.config import OpcUaConfig, SecurityConfig
from gateway.opcua import event_filter
from gateway.opcua.guard import NONE_URI, Guard, GuardedBinaryServer, RoleRuleset
from gateway.opcua.node_cache import init_server
from gateway.security.auth import UserDirectory
from gateway.security.pki import EXPIRY_WARNING, Pki

log = logging.getLogger(__name__)

PRODUCT_URI = "urn:smx-gateway:product"
MANUFACTURER = "SMX project"
PRODUCT_NAME = "SMX Smart Meter eXtension gateway"
ORGANIZATION = "SMX gateway"

#: Connections beyond the sessions: discovery and clients between connecting and their session.
DISCOVERY_CONNECTIONS = 8


def policy_types(security: SecurityConfig) -> list[ua.SecurityPolicyType]:
    """The asyncua policy types of the endpoints, strongest first (the None one last, demo only)."""
    types = [
        getattr(ua.SecurityPolicyType, f"{policy.replace('_', '')}_{mode}")
        for policy in security.policies
        for mode in sorted(security.modes, reverse=True)  # SignAndEncrypt before Sign
    ]
    if security.demo:
        types.append(ua.SecurityPolicyType.NoSecurity)
    return types


class SmxServer(Server):  # type: ignore[misc]  # asyncua is untyped for mypy
    """asyncua's Server with guarded connections and identity tokens chosen per endpoint."""

    def __init__(self, guard: Guard, anonymous: bool) -> None:
        super().__init__(user_manager=guard.user_manager())
        self.guard = guard
        self._anonymous = anonymous

    def _set_endpoints(self, policy: Any, mode: ua.MessageSecurityMode, level: int) -> None:
        # On a None endpoint only anonymous sessions (demo, read-only); user tokens need a
        # secure channel. asyncua offers one token list for all endpoints, so swap it here.
        if mode == ua.MessageSecurityMode.None_:
            tokens: tuple[type, ...] = (ua.AnonymousIdentityToken,)
        else:
            tokens = (ua.UserNameIdentityToken, ua.X509IdentityToken)
            if self._anonymous:
                tokens = (ua.AnonymousIdentityToken, *tokens)
        every = self.iserver.supported_tokens
        self.iserver.supported_tokens = tokens
        try:
            super()._set_endpoints(policy, mode, level)
        finally:
            self.iserver.supported_tokens = every

    async def start(self) -> None:
        # Server.start with our BinaryServer (asyncua constructs its own there).
        await self._setup_server_nodes()
        await self.iserver.start()
        try:
            host, port = self._get_bind_socket_info()
            self.bserver = GuardedBinaryServer(self.guard, self.iserver, host, port, self.limits)
            self.bserver.set_policies(self._policies)
            await self.bserver.start()
        except Exception:
            await self.iserver.stop()
            raise


def _split_hosts(names: tuple[str, ...], bind_host: str) -> tuple[list[str], list[str]]:
    """DNS names and IP addresses for a new certificate's SubjectAltName."""
    dns: list[str] = []
    ips: list[str] = []
    for name in (*names, bind_host) if names else (socket.gethostname(), "localhost", bind_host):
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            if name not in dns:
                dns.append(name)
        else:
            if not address.is_unspecified and name not in ips:
                ips.append(name)
    return dns, ips


async def load_own_certificate(
    server: Server, pki: Pki, opcua: OpcUaConfig, security: SecurityConfig
) -> None:
    """The application instance certificate, created on first start (worker thread)."""
    dns, ips = _split_hosts(security.hostnames, opcua.host)

    def load() -> tuple[Any, Any, bool]:
        cert, created = pki.ensure_own(
            opcua.application_uri, common_name=opcua.server_name, organization=ORGANIZATION,
            hostnames=dns, addresses=ips,
        )  # fmt: skip
        key = serialization.load_pem_private_key(pki.own_key.read_bytes(), password=None)
        return cert, key, created

    cert, key, created = await asyncio.to_thread(load)
    if created:
        log.info("created the application instance certificate %s for %s (%s)", pki.own_certificate,
                 opcua.application_uri, ", ".join(dns + ips))  # fmt: skip
    left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    if left < EXPIRY_WARNING:
        log.warning("the application instance certificate %s expires on %s: renew it (remove it and its key)",
                    pki.own_certificate, f"{cert.not_valid_after_utc:%Y-%m-%d}")  # fmt: skip
    server.iserver.certificate = cert
    server.iserver.private_key = key


async def build_server(
    opcua: OpcUaConfig, security: SecurityConfig, users: UserDirectory, *, product_name: str = PRODUCT_NAME
) -> SmxServer:
    """Create and initialise (not start) the OPC UA server (``product_name``: its BuildInfo's;
    the head-end's portfolio server is built here too)."""
    event_filter.install()  # where clauses as OPC 10000-4 7.7.3 says (subtypes, browse paths)
    types = policy_types(security)
    offered = set()
    for t in types:
        policy, mode, _level = security_policies.SECURITY_POLICY_TYPE_MAP[t]
        offered.add((NONE_URI if policy is security_policies.SecurityPolicyNone else policy.URI, mode))
    pki = Pki(security.pki)
    guard = Guard(
        pki, users, offered=offered, anonymous=security.anonymous,
        anonymous_on_none=security.demo, discovery=security.discovery, limits=opcua.limits,
    )  # fmt: skip
    server = SmxServer(guard, security.anonymous)
    await init_server(server, opcua.node_cache)
    server.set_endpoint(opcua.endpoint)
    server.set_server_name(opcua.server_name)
    server.product_uri = PRODUCT_URI
    server.manufacturer_name = MANUFACTURER
    server.application_type = ua.ApplicationType.Server
    await server.set_application_uri(opcua.application_uri)
    await server.set_build_info(
        PRODUCT_URI, MANUFACTURER, product_name, __version__, __version__, datetime(2026, 11, 26, tzinfo=UTC)
    )
    await load_own_certificate(server, pki, opcua, security)
    server.set_security_policy(types, permission_ruleset=RoleRuleset())
    server.set_identity_tokens([ua.AnonymousIdentityToken, ua.UserNameIdentityToken, ua.X509IdentityToken])
    # A gateway serves a handful of SCADA/VPP clients, not a thousand with 100 MB messages
    # (asyncua's defaults): [opcua.limits] bounds what a client can hold (DESIGN §4).
    limits = opcua.limits
    server.iserver.max_connections = limits.max_sessions + DISCOVERY_CONNECTIONS
    server.iserver.max_subscriptions = limits.max_subscriptions
    chunk = TransportLimits.max_recv_buffer
    server.limits = TransportLimits(
        max_recv_buffer=chunk, max_send_buffer=chunk,
        max_chunk_count=-(-limits.max_message_size // chunk), max_message_size=limits.max_message_size,
    )  # fmt: skip
    if security.demo:
        log.warning("demo security profile: a None endpoint for anonymous read-only browsing is on")
    return server
