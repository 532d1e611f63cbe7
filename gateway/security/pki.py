"""The gateway's certificates and the trust list of its clients (DESIGN §8, OPC 10000-6 §6.2.2).

Layout under the PKI root (``certs/`` by default), as OPC UA applications lay it out::

    own/certs/smx.der        the application instance certificate (DER)
    own/private/smx.pem      its private key (PEM, mode 0600; never committed)
    trusted/certs/           client certificates and CAs the administrator trusts
    trusted/crl/             revocation lists of trusted CAs
    issuers/certs/           CAs that may issue client certificates, not trusted by themselves
    issuers/crl/             their revocation lists
    rejected/certs/          unknown client certificates, kept for an administrator to trust

:func:`create_application_certificate` makes a self-signed certificate with what OPC UA
clients check: RSA 2048+ with SHA-256, the ApplicationUri as the first URI of the
SubjectAltName plus the host's DNS names and IP addresses, keyUsage digitalSignature,
nonRepudiation, keyEncipherment, dataEncipherment and keyCertSign (self-signed),
extendedKeyUsage serverAuth and clientAuth.

:meth:`Pki.validate` answers with the OPC UA StatusCode name a refused certificate
gets (``BadCertificateUntrusted``, ``BadCertificateTimeInvalid``, ``BadCertificateRevoked``,
...): a certificate is trusted if it is in ``trusted/`` itself, or if its chain through
``trusted/`` and ``issuers/`` ends in a trusted certificate; every CA of the chain must have
a revocation list, and no certificate of the chain may be listed in its issuer's.
Synchronous file code: the async callers run it in a worker thread.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import ipaddress
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.errors import GatewayError
from gateway.files import replace_file

#: Key size of new certificates; OPC UA's Basic256Sha256 and Aes*_Sha256 policies take 2048..4096.
KEY_BITS = 2048
#: Lifetime of a new application instance certificate.
LIFETIME = dt.timedelta(days=5 * 365)
#: Warn this long before the own certificate expires.
EXPIRY_WARNING = dt.timedelta(days=60)
#: Rejected certificates kept for an administrator (the oldest are dropped beyond).
MAX_REJECTED = 100
_FOLDERS = ("own/certs", "own/private", "trusted/certs", "trusted/crl", "issuers/certs", "issuers/crl",
            "rejected/certs")  # fmt: skip


class CertificateError(GatewayError):
    """A certificate is refused; ``status`` is the OPC UA StatusCode name it earns."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.reason = message


def thumbprint(cert: x509.Certificate) -> str:
    """SHA-1 of the DER encoding in hex: how OPC UA names a certificate (OPC 10000-4 §7.6)."""
    return hashlib.sha1(cert.public_bytes(serialization.Encoding.DER), usedforsecurity=False).hexdigest()


def load_certificate(data: bytes) -> x509.Certificate:
    """A certificate from DER or PEM bytes."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as err:
        raise CertificateError("BadCertificateInvalid", f"not an X.509 certificate: {err}") from None


def create_application_certificate(
    application_uri: str,
    *,
    common_name: str,
    organization: str,
    hostnames: Sequence[str] = (),
    addresses: Sequence[str] = (),
    now: dt.datetime | None = None,
    lifetime: dt.timedelta = LIFETIME,
    key_bits: int = KEY_BITS,
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A self-signed application instance certificate and its key (OPC 10000-6 Table 50)."""
    now = now or dt.datetime.now(dt.UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_bits)
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
    ])  # fmt: skip
    alt_names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri)]
    alt_names += [x509.DNSName(h) for h in hostnames]
    alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # clocks of peers differ a little
        .not_valid_after(now + lifetime)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def application_uri_of(cert: x509.Certificate) -> str | None:
    """The first URI of the SubjectAltName: the ApplicationUri of an OPC UA certificate."""
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = alt.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def write_private_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    """Write ``key`` readable by its owner only (created 0600, never wider for a moment)."""
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    replace_file(path, data, mode=0o600)


@dataclass(frozen=True, slots=True)
class Validity:
    """What :meth:`TrustList.validate` found: the chain from the certificate to its anchor."""

    chain: tuple[x509.Certificate, ...]


class Pki:
    """The PKI folders of the gateway: its own certificate and the trust list."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @property
    def own_certificate(self) -> Path:
        return self.root / "own" / "certs" / "smx.der"

    @property
    def own_key(self) -> Path:
        return self.root / "own" / "private" / "smx.pem"

    def folder(self, name: str) -> Path:
        return self.root / name

    def create_folders(self) -> None:
        for name in _FOLDERS:
            (self.root / name).mkdir(parents=True, exist_ok=True, mode=0o700 if "private" in name else 0o755)

    # -- own certificate ----------------------------------------------------------------------

    def ensure_own(
        self,
        application_uri: str,
        *,
        common_name: str,
        organization: str,
        hostnames: Sequence[str] = (),
        addresses: Sequence[str] = (),
        now: dt.datetime | None = None,
    ) -> tuple[x509.Certificate, bool]:
        """The own certificate, created on first start; returns it and whether it was created.

        An existing certificate for another ApplicationUri is an error (clients identify the
        server by it): remove it on purpose to get a new one.
        """
        self.create_folders()
        if self.own_certificate.exists() and self.own_key.exists():
            cert = load_certificate(self.own_certificate.read_bytes())
            uri = application_uri_of(cert)
            if uri != application_uri:
                raise CertificateError(
                    "BadCertificateUriInvalid",
                    f"{self.own_certificate} is for {uri!r}, the configuration says {application_uri!r}; "
                    "remove it and its key to create a new one",
                )
            return cert, False
        cert, key = create_application_certificate(
            application_uri, common_name=common_name, organization=organization, hostnames=hostnames,
            addresses=addresses, now=now,
        )  # fmt: skip
        write_private_key(self.own_key, key)
        self.own_certificate.write_bytes(cert.public_bytes(serialization.Encoding.DER))
        return cert, True

    def tls_server_context(self) -> ssl.SSLContext:
        """A TLS 1.2+ server context with the own certificate (the web page's HTTPS).

        ``ssl`` loads only files, so a PEM copy of the certificate is kept beside the DER one.
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.own_certificate_pem(), self.own_key)
        return context

    def own_certificate_pem(self) -> Path:
        """A PEM copy of the own certificate, kept beside the DER one (``ssl`` loads only
        files: the web page's HTTPS and the uplink's TLS client use it)."""
        pem = self.own_certificate.with_suffix(".crt")
        data = load_certificate(self.own_certificate.read_bytes()).public_bytes(serialization.Encoding.PEM)
        if not pem.exists() or pem.read_bytes() != data:
            replace_file(pem, data)
        return pem

    # -- trust list ---------------------------------------------------------------------------

    def certificates(self, folder: str) -> dict[str, tuple[Path, x509.Certificate]]:
        """The certificates in ``folder`` ("trusted/certs", ...) by thumbprint (unreadable files skipped)."""
        found: dict[str, tuple[Path, x509.Certificate]] = {}
        with contextlib.suppress(FileNotFoundError):
            for path in sorted((self.root / folder).iterdir()):
                if path.suffix.lower() not in (".der", ".pem", ".crt", ".cer"):
                    continue
                try:
                    cert = load_certificate(path.read_bytes())
                except CertificateError:
                    continue
                found[thumbprint(cert)] = (path, cert)
        return found

    def _crls(self) -> list[x509.CertificateRevocationList]:
        lists = []
        for folder in ("trusted/crl", "issuers/crl"):
            with contextlib.suppress(FileNotFoundError):
                for path in sorted((self.root / folder).iterdir()):
                    data = path.read_bytes()
                    try:
                        if data.lstrip().startswith(b"-----BEGIN"):
                            lists.append(x509.load_pem_x509_crl(data))
                        else:
                            lists.append(x509.load_der_x509_crl(data))
                    except ValueError:
                        continue
        return lists

    def reject(self, cert: x509.Certificate) -> Path:
        """Keep an unknown client certificate in ``rejected/`` for an administrator.

        At most :data:`MAX_REJECTED` are kept (the oldest go): anybody can present a
        certificate, so the folder must not grow without bound.
        """
        folder = self.root / "rejected" / "certs"
        path = folder / f"{_file_name(cert)}.der"
        folder.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            kept = sorted(folder.glob("*.der"), key=lambda p: p.stat().st_mtime)
            for old in kept[: max(0, len(kept) - MAX_REJECTED + 1)]:
                old.unlink(missing_ok=True)
            path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
        return path

    def trust(self, thumbprint_prefix: str) -> Path:
        """Move a rejected certificate (named by its thumbprint or a unique prefix) to ``trusted/``."""
        return self._move(thumbprint_prefix, "rejected/certs", "trusted/certs")

    def distrust(self, thumbprint_prefix: str) -> Path:
        """Move a trusted certificate back to ``rejected/``."""
        return self._move(thumbprint_prefix, "trusted/certs", "rejected/certs")

    def _move(self, prefix: str, source: str, target: str) -> Path:
        prefix = prefix.lower().replace(":", "")
        matches = [(t, p) for t, (p, _c) in self.certificates(source).items() if t.startswith(prefix)]
        if len(matches) != 1:
            what = "no certificate" if not matches else f"{len(matches)} certificates"
            raise CertificateError("BadNotFound", f"{what} in {source} with a thumbprint starting {prefix!r}")
        (_thumb, path), = matches  # fmt: skip
        destination = self.root / target / path.name
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, destination)
        return destination

    def validate(self, cert: x509.Certificate, now: dt.datetime | None = None) -> Validity:
        """Check ``cert`` against the trust list; raise CertificateError with the status it earns."""
        now = now or dt.datetime.now(dt.UTC)
        trusted = self.certificates("trusted/certs")
        issuers = {**self.certificates("issuers/certs"), **trusted}
        crls = self._crls()
        chain = [cert]
        anchored = thumbprint(cert) in trusted
        current = cert
        while not _self_signed(current):
            issuer = _issuer_of(current, [c for _p, c in issuers.values()])
            if issuer is None:
                if anchored:
                    break  # a trusted leaf whose CA is not known here: trusted on its own
                raise CertificateError(
                    "BadCertificateUntrusted",
                    f"{_describe(cert)} is not trusted and its issuer "
                    f"{current.issuer.rfc4514_string()} is unknown",
                )
            _check_revocation(current, issuer, crls, now)
            chain.append(issuer)
            anchored = anchored or thumbprint(issuer) in trusted
            current = issuer
            if len(chain) > 8:
                raise CertificateError("BadCertificateInvalid", f"{_describe(cert)}: chain longer than 8")
        if _self_signed(current):
            try:
                _verify(current, current)
            except CertificateError:
                raise CertificateError(
                    "BadCertificateInvalid", f"{_describe(current)}: bad self-signature"
                ) from None
        if not anchored:
            raise CertificateError("BadCertificateUntrusted", f"{_describe(cert)} is not trusted")
        for link in chain:
            if not link.not_valid_before_utc <= now <= link.not_valid_after_utc:
                status = "BadCertificateTimeInvalid" if link is cert else "BadCertificateIssuerTimeInvalid"
                raise CertificateError(
                    status,
                    f"{_describe(link)} is valid from {link.not_valid_before_utc:%Y-%m-%d} to "
                    f"{link.not_valid_after_utc:%Y-%m-%d}",
                )
        _check_use(cert)
        return Validity(tuple(chain))


def _file_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common = str(names[0].value) if names else "certificate"
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in common)[:40]
    return f"{safe} [{thumbprint(cert)}]"


def _describe(cert: x509.Certificate) -> str:
    return f"certificate {cert.subject.rfc4514_string()!r} [{thumbprint(cert)[:16]}]"


def _self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject


def _verify(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    public = issuer.public_key()
    if not isinstance(public, rsa.RSAPublicKey) or cert.signature_hash_algorithm is None:
        raise CertificateError("BadCertificateInvalid", f"{_describe(cert)}: not an RSA signature")
    try:
        public.verify(
            cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm
        )
    except InvalidSignature:
        raise CertificateError(
            "BadCertificateInvalid", f"{_describe(cert)}: signature does not verify"
        ) from None


def _issuer_of(cert: x509.Certificate, candidates: list[x509.Certificate]) -> x509.Certificate | None:
    """The candidate that signed ``cert`` and may sign certificates at all (CA:true, keyCertSign):
    a trusted application certificate must not be able to mint others."""
    for candidate in candidates:
        if candidate.subject != cert.issuer or candidate is cert or not _may_issue(candidate):
            continue
        try:
            _verify(cert, candidate)
        except CertificateError:
            continue
        return candidate
    return None


def _check_revocation(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    crls: list[x509.CertificateRevocationList],
    now: dt.datetime,
) -> None:
    """The issuer's revocation list must exist and not list ``cert``."""
    own = [c for c in crls if c.issuer == issuer.subject and c.is_signature_valid(issuer.public_key())]  # type: ignore[arg-type]
    if not own:
        raise CertificateError(
            "BadCertificateRevocationUnknown", f"no revocation list of {issuer.subject.rfc4514_string()}"
        )
    # A list past its nextUpdate may miss later revocations: as good as none (RFC 5280 §6.3.3).
    current = [c for c in own if c.next_update_utc is None or now <= c.next_update_utc]
    if not current:
        raise CertificateError(
            "BadCertificateRevocationUnknown",
            f"the revocation list of {issuer.subject.rfc4514_string()} is out of date "
            f"(next update was due {max(c.next_update_utc for c in own if c.next_update_utc):%Y-%m-%d})",
        )
    own = current
    for crl in own:
        if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            status = "BadCertificateRevoked" if not _is_ca(cert) else "BadCertificateIssuerRevoked"
            raise CertificateError(
                status, f"{_describe(cert)} is revoked by {issuer.subject.rfc4514_string()}"
            )


def _may_issue(cert: x509.Certificate) -> bool:
    """A CA (basicConstraints CA:true) whose keyUsage, if present, has keyCertSign (RFC 5280 §4.2.1.3)."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return _is_ca(cert)
    return _is_ca(cert) and usage.key_cert_sign


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _check_use(cert: x509.Certificate) -> None:
    """An application certificate must allow signing and key encipherment (OPC 10000-6 Table 50)."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not (usage.digital_signature and usage.key_encipherment):
        raise CertificateError(
            "BadCertificateUseNotAllowed",
            f"{_describe(cert)}: keyUsage lacks digitalSignature or keyEncipherment",
        )
