"""Attacks on the gateway's OPC UA security (DESIGN §8), by real asyncua clients against the
real running gateway: untrusted, expired and revoked certificates, policies and modes not
offered, a session bound to another certificate than its channel, passwords on unsecured
channels, password guessing, and every role trying what it may not do.

Each refusal is checked twice: the status the client gets (OPC 10000-4) and the WARNING
the gateway logs naming it. Three gateways serve the whole module, started together:

- ``prod``: production profile as a configuration file has it by default: SignAndEncrypt
  only, no anonymous sessions, no None channel at all (not even for discovery);
- ``open``: production profile with Sign offered too, anonymous sessions allowed and a
  None channel for discovery (GetEndpoints/FindServers only);
- ``demo``: the demo profile of ``make run`` (None endpoint, anonymous read-only).

Every certificate and key is made here with ``cryptography`` into the module's temporary
directory (never committed). asyncua clients log CRITICAL/ERROR lines on refusals: expected.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from asyncua import Client, ua
from asyncua.crypto import security_policies
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.app import Gateway
from gateway.config import GatewayConfig
from gateway.opcua.guard import MAX_TOKEN_LIFETIME_MS
from gateway.opcua.ids import SMX_NAMESPACE
from gateway.security.pki import Pki, create_application_certificate, thumbprint, write_private_key
from gateway.security.users import MAX_FAILURES, Role, User, UserDb, hash_password
from tests.support.harness import PASSWORD, demo, status_of

pytestmark = pytest.mark.asyncio(loop_scope="module")

REPO = Path(__file__).resolve().parents[2]
CLI = REPO / ".venv" / "bin" / "smx-gateway"
#: The loggers whose WARNINGs must name each refusal.
GATEWAY_LOGGERS = (
    "gateway.opcua.guard",
    "gateway.security.auth",
    "gateway.opcua.market",
    "gateway.opcua.methods",
    "gateway.opcua.administration",
)
#: The refused-login delay of the production gateways (the lockout test measures it).
LOGIN_DELAY_S = 0.3
LIVE_VALUE = "meter1.1-0:32.7.0"
PASSWORD_HASH = hash_password(PASSWORD)
SE = "SignAndEncrypt"
URI = {
    "None": security_policies.SecurityPolicyNone.URI,
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256.URI,
    "Aes128_Sha256_RsaOaep": security_policies.SecurityPolicyAes128Sha256RsaOaep.URI,
    "Aes256_Sha256_RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss.URI,
}
#: Client-side policy classes by the names the configuration uses.
POLICY = {
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
    "Aes128_Sha256_RsaOaep": security_policies.SecurityPolicyAes128Sha256RsaOaep,
    "Aes256_Sha256_RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
    "Basic256": security_policies.SecurityPolicyBasic256,
    "Basic128Rsa15": security_policies.SecurityPolicyBasic128Rsa15,
}


# -- certificates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """A certificate and its key, as files for asyncua and as objects for the checks."""

    uri: str
    cert: x509.Certificate
    key: rsa.RSAPrivateKey
    der_path: Path
    key_path: Path

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def thumbprint(self) -> str:
        return thumbprint(self.cert)


def _save(folder: Path, name: str, uri: str, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> Identity:
    der_path = folder / f"{name}.der"
    der_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    key_path = folder / f"{name}.pem"
    write_private_key(key_path, key)
    return Identity(uri, cert, key, der_path, key_path)


def self_signed(folder: Path, name: str, *, now: dt.datetime | None = None, days: int = 30) -> Identity:
    """A self-signed application instance certificate for ``urn:smx:test:<name>``."""
    uri = f"urn:smx:test:{name}"
    cert, key = create_application_certificate(
        uri, common_name=f"attack {name}", organization="tests", now=now, lifetime=dt.timedelta(days=days)
    )
    return _save(folder, name, uri, cert, key)


def authority(folder: Path, name: str) -> Identity:
    """A CA: self-signed, may sign certificates and revocation lists."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"attack CA {name}")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _save(folder, f"ca-{name}", "", cert, key)


def issued(folder: Path, name: str, ca: Identity) -> Identity:
    """An application instance certificate for ``urn:smx:test:<name>`` signed by ``ca``."""
    uri = f"urn:smx:test:{name}"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"attack {name}")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(ca=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    return _save(folder, name, uri, cert, key)


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=not ca,
        key_encipherment=not ca,
        data_encipherment=not ca,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def revocation_list(ca: Identity, *revoked: Identity) -> bytes:
    """``ca``'s CRL (DER) listing ``revoked``."""
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now - dt.timedelta(hours=1))
        .next_update(now + dt.timedelta(days=7))
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.cert.serial_number)
            .revocation_date(now - dt.timedelta(minutes=30))
            .build()
        )
    return builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


# -- the gateways -----------------------------------------------------------------------------


@dataclass
class Served:
    gateway: Gateway
    config: GatewayConfig

    @property
    def endpoint(self) -> str:
        return self.gateway.endpoint

    @property
    def pki(self) -> Pki:
        return Pki(self.config.security.pki)

    @property
    def users(self) -> Path:
        return Path(self.config.security.users)

    @property
    def archive(self) -> Path:
        return Path(self.config.archive.path)


@dataclass
class World:
    prod: Served
    open: Served
    demo: Served
    ids: dict[str, Identity]


def gateway_config(
    root: Path, *, profile: str, anonymous: bool, discovery: bool, modes: tuple[str, ...] = (SE,)
) -> GatewayConfig:
    """The demo configuration with the given security, every path absolute under ``root``."""
    base = demo()
    security = replace(
        base.security,
        profile=profile,
        anonymous=anonymous,
        discovery=discovery,
        modes=modes,
        pki=str(root / "pki") if profile != "demo" else base.security.pki,
        users=str(root / "users"),
        login_delay_s=LOGIN_DELAY_S if profile != "demo" else base.security.login_delay_s,
    )
    return replace(
        base,
        security=security,
        archive=replace(base.archive, path=str(root / "archive")),
        web=replace(base.web, enabled=False),
    )


def prepare(config: GatewayConfig, trusted: list[Identity], crls: tuple[bytes, ...] = ()) -> None:
    """Trust list and users file before the gateway starts."""
    pki = Pki(config.security.pki)
    pki.create_folders()
    for ident in trusted:
        (pki.folder("trusted/certs") / ident.der_path.name).write_bytes(ident.der)
    for n, crl in enumerate(crls):
        (pki.folder("trusted/crl") / f"ca-{n}.crl").write_bytes(crl)
    db = UserDb.load(config.security.users)
    for name, role in (
        ("operator", Role.OPERATOR),
        ("viewer", Role.VIEWER),
        ("guessed", Role.OPERATOR),
        ("bystander", Role.OPERATOR),
        ("admin", Role.ADMIN),
    ):
        db.users[name] = User(name, role, PASSWORD_HASH)  # one scrypt hash for all (~0.2 s each)
    db.save()


async def start(configs: list[GatewayConfig]) -> tuple[list[Gateway], list[asyncio.Task[None]]]:
    """Start the gateways together; each one ready (OPC UA serving) when this returns."""
    gateways = [Gateway(c) for c in configs]
    tasks = [asyncio.create_task(g.run()) for g in gateways]
    async with asyncio.timeout(30):
        for gateway, task in zip(gateways, tasks, strict=True):
            ready = asyncio.create_task(gateway.ready.wait())
            done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                ready.cancel()
                task.result()  # raises what stopped the gateway
    return gateways, tasks


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    root = tmp_path_factory.mktemp("opcua-security")
    here = Path.cwd()
    os.chdir(root)  # anything relative (the demo's users file, ...) stays in the temporary folder
    ids_dir = root / "identities"
    ids_dir.mkdir()
    ids = {
        name: self_signed(ids_dir, name)
        for name in ("client", "other", "stranger", "newcomer", "user", "nobody")
    }
    ids["user-untrusted"] = self_signed(ids_dir, "user-untrusted")
    ids["expired"] = self_signed(
        ids_dir, "expired", now=dt.datetime.now(dt.UTC) - dt.timedelta(days=30), days=2
    )
    ids["ca"] = authority(ids_dir, "with-crl")
    ids["ca-no-crl"] = authority(ids_dir, "without-crl")
    ids["revoked"] = issued(ids_dir, "revoked", ids["ca"])
    ids["issued"] = issued(ids_dir, "issued", ids["ca"])
    ids["orphan"] = issued(ids_dir, "orphan", ids["ca-no-crl"])
    trusted = [ids[n] for n in ("client", "other", "user", "nobody", "expired", "ca", "ca-no-crl")]
    prod = gateway_config(root / "prod", profile="production", anonymous=False, discovery=False)
    prepare(prod, trusted, (revocation_list(ids["ca"], ids["revoked"]),))
    opened = gateway_config(
        root / "open", profile="production", anonymous=True, discovery=True, modes=(SE, "Sign")
    )
    prepare(opened, [ids["client"], ids["other"]])
    demo_config = gateway_config(root / "demo", profile="demo", anonymous=True, discovery=True)
    configs = [prod, opened, demo_config]
    gateways, tasks = await start(configs)
    try:
        yield World(*(Served(g, c) for g, c in zip(gateways, configs, strict=True)), ids=ids)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        os.chdir(here)


# -- clients and checks -----------------------------------------------------------------------


async def secure(
    served: Served,
    ident: Identity,
    *,
    policy: str = "Basic256Sha256",
    mode: str = SE,
    user: str | None = None,
    password: str = PASSWORD,
) -> Client:
    """A client of ``ident`` on a secure channel to ``served`` (server certificate known: the
    production profile has no None channel to fetch it with GetEndpoints)."""
    client = Client(served.endpoint, timeout=10)
    client.application_uri = ident.uri
    await client.set_security(
        POLICY[policy],
        str(ident.der_path),
        str(ident.key_path),
        server_certificate=str(served.pki.own_certificate),
        mode=getattr(ua.MessageSecurityMode, mode),
    )
    if user is not None:
        client.set_user(user)
        client.set_password(password)
    return client


async def refused(client: Client, status: int) -> None:
    """``client.connect()`` fails with ``status``."""
    got = await status_of(client.connect())
    if got == "Good":
        await client.disconnect()
    assert got == ua.StatusCode(status).name


def gateway_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.name in GATEWAY_LOGGERS and r.levelno >= logging.WARNING
    ]


def logged(caplog: pytest.LogCaptureFixture, *needles: str) -> None:
    """A WARNING of the gateway's security loggers contains every one of ``needles``."""
    lines = gateway_warnings(caplog)
    assert any(all(n in line for n in needles) for line in lines), (
        f"no gateway WARNING with {needles}; the gateway warned: {lines}"
    )


def node(client: Client, ns: int, identifier: str) -> Any:
    return client.get_node(ua.NodeId(identifier, ns))


async def market_call(client: Client, method: str, *args: ua.Variant) -> str:
    ns = await client.get_namespace_index(SMX_NAMESPACE)
    market = node(client, ns, "meter1.Market")
    return await status_of(market.call_method(node(client, ns, f"meter1.Market.{method}").nodeid, *args))


def register_args(served: Served, offset: int, value: float = 0.2) -> tuple[dt.date, list[ua.Variant]]:
    desk = served.gateway.desk
    assert desk is not None
    day = desk.calendar.day_of(served.gateway.clock.now()) + dt.timedelta(days=offset)
    n = desk.calendar.periods_in(day)
    return day, [
        ua.Variant(day.isoformat(), ua.VariantType.String),
        ua.Variant([value] * n, ua.VariantType.Double),
        ua.Variant("kWh", ua.VariantType.String),
        ua.Variant(True, ua.VariantType.Boolean),
    ]


NOW = ua.Variant(dt.datetime(1601, 1, 1, tzinfo=dt.UTC), ua.VariantType.DateTime)
PRICE = ua.DataValue(ua.Variant(42.0, ua.VariantType.Double))
#: What refused writes try to store (no accepted write uses it).
REFUSED_PRICE_VALUE = 13.0
REFUSED_PRICE = ua.DataValue(ua.Variant(REFUSED_PRICE_VALUE, ua.VariantType.Double))


def spot_price(served: Served) -> float | None:
    """The gateway's own idea of the external value ``spot_price``."""
    state = served.gateway.external.state("spot_price", served.gateway.clock.now())
    return None if state.value is None else state.value.value


async def cli(*args: str) -> str:
    """Run ``smx-gateway ARGS``; its standard output (fails on a non-zero exit)."""
    process = await asyncio.create_subprocess_exec(
        str(CLI), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


# -- 1. trust list ----------------------------------------------------------------------------


async def test_untrusted_certificate_is_refused_kept_and_trusted_with_the_cli(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    stranger = world.ids["stranger"]
    rejected = world.prod.pki.folder("rejected/certs")
    await refused(await secure(world.prod, stranger, user="operator"), ua.StatusCodes.BadCertificateUntrusted)
    logged(caplog, "secure channel refused", "BadCertificateUntrusted", stranger.thumbprint[:8])
    kept = [p for p in rejected.iterdir() if stranger.thumbprint in p.name]
    assert len(kept) == 1, list(rejected.iterdir())
    assert kept[0].read_bytes() == stranger.der

    out = await cli("certs", "--pki", str(world.prod.pki.root), "trust", stranger.thumbprint[:10])
    assert "trusted/certs" in out
    assert not kept[0].exists()
    # The trust list is read again for each connection: no restart needed.
    async with await secure(world.prod, stranger, user="operator") as client:
        ns = await client.get_namespace_index(SMX_NAMESPACE)
        assert ns > 0


async def test_a_new_user_and_a_removed_certificate_count_on_a_running_gateway_and_its_reload(
    world: World, tmp_path: Path
) -> None:
    """Issue 19: what an operator changes while the gateway runs takes effect without a
    restart: a user added to the users file, a client certificate taken off the trust list
    (both read when they change); the reload a SIGHUP starts changes nothing of that."""
    served = world.prod
    ident = self_signed(tmp_path, "reloaded-client")
    (served.pki.folder("trusted/certs") / ident.der_path.name).write_bytes(ident.der)
    db = UserDb.load(served.users)
    db.users["newop"] = User("newop", Role.OPERATOR, PASSWORD_HASH)
    db.save()
    assert served.gateway.reload(served.config).live == ()  # the SIGHUP: nothing to apply
    async with await secure(served, ident, user="newop") as client:
        ns = await client.get_namespace_index(SMX_NAMESPACE)
        price = node(client, ns, "SMX.ExternalData.spot_price")
        await price.write_value(ua.DataValue(ua.Variant(44.0, ua.VariantType.Double)))  # an operator

    out = await cli("certs", "--pki", str(served.pki.root), "reject", ident.thumbprint[:10])
    assert "rejected/certs" in out
    await refused(await secure(served, ident, user="newop"), ua.StatusCodes.BadCertificateUntrusted)


async def admin_call(client: Client, method: str, *args: ua.Variant) -> ua.CallMethodResult:
    """A call of ``SMX.Administration.<method>``, its whole result (statuses not raised)."""
    ns = await client.get_namespace_index(SMX_NAMESPACE)
    request = ua.CallMethodRequest(
        ObjectId=ua.NodeId("SMX.Administration", ns),
        MethodId=ua.NodeId(f"SMX.Administration.{method}", ns),
        InputArguments=list(args),
    )
    (result,) = await client.uaclient.call([request])
    return result


def text(value: str) -> ua.Variant:
    return ua.Variant(value, ua.VariantType.String)


async def test_an_admin_manages_the_trust_list_over_opc_ua(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    newcomer = world.ids["newcomer"]
    await refused(await secure(world.prod, newcomer, user="operator"), ua.StatusCodes.BadCertificateUntrusted)
    client_id = world.ids["client"]
    async with await secure(world.prod, client_id, user="operator") as operator:
        denied = await admin_call(operator, "TrustCertificate", text(newcomer.thumbprint))
        assert denied.StatusCode.name == "BadUserAccessDenied"
        logged(caplog, "SMX.Administration.TrustCertificate", "operator", "needs the admin role")
    async with await secure(world.prod, client_id, user="admin") as admin:
        listing = await admin_call(admin, "ListCertificates")
        assert listing.StatusCode.is_good()
        trusted, rejected = (v.Value for v in listing.OutputArguments)
        assert any(line.startswith(newcomer.thumbprint) and "CN=attack newcomer" in line for line in rejected)
        assert any(line.startswith(client_id.thumbprint) for line in trusted)
        # Too short a prefix, or one that names nothing: refused, the argument says why.
        short = await admin_call(admin, "TrustCertificate", text(newcomer.thumbprint[:4]))
        assert short.StatusCode.name == "BadInvalidArgument"
        assert "at least 8 hex digits" in short.InputArgumentDiagnosticInfos[0].AdditionalInfo
        unknown = await admin_call(admin, "TrustCertificate", text("00000000"))
        assert unknown.StatusCode.name == "BadInvalidArgument"
        assert unknown.InputArgumentResults[0].name == "BadNotFound"
        wrong_type = await admin_call(admin, "TrustCertificate", ua.Variant(7, ua.VariantType.Int32))
        assert wrong_type.InputArgumentResults[0].name == "BadTypeMismatch"
        # Trusted: the newcomer connects at its next attempt, and is refused again once rejected.
        moved = await admin_call(admin, "TrustCertificate", text(newcomer.thumbprint[:12]))
        assert moved.StatusCode.is_good(), moved
        assert [v.Value for v in moved.OutputArguments] == ["O=tests,CN=attack newcomer"]
        logged(caplog, "trusted by admin", newcomer.thumbprint[:12])
        async with await secure(world.prod, newcomer, user="operator") as welcomed:
            assert await welcomed.get_namespace_index(SMX_NAMESPACE) > 0
        back = await admin_call(admin, "RejectCertificate", text(newcomer.thumbprint[:12]))
        assert back.StatusCode.is_good(), back
    await refused(await secure(world.prod, newcomer, user="operator"), ua.StatusCodes.BadCertificateUntrusted)


async def test_a_channel_encrypted_for_another_certificate_is_refused(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that holds another server certificate (an old one, a spoofed endpoint's) cannot
    open a channel: the gateway cannot decrypt its request and says so instead of hanging."""
    client_id = world.ids["client"]
    client = Client(world.prod.endpoint, timeout=10)
    client.application_uri = client_id.uri
    await client.set_security(
        POLICY["Basic256Sha256"], str(client_id.der_path), str(client_id.key_path),
        server_certificate=str(world.ids["other"].der_path), mode=ua.MessageSecurityMode.SignAndEncrypt,
    )  # fmt: skip
    await refused(client, ua.StatusCodes.BadSecurityChecksFailed)
    logged(caplog, "secure channel refused", "BadSecurityChecksFailed", "not decryptable")


async def test_a_renewal_checks_the_trust_list_again_and_lifetimes_are_capped(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Rejecting a certificate ends its channels at their next renewal, at most 10 min away."""
    folder = Path(world.prod.config.security.pki).parent / "late"
    folder.mkdir()
    ident = self_signed(folder, "late-rejected")
    (world.prod.pki.folder("trusted/certs") / ident.der_path.name).write_bytes(ident.der)
    client = await secure(world.prod, ident, user="operator")
    client.secure_channel_timeout = 3_600_000  # asks for an hour
    async with client:
        assert client.secure_channel_timeout == MAX_TOKEN_LIFETIME_MS  # granted: ten minutes
        await client.open_secure_channel(renew=True)  # still trusted: renewed
        await cli("certs", "--pki", str(world.prod.pki.root), "reject", ident.thumbprint[:12])
        assert await status_of(client.open_secure_channel(renew=True)) == "BadCertificateUntrusted"
    logged(caplog, "secure channel refused", "BadCertificateUntrusted", ident.thumbprint[:8])


# -- 2. policies and modes --------------------------------------------------------------------


def offered(endpoints: list[ua.EndpointDescription]) -> set[tuple[str, str]]:
    return {(e.SecurityPolicyUri, e.SecurityMode.name) for e in endpoints}


async def test_production_offers_only_the_secure_policies(world: World) -> None:
    client = await secure(world.prod, world.ids["client"])
    endpoints = await client.connect_and_get_server_endpoints()
    assert offered(endpoints) == {
        (URI[p], SE) for p in ("Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss")
    }
    for endpoint in endpoints:
        tokens = {t.TokenType for t in endpoint.UserIdentityTokens}
        assert tokens == {ua.UserTokenType.UserName, ua.UserTokenType.Certificate}, endpoint.SecurityPolicyUri
    # With Sign configured, each policy is offered in both modes; still no None.
    client = await secure(world.open, world.ids["client"])
    endpoints = await client.connect_and_get_server_endpoints()
    assert offered(endpoints) == {
        (URI[p], m)
        for p in ("Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss")
        for m in (SE, "Sign")
    }
    for endpoint in endpoints:  # anonymous = true: offered on the secure endpoints
        assert ua.UserTokenType.Anonymous in {t.TokenType for t in endpoint.UserIdentityTokens}
    # The demo profile adds a None endpoint, where only anonymous sessions are offered.
    endpoints = await Client(world.demo.endpoint, timeout=10).connect_and_get_server_endpoints()
    (none,) = [e for e in endpoints if e.SecurityPolicyUri == URI["None"]]
    assert [t.TokenType for t in none.UserIdentityTokens] == [ua.UserTokenType.Anonymous]


async def test_production_refuses_the_none_policy(world: World, caplog: pytest.LogCaptureFixture) -> None:
    plain = Client(world.prod.endpoint, timeout=10)
    await refused(plain, ua.StatusCodes.BadSecurityPolicyRejected)
    logged(caplog, "secure channel refused", "BadSecurityPolicyRejected", URI["None"])
    # Without [security] discovery not even GetEndpoints over None.
    caplog.clear()
    status = await status_of(Client(world.prod.endpoint, timeout=10).connect_and_get_server_endpoints())
    assert status == "BadSecurityPolicyRejected"
    logged(caplog, "secure channel refused", "BadSecurityPolicyRejected", URI["None"])


async def test_a_discovery_channel_serves_no_session(world: World, caplog: pytest.LogCaptureFixture) -> None:
    """With discovery on, a None channel answers GetEndpoints (no None endpoint in it) and
    nothing else: a session over it is refused, even an anonymous one (anonymous = true)."""
    endpoints = await Client(world.open.endpoint, timeout=10).connect_and_get_server_endpoints()
    assert URI["None"] not in {e.SecurityPolicyUri for e in endpoints}
    assert {e.SecurityPolicyUri for e in endpoints} == {
        URI[p] for p in ("Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss")
    }
    await refused(Client(world.open.endpoint, timeout=10), ua.StatusCodes.BadSecurityPolicyRejected)
    logged(caplog, "session refused", "BadSecurityPolicyRejected", "only GetEndpoints")


async def test_a_mode_not_offered_is_refused(world: World, caplog: pytest.LogCaptureFixture) -> None:
    client = await secure(world.prod, world.ids["client"], mode="Sign", user="operator")
    await refused(client, ua.StatusCodes.BadSecurityModeRejected)
    logged(caplog, "secure channel refused", "BadSecurityModeRejected")


@pytest.mark.parametrize("policy", ["Basic256", "Basic128Rsa15"])
async def test_a_policy_not_offered_is_refused(
    world: World, caplog: pytest.LogCaptureFixture, policy: str
) -> None:
    client = await secure(world.prod, world.ids["client"], policy=policy, user="operator")
    await refused(client, ua.StatusCodes.BadSecurityPolicyRejected)
    logged(caplog, "secure channel refused", "BadSecurityPolicyRejected", policy)


# -- 3. demo profile: None endpoint -----------------------------------------------------------


async def test_demo_none_endpoint_is_anonymous_and_refuses_user_tokens(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    async with Client(world.demo.endpoint, timeout=10) as client:
        ns = await client.get_namespace_index(SMX_NAMESPACE)
        assert await node(client, ns, "meter1.Market.PeriodMinutes").read_value() == 15
    caplog.clear()
    with_password = Client(world.demo.endpoint, timeout=10)
    with_password.set_user("operator")
    with_password.set_password(PASSWORD)
    await refused(with_password, ua.StatusCodes.BadIdentityTokenRejected)
    logged(caplog, "session refused", "BadIdentityTokenRejected", "unsecured channel")


async def test_a_password_in_clear_on_a_signed_channel_is_refused(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    client = await secure(world.open, world.ids["client"], mode="Sign", user="operator")

    def in_clear(token_type: ua.UserTokenType) -> ua.UserTokenPolicy:
        # What a careless client does: ignore the endpoint's token policy and send the password as is.
        return ua.UserTokenPolicy(PolicyId="username", TokenType=token_type, SecurityPolicyUri=URI["None"])

    client.server_policy = in_clear  # type: ignore[method-assign]
    await refused(client, ua.StatusCodes.BadIdentityTokenRejected)
    logged(caplog, "session refused", "BadIdentityTokenRejected", "sent in clear")
    # The same user with the password encrypted in the token (asyncua's default on Sign) gets in.
    async with await secure(world.open, world.ids["client"], mode="Sign", user="operator") as client:
        await client.get_namespace_index(SMX_NAMESPACE)


# -- 4. session bound to the channel ----------------------------------------------------------


async def test_create_session_with_another_certificate_than_the_channel(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    client = await secure(world.prod, world.ids["client"], user="operator")
    await client.connect_socket()
    try:
        await client.send_hello()
        await client.open_secure_channel()
        # The channel is signed with "client"; the session claims "other" (trusted too).
        client.security_policy.host_certificate = world.ids["other"].der
        assert await status_of(client.create_session()) == "BadSecurityChecksFailed"
    finally:
        with contextlib.suppress(Exception):
            await client.close_secure_channel()
        client.disconnect_socket()
    logged(caplog, "session refused", "BadSecurityChecksFailed", "differs from the secure channel")


async def step_by_step(served: Served, ident: Identity, mode: str = SE) -> Client:
    """A client on an open secure channel, no session yet (the caller closes it)."""
    client = await secure(served, ident, user="operator", mode=mode)
    await client.connect_socket()
    await client.send_hello()
    await client.open_secure_channel()
    return client


async def close(client: Client) -> None:
    with contextlib.suppress(Exception):
        await client.close_secure_channel()
    client.disconnect_socket()


async def test_a_password_encrypted_for_another_nonce_is_refused(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """The server nonce inside the encrypted password must be this session's: a token seen on
    the wire (a Sign channel) cannot be replayed into another session."""
    # On a Sign channel the password travels encrypted in the token, with the server's nonce.
    client = await step_by_step(world.open, world.ids["client"], mode="Sign")
    try:
        await client.create_session()
        client._server_nonce = os.urandom(32)  # what an earlier session was given
        assert await status_of(client.activate_session("operator", PASSWORD)) == "BadIdentityTokenInvalid"
    finally:
        await close(client)
    logged(caplog, "session refused", "BadIdentityTokenInvalid", "encrypted for another session")


async def test_an_activation_signed_over_another_nonce_is_refused(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    client = await step_by_step(world.prod, world.ids["client"])
    try:
        await client.create_session()
        client._server_nonce = os.urandom(32)  # the client signature then covers a foreign nonce
        status = await status_of(client.activate_session("operator", PASSWORD))
        assert status == "BadApplicationSignatureInvalid"
    finally:
        await close(client)
    logged(caplog, "session refused", "BadApplicationSignatureInvalid")


async def test_one_session_per_channel(world: World, caplog: pytest.LogCaptureFixture) -> None:
    client = await step_by_step(world.prod, world.ids["client"])
    try:
        await client.create_session()
        await client.create_session()  # the first was never activated: closed, not left behind
        await client.activate_session("operator", PASSWORD)
        assert await status_of(client.create_session()) == "BadTooManySessions"
    finally:
        await close(client)
    logged(caplog, "session refused", "BadTooManySessions")


async def test_register_server_is_refused(world: World, caplog: pytest.LogCaptureFixture) -> None:
    """Nobody registers servers here: FindServers must not be poisoned with foreign entries."""
    client = await step_by_step(world.prod, world.ids["client"])
    try:
        server = ua.RegisteredServer(ServerUri="urn:evil", DiscoveryUrls=["opc.tcp://evil.example:4840"],
                                     IsOnline=True)  # fmt: skip
        assert await status_of(client.uaclient.register_server(server)) == "BadServiceUnsupported"
    finally:
        await close(client)
    logged(caplog, "session refused", "BadServiceUnsupported", "RegisterServer")


class Counting:
    """Counts data changes; ``reach(n)`` waits until n have come."""

    def __init__(self) -> None:
        self.count = 0
        self._more = asyncio.Event()

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.count += 1
        self._more.set()

    async def reach(self, n: int, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while self.count < n:
                self._more.clear()
                await self._more.wait()


async def test_a_session_cannot_touch_another_sessions_subscription(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    async with await secure(world.prod, world.ids["client"], user="operator") as owner:
        ns = await owner.get_namespace_index(SMX_NAMESPACE)
        changes = Counting()
        subscription = await owner.create_subscription(200, changes)
        await subscription.subscribe_data_change(node(owner, ns, LIVE_VALUE))
        sid = subscription.subscription_id
        async with await secure(world.prod, world.ids["other"], user="viewer") as intruder:
            for attempt in (
                intruder.uaclient.delete_subscriptions([sid]),
                intruder.uaclient.set_publishing_mode(
                    ua.SetPublishingModeParameters(PublishingEnabled=False, SubscriptionIds=[sid])
                ),
                intruder.uaclient.delete_monitored_items(
                    ua.DeleteMonitoredItemsParameters(SubscriptionId=sid, MonitoredItemIds=[1])
                ),
            ):
                assert await status_of(attempt) == "BadSubscriptionIdInvalid"
            transfer = ua.TransferSubscriptionsParameters(SubscriptionIds=[sid], SendInitialValues=True)
            assert (
                await status_of(intruder.uaclient.transfer_subscriptions(transfer)) == "BadUserAccessDenied"
            )
        logged(caplog, "BadSubscriptionIdInvalid", f"[{sid}] belong to another session")
        # The owner's subscription lives on: new values keep coming.
        await changes.reach(changes.count + 2, timeout=10)


async def test_removing_a_user_or_lowering_a_role_takes_effect_in_a_running_session(
    world: World, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.security.auth.RECHECK_S", 0.0)  # look at the file before every write
    db = UserDb.load(world.prod.users)
    db.users["temp"] = User("temp", Role.OPERATOR, PASSWORD_HASH)
    db.save()
    async with await secure(world.prod, world.ids["client"], user="temp") as client:
        ns = await client.get_namespace_index(SMX_NAMESPACE)
        price = node(client, ns, "SMX.ExternalData.spot_price")
        assert await status_of(price.write_value(PRICE)) == "Good"
        db.users["temp"] = User("temp", Role.VIEWER, PASSWORD_HASH)
        db.save()
        assert await status_of(price.write_value(REFUSED_PRICE)) == "BadUserAccessDenied"
        del db.users["temp"]
        db.save()
        assert await market_call(client, "ComputeAdvice", NOW) == "BadUserAccessDenied"
        assert spot_price(world.prod) != REFUSED_PRICE_VALUE
    logged(caplog, "session refused", "BadUserAccessDenied", "'temp' was removed")


# -- 5. password guessing ---------------------------------------------------------------------


async def test_wrong_passwords_are_slow_and_lock_the_name(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    client = world.ids["client"]
    for attempt in range(1, MAX_FAILURES + 1):
        guesser = await secure(world.prod, client, user="guessed", password=f"wrong guess {attempt}")
        began = time.monotonic()
        await refused(guesser, ua.StatusCodes.BadUserAccessDenied)
        took = time.monotonic() - began
        assert took >= LOGIN_DELAY_S, f"refusal {attempt} after {took:.3f} s"
        logged(caplog, "login of 'guessed' refused: wrong password", f"({attempt} in a row)")
    # Locked: the right password is refused too, and the log says so.
    caplog.clear()
    await refused(await secure(world.prod, client, user="guessed"), ua.StatusCodes.BadUserAccessDenied)
    logged(caplog, "'guessed' is locked")
    # Another name is not affected.
    async with await secure(world.prod, client, user="bystander") as ok:
        await ok.get_namespace_index(SMX_NAMESPACE)


# -- 6. anonymous sessions --------------------------------------------------------------------


async def anonymous_may_not_write_or_call(
    served: Served, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    ns = await client.get_namespace_index(SMX_NAMESPACE)
    assert await node(client, ns, "meter1.Market.PeriodMinutes").read_value() == 15
    caplog.clear()
    price = node(client, ns, "SMX.ExternalData.spot_price")
    assert await status_of(price.write_value(REFUSED_PRICE)) == "BadUserAccessDenied"
    assert await market_call(client, "ComputeAdvice", NOW) == "BadUserAccessDenied"
    day, args = register_args(served, 1)
    assert await market_call(client, "RegisterProfile", *args) == "BadUserAccessDenied"
    assert not (served.archive / "meter1" / "notified" / f"{day}.csv").exists()
    assert spot_price(served) != REFUSED_PRICE_VALUE
    # Logged by the gateway, naming the caller and what was refused.
    logged(caplog, "spot_price")
    logged(caplog, "ComputeAdvice", "anonymous")
    logged(caplog, "RegisterProfile", "anonymous")


async def test_anonymous_on_the_demo_none_endpoint_may_not_write_or_call(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    async with Client(world.demo.endpoint, timeout=10) as client:
        await anonymous_may_not_write_or_call(world.demo, client, caplog)


async def test_anonymous_on_a_secure_channel_may_not_write_or_call(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    async with await secure(world.open, world.ids["client"]) as client:
        await anonymous_may_not_write_or_call(world.open, client, caplog)


async def test_anonymous_is_refused_by_default_in_production(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    await refused(await secure(world.prod, world.ids["client"]), ua.StatusCodes.BadIdentityTokenRejected)
    logged(caplog, "session refused", "BadIdentityTokenRejected", "anonymous sessions are not allowed")


# -- 7. roles ---------------------------------------------------------------------------------


class Changes:
    def __init__(self) -> None:
        self.got = asyncio.Event()

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.got.set()


async def test_viewer_reads_browses_subscribes_and_calls_read_only_methods(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    served = world.prod
    async with await secure(served, world.ids["client"], user="viewer") as client:
        ns = await client.get_namespace_index(SMX_NAMESPACE)
        meter = node(client, ns, "meter1")
        names = {(await child.read_browse_name()).Name for child in await meter.get_children()}
        assert {"Instantaneous", "Energy", "Market", "Diagnostics"} <= names
        live = node(client, ns, LIVE_VALUE)
        await live.read_data_value(raise_on_bad_status=False)
        changes = Changes()
        subscription = await client.create_subscription(200, changes)
        await subscription.subscribe_data_change(live)
        async with asyncio.timeout(10):
            await changes.got.wait()
        await subscription.delete()
        now = dt.datetime.now(dt.UTC)
        details = ua.ReadRawModifiedDetails(
            IsReadModified=False, StartTime=now - dt.timedelta(hours=1), EndTime=now, NumValuesPerNode=10
        )
        history = await live.history_read(details)
        assert history.StatusCode.is_good(), history.StatusCode
        assert await market_call(client, "ComputeAdvice", NOW) == "Good"

        caplog.clear()
        day, args = register_args(served, 2)
        assert await market_call(client, "RegisterProfile", *args) == "BadUserAccessDenied"
        assert not (served.archive / "meter1" / "notified" / f"{day}.csv").exists()
        price = node(client, ns, "SMX.ExternalData.spot_price")
        assert await status_of(price.write_value(REFUSED_PRICE)) == "BadUserAccessDenied"
        assert spot_price(served) != REFUSED_PRICE_VALUE
    logged(caplog, "RegisterProfile refused to viewer", "operator role")
    logged(caplog, "Write", "spot_price", "viewer")


async def test_operator_registers_profiles_and_writes_external_values(world: World) -> None:
    served = world.prod
    async with await secure(served, world.ids["client"], user="operator") as client:
        ns = await client.get_namespace_index(SMX_NAMESPACE)
        day, args = register_args(served, 3)
        assert await market_call(client, "RegisterProfile", *args) == "Good"
        assert (served.archive / "meter1" / "notified" / f"{day}.csv").exists()
        price = node(client, ns, "SMX.ExternalData.spot_price")
        await price.write_value(PRICE)
        assert await price.read_value() == 42.0
        assert await market_call(client, "ComputeAdvice", NOW) == "Good"


async def test_nobody_changes_the_address_space(world: World, caplog: pytest.LogCaptureFixture) -> None:
    """AddNodes and DeleteNodes are refused to every role (the operator here), as is HistoryUpdate."""
    served = world.prod
    async with await secure(served, world.ids["client"], user="operator") as client:
        ns = await client.get_namespace_index(SMX_NAMESPACE)
        caplog.clear()
        added = await status_of(client.nodes.objects.add_folder(ns, "Injected"))
        assert added == "BadUserAccessDenied"
        deleted = await status_of(client.delete_nodes([node(client, ns, LIVE_VALUE)]))
        assert deleted == "BadUserAccessDenied"
        live = node(client, ns, LIVE_VALUE)
        now = dt.datetime.now(dt.UTC)
        erase = ua.DeleteRawModifiedDetails(
            NodeId=live.nodeid, IsDeleteModified=False, StartTime=now - dt.timedelta(days=1), EndTime=now
        )
        params = ua.HistoryUpdateParameters(HistoryUpdateDetails=[erase])
        assert await status_of(client.uaclient.history_update(params)) == "BadUserAccessDenied"
        await live.read_data_value(raise_on_bad_status=False)  # still there
    logged(caplog, "AddNodes", "operator")
    logged(caplog, "DeleteNodes", "operator")


# -- 8. certificate validity and revocation ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "reason"),
    [
        ("expired", "BadCertificateTimeInvalid", "is valid from"),
        ("revoked", "BadCertificateRevoked", "is revoked by"),
        ("orphan", "BadCertificateRevocationUnknown", "no revocation list of"),
    ],
)
async def test_invalid_client_certificates_are_refused(
    world: World, caplog: pytest.LogCaptureFixture, name: str, status: str, reason: str
) -> None:
    ident = world.ids[name]
    await refused(await secure(world.prod, ident, user="operator"), getattr(ua.StatusCodes, status))
    logged(caplog, "secure channel refused", status, reason)


async def test_a_certificate_of_a_trusted_ca_with_its_crl_is_accepted(world: World) -> None:
    async with await secure(world.prod, world.ids["issued"], user="operator") as client:
        await client.get_namespace_index(SMX_NAMESPACE)


# -- 9. X.509 user tokens ---------------------------------------------------------------------


async def x509_client(served: Served, user: Identity, channel: Identity) -> Client:
    client = await secure(served, channel)
    client.user_certificate = user.cert
    client.user_private_key = user.key
    return client


async def test_a_mapped_user_certificate_logs_in_with_its_role(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.security.auth")
    served = world.prod
    user = world.ids["user"]
    # Added with the real CLI while the gateway runs: the users file is read again.
    await cli("users", "--file", str(served.users), "add", "certop", "--role", "operator",
              "--certificate", user.thumbprint, "--no-password")  # fmt: skip
    async with await x509_client(served, user, world.ids["client"]) as client:
        ns = await client.get_namespace_index(SMX_NAMESPACE)
        price = node(client, ns, "SMX.ExternalData.spot_price")
        await price.write_value(ua.DataValue(ua.Variant(43.0, ua.VariantType.Double)))  # operator may
    assert any("certop logged in by certificate as operator" in r.getMessage() for r in caplog.records)

    caplog.clear()
    await refused(
        await x509_client(served, world.ids["nobody"], world.ids["client"]),
        ua.StatusCodes.BadUserAccessDenied,
    )
    logged(caplog, "no user has the certificate", world.ids["nobody"].thumbprint)

    caplog.clear()
    untrusted = world.ids["user-untrusted"]
    await refused(
        await x509_client(served, untrusted, world.ids["client"]), ua.StatusCodes.BadIdentityTokenRejected
    )
    logged(caplog, "BadIdentityTokenRejected", "user certificate", untrusted.thumbprint[:8])


# -- 10. the other policies -------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["Aes256_Sha256_RsaPss", "Aes128_Sha256_RsaOaep", "Basic256Sha256"])
async def test_every_offered_policy_serves_live_values(world: World, policy: str) -> None:
    served = world.prod
    poller = served.gateway.pollers["meter1"]
    async with await secure(served, world.ids["client"], policy=policy, user="operator") as client:
        ns = await client.get_namespace_index(SMX_NAMESPACE)
        live = node(client, ns, LIVE_VALUE)
        async with asyncio.timeout(20):
            value = await live.read_data_value(raise_on_bad_status=False)
            while not value.StatusCode.is_good():
                await poller.wait_snapshot()
                value = await live.read_data_value(raise_on_bad_status=False)
        assert math.isfinite(value.Value.Value)
        assert 180 < value.Value.Value < 280  # a phase voltage in V


# -- 11. a session taken over from another channel --------------------------------------------


async def test_a_session_cannot_be_taken_over_from_another_channel(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """OPC 10000-4 §5.6.3: a session moves to another channel only with the same client
    certificate and a new identity token. An anonymous client (trusted, read-only) that learnt
    an operator's AuthenticationToken (sent in the clear on a Sign-only channel) must not get
    the operator's rights by activating that session on its own channel."""
    served = world.open
    async with await secure(served, world.ids["client"], mode="Sign", user="operator") as victim:
        token = victim.uaclient.protocol.authentication_token
        attacker = await secure(served, world.ids["other"])
        await attacker.connect_socket()
        try:
            await attacker.send_hello()
            await attacker.open_secure_channel()
            attacker.uaclient.protocol.authentication_token = token
            activated = await status_of(attacker.activate_session())
            assert activated != "Good"
            ns = await victim.get_namespace_index(SMX_NAMESPACE)
            price = attacker.get_node(ua.NodeId("SMX.ExternalData.spot_price", ns))
            wrote = await status_of(price.write_value(ua.DataValue(ua.Variant(666.0, ua.VariantType.Double))))
        finally:
            with contextlib.suppress(Exception):
                await attacker.close_secure_channel()
            attacker.disconnect_socket()
        assert spot_price(served) != 666.0, "the attacker wrote as the operator"
        assert wrote != "Good", f"ActivateSession answered {activated}, then the write was accepted"
    logged(caplog, "session refused")
