"""OPC UA security in front of asyncua: trust list, sessions bound to channels, roles (DESIGN §8).

asyncua 2.1 leaves three holes a gateway cannot have, so every connection gets a
:class:`GuardedProcessor` (asyncua's ``UaProcessor`` with checks before each step):

1. **OpenSecureChannel** (OPC 10000-4 §5.5.2, 10000-6 §6.7.2): the policy must be one we
   offer (with ``[security] discovery`` also None, for GetEndpoints/FindServers only), and
   the channel's client certificate (the one that signs and encrypts every message) is
   validated against the trust list, in a worker thread. asyncua checks
   certificates only at CreateSession, so a client could sign the channel with one
   certificate and present another. An unknown certificate is stored in ``rejected/``.
2. **CreateSession** (10000-4 §5.6.2): the ClientCertificate must be the channel's
   (``BadSecurityChecksFailed``) and carry the ApplicationUri the client claims
   (``BadCertificateUriInvalid``).
3. **ActivateSession** (10000-4 §5.6.3): a user name and password only on an encrypted
   channel, or encrypted in the token on a signed one, never on a None channel
   (``BadIdentityTokenRejected``); passwords checked by :class:`~gateway.security.auth.UserDirectory`
   off the event loop, with a delay and a lockout against guessing; an X.509 user token
   must be trusted and mapped to a user. asyncua's synchronous ``UserManager.get_user``
   then only returns the user decided here.

Roles (:class:`RoleRuleset`): anonymous and viewer read, browse, subscribe and read
history; viewers may also call the read-only methods; operator adds Write (external
values) and RegisterProfile; admin adds the configuration methods. The method callbacks
ask :func:`caller_role` (a ContextVar set for each request) and refuse below their role.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from asyncua import ua
from asyncua.common.utils import Buffer, ServiceError
from asyncua.crypto import uacrypto
from asyncua.crypto.permission_rules import PermissionRuleset, UserRole
from asyncua.crypto.permission_rules import User as UaUser
from asyncua.server.binary_server_asyncio import BinaryServer, OPCUAProtocol
from asyncua.server.internal_server import InternalServer
from asyncua.server.internal_session import SessionState
from asyncua.server.uaprocessor import UaProcessor
from asyncua.server.user_managers import UserManager
from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary, uatcp_to_binary
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from gateway.config import OpcUaLimits
from gateway.security.auth import UserDirectory
from gateway.security.netbind import is_address, listening_socket
from gateway.security.pki import CertificateError, Pki, application_uri_of, load_certificate, thumbprint
from gateway.security.users import AuthError, Role

log = logging.getLogger(__name__)

NONE_URI = "http://opcfoundation.org/UA/SecurityPolicy#None"
#: RSA-PKCS#1 v1.5 password encryption is deprecated (OPC 10000-7, Basic128Rsa15): refused.
_WEAK_TOKEN_ENCRYPTION = "http://www.w3.org/2001/04/xmlenc#rsa-1_5"
#: Password encryptions accepted in UserName tokens (OPC 10000-7 security policies).
_DECRYPT = {
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep": uacrypto.decrypt_rsa_oaep,
    "http://opcfoundation.org/UA/security/rsa-oaep-sha2-256": uacrypto.decrypt_rsa_oaep_sha256,
}


@dataclass
class SessionUser(UaUser):  # type: ignore[misc]  # asyncua is untyped for mypy
    """asyncua's session user with the SMX role (None: anonymous)."""

    access: Role | None = None

    def __str__(self) -> str:
        return f"{self.name or 'anonymous'} ({self.access or 'anonymous'})"


ANONYMOUS = SessionUser(role=UserRole.Anonymous, name=None, access=None)

#: The user of the request being processed (set by GuardedProcessor for each request).
_caller: ContextVar[SessionUser | None] = ContextVar("smx_opcua_caller", default=None)
#: The user decided in ActivateSession, handed to asyncua's get_user (same task, no await between).
_activating: ContextVar[SessionUser | None] = ContextVar("smx_opcua_activating", default=None)


#: The asyncua session id of the request being processed (ConditionRefresh checks that the
#: subscription it names is the caller's own, OPC 10000-9 5.5.7).
_session_id: ContextVar[Any] = ContextVar("smx_opcua_session", default=None)


def caller_session() -> Any:
    """The session id (a NodeId) of the OPC UA request being served; None outside one."""
    return _session_id.get()


def caller() -> SessionUser:
    """The user of the OPC UA request being served; anonymous when no request sets one (fail
    closed: asyncua runs synchronous callbacks in threads without the request's context)."""
    user = _caller.get()
    return ANONYMOUS if user is None else user


def _services(*names: str) -> frozenset[ua.NodeId]:
    return frozenset(ua.NodeId(getattr(ua.ObjectIds, f"{n}Request_Encoding_DefaultBinary")) for n in names)


#: What every session may do: read, browse, subscribe, read history (no Call, no Write).
#: TransferSubscriptions is not among them: asyncua would hand any session's subscription to
#: any other (OPC 10000-4 §5.13.7 asks for the same user); clients create new ones instead.
READ_SERVICES = _services(
    "CreateSession",
    "CloseSession",
    "ActivateSession",
    "Read",
    "Browse",
    "BrowseNext",
    "GetEndpoints",
    "FindServers",
    "TranslateBrowsePathsToNodeIds",
    "CreateSubscription",
    "ModifySubscription",
    "DeleteSubscriptions",
    "CreateMonitoredItems",
    "ModifyMonitoredItems",
    "DeleteMonitoredItems",
    "HistoryRead",
    "Publish",
    "Republish",
    "CloseSecureChannel",
    "SetMonitoringMode",
    "SetPublishingMode",
    "RegisterNodes",
    "UnregisterNodes",
)
CALL = _services("Call")
WRITE = _services("Write")


class RoleRuleset(PermissionRuleset):  # type: ignore[misc]  # asyncua is untyped for mypy
    """Services by role; node management and HistoryUpdate for nobody."""

    def check_validity(self, user: Any, action_type_id: ua.NodeId, body: Any) -> bool:
        access = user.access if isinstance(user, SessionUser) else None
        if action_type_id in READ_SERVICES:
            return True
        if action_type_id in CALL:
            allowed = access is not None  # viewers call read-only methods; each method checks its role
            needs = "a user's login"
        elif action_type_id in WRITE:
            allowed = access is not None and access >= Role.OPERATOR
            needs = "the operator role"
        else:
            allowed, needs = False, "a service nobody may use here"
        if not allowed:
            service = ua.ObjectIdNames.get(action_type_id.Identifier, str(action_type_id)).split("Request_")[
                0
            ]
            log.warning("OPC UA %s%s refused to %s: needs %s", service, _targets(action_type_id, body),
                        user if isinstance(user, SessionUser) else "anonymous", needs)  # fmt: skip
        return allowed


def _targets(action_type_id: ua.NodeId, body: Any) -> str:
    """The nodes a refused Write or Call was for, for the log (" of ns=2;s=a, ...")."""
    try:
        if action_type_id in WRITE:
            params = struct_from_binary(ua.WriteParameters, body.copy())
            nodes = [item.NodeId for item in params.NodesToWrite]
        elif action_type_id in CALL:
            params = struct_from_binary(ua.CallParameters, body.copy())
            nodes = [item.MethodId for item in params.MethodsToCall]
        else:
            return ""
    except Exception:  # only for the log: an undecodable body is refused all the same
        return ""
    return " of " + ", ".join(n.to_string() for n in nodes[:5]) + (" ..." if len(nodes) > 5 else "")


class _DecidedUsers(UserManager):  # type: ignore[misc]  # asyncua is untyped for mypy
    """Returns the user GuardedProcessor decided for this ActivateSession."""

    def get_user(
        self, iserver: InternalServer, username: Any = None, password: Any = None, certificate: Any = None
    ) -> UaUser | None:
        return _activating.get()


@dataclass(frozen=True, slots=True)
class Refusal(Exception):
    """A connection or session refused: the status for the client, the reason for the log."""

    status: int
    reason: str


class Guard:
    """What every connection checks against: the offered policies, the trust list, the users."""

    def __init__(
        self,
        pki: Pki,
        users: UserDirectory,
        *,
        offered: set[tuple[str, int]],
        anonymous: bool,
        anonymous_on_none: bool,
        discovery: bool = False,
        limits: OpcUaLimits | None = None,
    ) -> None:
        self.pki = pki
        self.users = users
        #: (policy URI, MessageSecurityMode) pairs of the endpoints.
        self.offered = offered
        self.anonymous = anonymous
        self.anonymous_on_none = anonymous_on_none
        #: A None channel (not endpoint) for GetEndpoints/FindServers only (OPC 10000-4 §5.4).
        self.discovery = discovery
        self.limits = limits or OpcUaLimits()

    def user_manager(self) -> UserManager:
        return _DecidedUsers()

    async def check_certificate(self, der: bytes, what: str) -> x509.Certificate:
        """Validate a client certificate (worker thread); unknown ones go to ``rejected/``."""

        def check() -> x509.Certificate:
            cert = load_certificate(der)
            try:
                self.pki.validate(cert)
            except CertificateError as err:
                if err.status == "BadCertificateUntrusted":
                    kept = self.pki.reject(cert)
                    raise CertificateError(
                        err.status,
                        f"{err.reason}; kept as {kept} (smx-gateway certs trust {thumbprint(cert)[:8]})",
                    ) from None
                raise
            return cert

        try:
            return await asyncio.to_thread(check)
        except CertificateError as err:
            raise Refusal(getattr(ua.StatusCodes, err.status), f"{what}: {err.reason}") from None


class GuardedProcessor(UaProcessor):  # type: ignore[misc]  # asyncua is untyped for mypy
    """asyncua's per-connection processor with the checks of this module's docstring."""

    def __init__(self, iserver: InternalServer, transport: Any, limits: Any, guard: Guard) -> None:
        super().__init__(iserver, transport, limits)
        self.session: Any = None  # asyncua's InternalSession once CreateSession (or a move) binds one
        self._guard = guard
        self._channel_certificate: bytes | None = None
        self._channel_policy = NONE_URI
        self._discovery_only = False

    # -- 1. OpenSecureChannel ---------------------------------------------------------------

    async def process(self, header: Any, body: Any) -> bool:
        if self._connection.is_open() and self._channel_policy != NONE_URI:
            if header.MessageType == ua.MessageType.SecureOpen:
                # A renewal: the certificate must still be trusted (an administrator may have
                # rejected it since), so distrust ends a channel within one token lifetime.
                try:
                    await self._guard.check_certificate(
                        self._channel_certificate or b"", "channel certificate"
                    )
                except Refusal as refusal:
                    return self._refuse_channel(refusal)
            elif token_expired(self._connection.security_token, datetime.now(UTC)):
                # asyncua never checks the current token's age: a client that does not renew
                # would keep its keys (and its certificate's trust) for ever.
                return self._refuse_channel(Refusal(ua.StatusCodes.BadSecureChannelTokenUnknown,
                                                    "security token expired without renewal"))  # fmt: skip
        if header.MessageType == ua.MessageType.SecureOpen and not self._connection.is_open():
            try:
                await self._check_open(header, body)
            except Refusal as refusal:
                return self._refuse_channel(refusal)
            try:
                opened: bool = await super().process(header, body)
            except (ValueError, InvalidSignature, ua.UaError) as err:
                # Not decryptable with our key or a bad signature (a client holding another
                # certificate of ours, or a forged request): asyncua would log a traceback and
                # leave the client waiting; refuse it like any other failed check.
                failed = f"request not decryptable or not verifiable ({type(err).__name__}: {err})"
                return self._refuse_channel(Refusal(ua.StatusCodes.BadSecurityChecksFailed, failed))
            return opened
        result: bool = await super().process(header, body)
        return result

    def _refuse_channel(self, refusal: Refusal) -> bool:
        log.warning("OPC UA %s: secure channel refused, %s: %s", _peer(self.name),
                    ua.StatusCode(refusal.status).name, refusal.reason)  # fmt: skip
        # The reason stays in our log: a client learns the status, not our file layout.
        error = ua.ErrorMessage(ua.StatusCode(refusal.status), ua.StatusCode(refusal.status).name)
        self._transport.write(uatcp_to_binary(ua.MessageType.Error, error))
        return False

    async def _check_open(self, header: Any, body: Any) -> None:
        algorithm = struct_from_binary(ua.AsymmetricAlgorithmHeader, body.copy(header.body_size))
        uri = algorithm.SecurityPolicyURI
        if not any(uri == offered for offered, _mode in self._guard.offered):
            if uri == NONE_URI and self._guard.discovery:
                self._discovery_only = True  # GetEndpoints/FindServers, nothing else
            else:
                raise Refusal(
                    ua.StatusCodes.BadSecurityPolicyRejected, f"security policy {uri} is not offered"
                )
        if uri != NONE_URI:
            if not algorithm.SenderCertificate:
                raise Refusal(ua.StatusCodes.BadCertificateInvalid, "no client certificate")
            await self._guard.check_certificate(algorithm.SenderCertificate, "channel certificate")
        self._channel_certificate = algorithm.SenderCertificate or None
        self._channel_policy = uri

    def open_secure_channel(self, algohdr: Any, seqhdr: Any, body: Any) -> None:
        # UaProcessor.open_secure_channel, with the requested token lifetime capped: renewals
        # are when trust is checked again.
        request = struct_from_binary(ua.OpenSecureChannelRequest, body)
        params = request.Parameters
        params.RequestedLifetime = min(
            max(params.RequestedLifetime, MIN_TOKEN_LIFETIME_MS), MAX_TOKEN_LIFETIME_MS
        )
        try:
            if not self._connection.is_open():
                self._connection.select_policy(
                    algohdr.SecurityPolicyURI, algohdr.SenderCertificate, params.SecurityMode
                )
            channel = self._connection.open(params, self.iserver)
            response = ua.OpenSecureChannelResponse()
            response.Parameters = channel
            self.send_response(
                request.RequestHeader.RequestHandle, seqhdr, response, ua.MessageType.SecureOpen
            )
        except ua.UaError as err:  # a mode we do not offer with this policy ("No matching policy")
            log.warning(
                "OPC UA %s: secure channel refused, BadSecurityModeRejected: %s", _peer(self.name), err
            )
            status = ua.StatusCode(ua.StatusCodes.BadSecurityModeRejected)
            error = ua.ErrorMessage(status, status.name)
            self._transport.write(uatcp_to_binary(ua.MessageType.Error, error))
            self._transport.close()

    # -- 2. and 3.: sessions; every request runs with its caller known ----------------------

    async def _process_message(self, typeid: ua.NodeId, requesthdr: Any, seqhdr: Any, body: Any) -> Any:
        if self._discovery_only and typeid not in _DISCOVERY:
            self._refuse(ua.StatusCodes.BadSecurityPolicyRejected,
                         "a None channel serves only GetEndpoints and FindServers here")  # fmt: skip
        if typeid in _REGISTER_SERVER:
            self._refuse(
                ua.StatusCodes.BadServiceUnsupported, "RegisterServer: this server is no discovery server"
            )
        if typeid in _SUBSCRIPTION_IDS and self.session is not None:
            self._check_own_subscriptions(typeid, body)
        if typeid in _LIMITED and self.session is not None:
            body = self._within_limits(typeid, body)
        if typeid == _CREATE_SESSION:
            open_sessions = [
                x for x in self.iserver._external_sessions.values() if x.state != SessionState.Closed
            ]
            if len(open_sessions) >= self._guard.limits.max_sessions:
                self._refuse(ua.StatusCodes.BadTooManySessions,
                             f"{len(open_sessions)} sessions open, the limit (max_sessions)")  # fmt: skip
            if self.session is not None and self.session.state != SessionState.Closed:
                if self.session.state == SessionState.Activated:
                    self._refuse(ua.StatusCodes.BadTooManySessions, "a second session on one secure channel")
                await self.session.close_session()  # never activated: not left behind
            self._check_create(struct_from_binary(ua.CreateSessionParameters, body.copy()))
            result = await super()._process_message(typeid, requesthdr, seqhdr, body)
            if self.session is not None:  # the channel a session belongs to, for reactivations
                self.session.smx_channel_certificate = self._channel_certificate
            return result
        if typeid == _ACTIVATE_SESSION:
            return await self._activate(typeid, requesthdr, seqhdr, body)
        session_user = self.session.user if self.session is not None else None
        if typeid in CALL or typeid in WRITE:
            session_user = await self._still(session_user)
        token = _caller.set(session_user if isinstance(session_user, SessionUser) else ANONYMOUS)
        session = _session_id.set(self.session.session_id if self.session is not None else None)
        try:
            return await super()._process_message(typeid, requesthdr, seqhdr, body)
        finally:
            _session_id.reset(session)
            _caller.reset(token)

    async def _still(self, user: Any) -> Any:
        """A named session user as the users file says now, before a write or a call: removing
        a user or lowering a role takes effect at once for what changes things."""
        if not isinstance(user, SessionUser) or user.name is None or user.access is None:
            return user
        role = await self._guard.users.role_of(user.name)
        if role is None:
            self._refuse(ua.StatusCodes.BadUserAccessDenied, f"user {user.name!r} was removed")
        if role != user.access:
            user = SessionUser(role=UserRole.User, name=user.name, access=role)
            self.session.user = user
        return user

    def _within_limits(self, typeid: ua.NodeId, body: Any) -> Any:
        """Refuse what is beyond the limits, revise intervals below the minimum (a new body)."""
        limits = self._guard.limits
        params_type = _LIMITED[typeid]
        params = struct_from_binary(params_type, body.copy())
        subscriptions = self.iserver.subscription_service.subscriptions
        if typeid == _CREATE_SUBSCRIPTION:
            mine = sum(1 for x in subscriptions.values() if x.session_id == self.session.session_id)
            if mine >= limits.max_subscriptions_per_session:
                why = f"{mine} subscriptions in this session (max_subscriptions_per_session)"
                self._refuse(ua.StatusCodes.BadTooManySubscriptions, why)
        if typeid in (_CREATE_SUBSCRIPTION, _MODIFY_SUBSCRIPTION):
            params.RequestedPublishingInterval = max(params.RequestedPublishingInterval,
                                                     limits.min_publishing_interval_ms)  # fmt: skip
        else:
            items = params.ItemsToCreate if typeid == _CREATE_MONITORED_ITEMS else params.ItemsToModify
            if typeid == _CREATE_MONITORED_ITEMS and params.SubscriptionId in subscriptions:
                held = len(subscriptions[params.SubscriptionId].monitored_item_srv._monitored_items)
                if held + len(items) > limits.max_monitored_items:
                    why = f"{held} + {len(items)} monitored items > {limits.max_monitored_items}"
                    self._refuse(ua.StatusCodes.BadTooManyMonitoredItems, why)
            for item in items:
                wanted = item.RequestedParameters.SamplingInterval
                if wanted >= 0:  # -1: the publishing interval (already bounded)
                    item.RequestedParameters.SamplingInterval = max(wanted, limits.min_sampling_interval_ms)
        return Buffer(struct_to_binary(params))

    def _check_own_subscriptions(self, typeid: ua.NodeId, body: Any) -> None:
        # asyncua looks subscriptions up by id alone (ids count up from a global counter), so
        # any session could delete, mute or acknowledge another session's subscription.
        params_type, ids_of = _SUBSCRIPTION_IDS[typeid]
        ids = ids_of(struct_from_binary(params_type, body.copy()))
        subscriptions = self.iserver.subscription_service.subscriptions
        own = self.session.session_id
        foreign = [i for i in ids if i in subscriptions and subscriptions[i].session_id != own]
        if foreign:
            self._refuse(ua.StatusCodes.BadSubscriptionIdInvalid,
                         f"subscription(s) {foreign} belong to another session")  # fmt: skip

    async def _activate(self, typeid: ua.NodeId, requesthdr: Any, seqhdr: Any, body: Any) -> Any:
        # A session may move to a new channel (OPC 10000-4 §5.6.3: reconnect), and asyncua
        # binds the channel to the session named by the token before checking anything, so a
        # failed activation would leave another client's session on this channel. Here a
        # session moves only to a channel of the same client certificate, with its identity
        # checked again, and a failed move leaves the channel without a session.
        moving = self.session is None
        session: Any = self.session or self.iserver.lookup_external_session(requesthdr.AuthenticationToken)
        if session is None:
            return await super()._process_message(typeid, requesthdr, seqhdr, body)  # BadSessionIdInvalid
        if moving and getattr(session, "smx_channel_certificate", None) != self._channel_certificate:
            self._refuse(ua.StatusCodes.BadSecurityChecksFailed,
                         "ActivateSession for a session of another channel certificate")  # fmt: skip
        params = struct_from_binary(ua.ActivateSessionParameters, body.copy())
        user = await self._decide_user(params, session)
        token = _activating.set(user)
        try:
            return await super()._process_message(typeid, requesthdr, seqhdr, body)
        except InvalidSignature:
            if moving:
                self.session = None
            self._refuse(ua.StatusCodes.BadApplicationSignatureInvalid,
                         "client signature not over this session's nonce")  # fmt: skip
        except BaseException:
            if moving:
                self.session = None
            raise
        finally:
            _activating.reset(token)

    def _check_create(self, params: ua.CreateSessionParameters) -> None:
        if self._channel_policy == NONE_URI:
            return  # nothing is signed: the certificate would prove nothing
        if params.ClientCertificate != self._channel_certificate:
            self._refuse(
                ua.StatusCodes.BadSecurityChecksFailed,
                "CreateSession certificate differs from the secure channel's",
            )
        claimed = params.ClientDescription.ApplicationUri if params.ClientDescription else None
        uri = application_uri_of(load_certificate(params.ClientCertificate))
        if uri is None or uri != claimed:  # the certificate must name the application (10000-4 §5.6.2)
            self._refuse(
                ua.StatusCodes.BadCertificateUriInvalid,
                f"client claims ApplicationUri {claimed!r}, its certificate says {uri!r}",
            )

    async def _decide_user(self, params: ua.ActivateSessionParameters, session: Any) -> SessionUser:
        token = params.UserIdentityToken
        mode = self._connection.security_policy.Mode
        via = f"OPC UA {_peer(self.name)}"
        if (
            token is None
            or isinstance(token, ua.AnonymousIdentityToken)
            or (isinstance(token, ua.ExtensionObject) and token.TypeId == ua.NodeId(ua.ObjectIds.Null))
        ):
            allowed = (
                self._guard.anonymous_on_none if self._channel_policy == NONE_URI else self._guard.anonymous
            )
            if not allowed:
                self._refuse(ua.StatusCodes.BadIdentityTokenRejected, "anonymous sessions are not allowed")
            return ANONYMOUS
        if self._channel_policy == NONE_URI:
            self._refuse(
                ua.StatusCodes.BadIdentityTokenRejected,
                f"{type(token).__name__} on an unsecured channel (user tokens need a secure one)",
            )
        if isinstance(token, ua.UserNameIdentityToken):
            encrypted = bool(token.EncryptionAlgorithm)
            if mode != ua.MessageSecurityMode.SignAndEncrypt and not encrypted:
                self._refuse(
                    ua.StatusCodes.BadIdentityTokenRejected,
                    f"password of {token.UserName!r} sent in clear on an unencrypted channel",
                )
            if token.EncryptionAlgorithm == _WEAK_TOKEN_ENCRYPTION:
                self._refuse(
                    ua.StatusCodes.BadSecurityPolicyRejected, "password encrypted with RSA-PKCS#1 v1.5"
                )
            name, password = self._password(session, token)
            try:
                found = await self._guard.users.login(name, password, via=via)
            except AuthError:
                raise ServiceError(ua.StatusCodes.BadUserAccessDenied) from None  # logged by login()
            return SessionUser(role=UserRole.User, name=found.name, access=found.role)
        if isinstance(token, ua.X509IdentityToken):
            try:
                self.iserver.verify_x509_token(session, token, params.UserTokenSignature)
            except Exception as err:
                self._refuse(ua.StatusCodes.BadIdentityTokenInvalid, f"user certificate signature: {err}")
            try:
                cert = await self._guard.check_certificate(token.CertificateData, "user certificate")
            except Refusal as refusal:
                log.warning("%s: session refused, BadIdentityTokenRejected: %s", via, refusal.reason)
                raise ServiceError(ua.StatusCodes.BadIdentityTokenRejected) from None
            try:
                found = await self._guard.users.by_certificate(thumbprint(cert), via=via)
            except AuthError:
                raise ServiceError(ua.StatusCodes.BadUserAccessDenied) from None
            return SessionUser(role=UserRole.User, name=found.name, access=found.role)
        self._refuse(ua.StatusCodes.BadIdentityTokenInvalid, f"unknown identity token {type(token).__name__}")

    def _password(self, session: Any, token: ua.UserNameIdentityToken) -> tuple[str, str]:
        """The user name and password of a token, the server nonce checked (OPC 10000-4 §7.41.2.2).

        asyncua strips as many bytes as the nonce has without comparing them, so a token
        encrypted once could be replayed into any later session: here the nonce must be the
        one this session was given.
        """
        if not token.EncryptionAlgorithm:
            secret = token.Password or b""
            return token.UserName, secret.decode("utf-8") if isinstance(secret, bytes) else str(secret)
        decrypt = _DECRYPT.get(token.EncryptionAlgorithm)
        if decrypt is None:
            self._refuse(ua.StatusCodes.BadIdentityTokenInvalid,
                         f"password encryption {token.EncryptionAlgorithm} is not accepted")  # fmt: skip
        nonce: bytes = session.nonce or b""
        try:
            plain = decrypt(self.iserver.private_key, token.Password)
            length = int.from_bytes(plain[:4], "little")
            secret = plain[4 : 4 + length]
            ok = len(secret) == length >= len(nonce) and hmac.compare_digest(
                secret[len(secret) - len(nonce) :], nonce
            )
            password = secret[: len(secret) - len(nonce)].decode("utf-8")
        except (ValueError, UnicodeDecodeError) as err:
            self._refuse(ua.StatusCodes.BadIdentityTokenInvalid, f"password not decryptable: {err}")
        if not ok:
            self._refuse(ua.StatusCodes.BadIdentityTokenInvalid,
                         f"password of {token.UserName!r} encrypted for another session (nonce)")  # fmt: skip
        return token.UserName, password

    def _refuse(self, status: int, reason: str) -> NoReturn:
        log.warning(
            "OPC UA %s: session refused, %s: %s", _peer(self.name), ua.StatusCode(status).name, reason
        )
        raise ServiceError(status)


#: Security token lifetimes granted (OPC 10000-4 §5.5.2): trust is checked again at each renewal.
MAX_TOKEN_LIFETIME_MS = 600_000
MIN_TOKEN_LIFETIME_MS = 10_000


def token_expired(token: ua.ChannelSecurityToken, now: datetime) -> bool:
    """Past its lifetime and the 25 % grace OPC 10000-4 §5.5.2.1 gives late messages."""
    created: datetime | None = token.CreatedAt
    lifetime_ms = float(token.RevisedLifetime or 0)
    if created is None or not lifetime_ms:
        return False
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return now > created + timedelta(milliseconds=1.25 * lifetime_ms)


_CREATE_SUBSCRIPTION, _MODIFY_SUBSCRIPTION, _CREATE_MONITORED_ITEMS, _MODIFY_MONITORED_ITEMS = (
    ua.NodeId(getattr(ua.ObjectIds, f"{name}Request_Encoding_DefaultBinary"))
    for name in ("CreateSubscription", "ModifySubscription", "CreateMonitoredItems", "ModifyMonitoredItems")
)
#: Requests checked against the limits (OPC 10000-4 §5.13, §5.12), with their parameters.
_LIMITED: dict[ua.NodeId, type] = {
    _CREATE_SUBSCRIPTION: ua.CreateSubscriptionParameters,
    _MODIFY_SUBSCRIPTION: ua.ModifySubscriptionParameters,
    _CREATE_MONITORED_ITEMS: ua.CreateMonitoredItemsParameters,
    _MODIFY_MONITORED_ITEMS: ua.ModifyMonitoredItemsParameters,
}

_DISCOVERY = _services("GetEndpoints", "FindServers", "CloseSecureChannel")
_REGISTER_SERVER = _services("RegisterServer", "RegisterServer2")


def _one(field: str) -> Any:
    return lambda params: [getattr(params, field)]


#: Requests naming subscriptions: their parameters and how to get the ids (OPC 10000-4 §5.13).
_SUBSCRIPTION_IDS: dict[ua.NodeId, tuple[type, Any]] = {
    ua.NodeId(getattr(ua.ObjectIds, f"{name}Request_Encoding_DefaultBinary")): (
        getattr(ua, f"{name}Parameters"),
        ids_of,
    )
    for name, ids_of in (
        ("ModifySubscription", _one("SubscriptionId")),
        ("SetPublishingMode", lambda p: list(p.SubscriptionIds)),
        ("DeleteSubscriptions", lambda p: list(p.SubscriptionIds)),
        ("CreateMonitoredItems", _one("SubscriptionId")),
        ("ModifyMonitoredItems", _one("SubscriptionId")),
        ("DeleteMonitoredItems", _one("SubscriptionId")),
        ("SetMonitoringMode", _one("SubscriptionId")),
        ("SetTriggering", _one("SubscriptionId")),
        ("Republish", _one("SubscriptionId")),
        ("Publish", lambda p: [a.SubscriptionId for a in p.SubscriptionAcknowledgements]),
    )
}
_CREATE_SESSION = ua.NodeId(ua.ObjectIds.CreateSessionRequest_Encoding_DefaultBinary)
_ACTIVATE_SESSION = ua.NodeId(ua.ObjectIds.ActivateSessionRequest_Encoding_DefaultBinary)


def _peer(name: Any) -> str:
    if isinstance(name, tuple) and len(name) >= 2:
        return f"{name[0]}:{name[1]}"
    return str(name)


class GuardedProtocol(OPCUAProtocol):  # type: ignore[misc]  # asyncua is untyped for mypy
    def __init__(self, guard: Guard, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._guard = guard

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if self.processor is not None:  # None: refused at max_connections
            processor = GuardedProcessor(self.iserver, self.transport, self.limits, self._guard)
            processor.set_policies(self.policies)
            self.processor: Any = processor  # before any data: the receive task looks it up per message


class GuardedBinaryServer(BinaryServer):  # type: ignore[misc]  # asyncua is untyped for mypy
    def __init__(self, guard: Guard, iserver: InternalServer, host: str, port: int, limits: Any) -> None:
        super().__init__(iserver, host, port, limits)
        self._guard = guard
        self._bind = (host, port)

    async def start(self) -> None:
        # BinaryServer.start, but an IP address is bound with IP_FREEBIND (gateway/security/netbind.py):
        # a listener on the VPN tunnel address starts before the tunnel is up.
        host, port = self._bind
        if not is_address(host):
            await super().start()
            return
        sock = listening_socket(host, port)
        self._server = await asyncio.get_running_loop().create_server(self._make_protocol, sock=sock)
        self.port = sock.getsockname()[1]  # asyncua's Server reads the port chosen for 0 here
        self.logger.info("Listening on %s:%s", host, self.port)
        self.cleanup_task = asyncio.create_task(self._close_task_loop())

    def _make_protocol(self) -> OPCUAProtocol:
        return GuardedProtocol(
            self._guard,
            iserver=self.iserver,
            policies=self._policies,
            clients=self.clients,
            closing_tasks=self.closing_tasks,
            limits=self.limits,
        )
