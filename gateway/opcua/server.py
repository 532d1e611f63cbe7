"""The asyncua server, built explicitly (DESIGN §4): nothing relies on asyncua's defaults.

asyncua's defaults offer every security policy including None, accept every client
certificate and let a built-in "admin" in. Here the endpoint, the policies, the identity
tokens, the limits and the build information are all set on purpose. Only the *demo*
profile exists yet: the None policy with anonymous sessions that read, browse, subscribe
and read history, call the market methods (which validate every argument) and write the
external energy values (the only writable nodes; every other node is read-only).
Certificates, users, roles and the production profile are the security work (DESIGN §8);
the production profile will never offer the None policy or anonymous writes.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from asyncua import Server, ua
from asyncua.crypto.permission_rules import PermissionRuleset, User, UserRole
from asyncua.server.internal_server import InternalServer
from asyncua.server.user_managers import UserManager

from gateway import __version__
from gateway.config import OpcUaConfig

log = logging.getLogger(__name__)

PRODUCT_URI = "urn:smx-gateway:product"
MANUFACTURER = "SMX project"
PRODUCT_NAME = "SMX Smart Meter eXtension gateway"


class AnonymousOnly(UserManager):  # type: ignore[misc]  # asyncua is untyped for mypy
    """Anonymous sessions only: no user database yet, so any user name or certificate is refused."""

    def get_user(
        self,
        iserver: InternalServer,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        # Only anonymous tokens are offered (set_identity_tokens); ``certificate`` is then
        # the secure channel's, not a user's, so only a user name is a reason to refuse.
        if username is not None:
            return None
        return User(role=UserRole.Anonymous)


#: Services of the demo profile: read, browse, subscribe, history, Call and Write (Write
#: reaches only nodes whose AccessLevel allows it: the external values).
DEMO_SERVICES = frozenset(
    ua.NodeId(getattr(ua.ObjectIds, f"{name}Request_Encoding_DefaultBinary"))
    for name in (
        "CreateSession", "CloseSession", "ActivateSession", "Read", "Browse", "BrowseNext", "GetEndpoints",
        "FindServers", "TranslateBrowsePathsToNodeIds", "CreateSubscription", "ModifySubscription",
        "DeleteSubscriptions", "TransferSubscriptions", "CreateMonitoredItems", "ModifyMonitoredItems",
        "DeleteMonitoredItems", "HistoryRead", "Publish", "Republish", "CloseSecureChannel",
        "SetMonitoringMode", "SetPublishingMode", "RegisterNodes", "UnregisterNodes", "Call", "Write",
    )
)  # fmt: skip


class DemoRuleset(PermissionRuleset):  # type: ignore[misc]  # asyncua is untyped for mypy
    """The demo profile's rules: no node management, no history updates."""

    def check_validity(self, user: User, action_type_id: ua.NodeId, body: Any) -> bool:
        return action_type_id in DEMO_SERVICES


async def build_server(config: OpcUaConfig) -> Server:
    """Create and initialise (not start) the OPC UA server for ``config``."""
    server = Server(user_manager=AnonymousOnly())
    await server.init()
    server.set_endpoint(config.endpoint)
    server.set_server_name(config.server_name)
    server.product_uri = PRODUCT_URI
    server.manufacturer_name = MANUFACTURER
    await server.set_application_uri(config.application_uri)
    await server.set_build_info(
        PRODUCT_URI, MANUFACTURER, PRODUCT_NAME, __version__, __version__, datetime(2026, 11, 26, tzinfo=UTC)
    )
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity], permission_ruleset=DemoRuleset())
    server.set_identity_tokens([ua.AnonymousIdentityToken])
    # Sessions of a vanished client are dropped after 60 s instead of asyncua's hour.
    server.default_timeout = 60_000
    return server
