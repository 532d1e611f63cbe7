"""The application instance certificate and the trust list: what OPC UA clients check in
ours, and what a client certificate must pass (trusted itself or through a CA with a
revocation list, in its validity, usable for signing and encryption)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.security.pki import (
    CertificateError,
    Pki,
    application_uri_of,
    create_application_certificate,
    thumbprint,
)

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
URI = "urn:smx:gateway:test"


def name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Ca:
    """A test certificate authority that issues client certificates and revocation lists."""

    def __init__(self, common: str = "Test CA") -> None:
        self.key = key()
        self.name = name(common)
        self.cert = (
            x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=10)).not_valid_after(NOW + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.key, hashes.SHA256())
        )  # fmt: skip

    def issue(self, common: str, *, days: int = 365, start: dt.datetime | None = None,
              signing: bool = True) -> x509.Certificate:  # fmt: skip
        start = start or NOW - dt.timedelta(days=1)
        return (
            x509.CertificateBuilder().subject_name(name(common)).issuer_name(self.name)
            .public_key(key().public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.KeyUsage(
                digital_signature=signing, content_commitment=False, key_encipherment=True,
                data_encipherment=True, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )  # fmt: skip

    def crl(self, *revoked: x509.Certificate) -> bytes:
        builder = (
            x509.CertificateRevocationListBuilder().issuer_name(self.name)
            .last_update(NOW - dt.timedelta(days=1)).next_update(NOW + dt.timedelta(days=30))
        )  # fmt: skip
        for cert in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(cert.serial_number)
                .revocation_date(NOW)
                .build()
            )
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def test_own_certificate_has_what_opc_ua_clients_check(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "certs")
    cert, created = pki.ensure_own(
        URI,
        common_name="SMX Gateway",
        organization="Utility",
        hostnames=["smx-1"],
        addresses=["10.8.0.6"],
        now=NOW,
    )
    assert created
    assert application_uri_of(cert) == URI
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert alt.get_values_for_type(x509.DNSName) == ["smx-1"]
    assert alt.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.8.0.6")]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    flags = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_cert_sign",
    )
    assert {f: getattr(usage, f) for f in flags} == dict.fromkeys(flags, True)
    extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(extended) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.key_size == 2048
    assert cert.not_valid_after_utc - NOW > dt.timedelta(days=4 * 365)
    # The key is the owner's alone, and its folder too.
    assert stat.S_IMODE(pki.own_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(pki.own_key.parent.stat().st_mode) == 0o700
    loaded = serialization.load_pem_private_key(pki.own_key.read_bytes(), None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    assert loaded.public_key().public_numbers() == public.public_numbers()
    # A second start keeps it; another ApplicationUri is refused, not silently replaced.
    again, created = pki.ensure_own(URI, common_name="SMX Gateway", organization="Utility")
    assert not created
    assert thumbprint(again) == thumbprint(cert)
    with pytest.raises(CertificateError, match="BadCertificateUriInvalid"):
        pki.ensure_own("urn:other", common_name="SMX Gateway", organization="Utility")
    # Our own certificate validates once trusted (a self-signed peer).
    with pytest.raises(CertificateError, match="BadCertificateUntrusted"):
        pki.validate(cert, NOW)
    (pki.folder("trusted/certs") / "self.der").write_bytes(der(cert))
    assert pki.validate(cert, NOW).chain == (cert,)


def test_unknown_certificate_is_rejected_then_trusted_on_purpose(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    pki.create_folders()
    client, _key = create_application_certificate("urn:client", common_name="UaExpert", organization="Op",
                                                  now=NOW)  # fmt: skip
    with pytest.raises(CertificateError, match="BadCertificateUntrusted") as refused:
        pki.validate(client, NOW)
    assert refused.value.status == "BadCertificateUntrusted"
    kept = pki.reject(client)
    assert kept.parent == tmp_path / "rejected" / "certs"
    assert thumbprint(client) in kept.name
    trusted = pki.trust(thumbprint(client)[:10])
    assert trusted.parent == tmp_path / "trusted" / "certs"
    assert pki.validate(client, NOW).chain == (client,)
    pki.distrust(thumbprint(client))
    with pytest.raises(CertificateError, match="BadCertificateUntrusted"):
        pki.validate(client, NOW)
    with pytest.raises(CertificateError, match="no certificate in trusted/certs"):
        pki.distrust("ffff")


def test_ca_issued_certificates_need_a_trusted_ca_and_its_revocation_list(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    pki.create_folders()
    ca, other = Ca(), Ca("Foreign CA")
    good, revoked = ca.issue("operator-1"), ca.issue("operator-2")
    with pytest.raises(CertificateError, match="BadCertificateUntrusted"):
        pki.validate(good, NOW)  # CA unknown
    (tmp_path / "trusted/certs/ca.der").write_bytes(der(ca.cert))
    with pytest.raises(CertificateError, match="BadCertificateRevocationUnknown"):
        pki.validate(good, NOW)  # no CRL of the CA yet
    (tmp_path / "trusted/crl/ca.crl").write_bytes(ca.crl(revoked))
    assert pki.validate(good, NOW).chain == (good, ca.cert)
    with pytest.raises(CertificateError, match="BadCertificateRevoked"):
        pki.validate(revoked, NOW)
    with pytest.raises(CertificateError, match="BadCertificateUntrusted"):
        pki.validate(other.issue("intruder"), NOW)
    # A CA in issuers/ only issues: its certificates are not trusted by that alone.
    (tmp_path / "trusted/certs/ca.der").rename(tmp_path / "issuers/certs/ca.der")
    with pytest.raises(CertificateError, match="BadCertificateUntrusted"):
        pki.validate(good, NOW)
    # ... unless the leaf itself is trusted.
    (tmp_path / "trusted/certs/good.der").write_bytes(der(good))
    assert pki.validate(good, NOW).chain == (good, ca.cert)


def test_expired_not_yet_valid_and_unusable_certificates(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    pki.create_folders()
    ca = Ca()
    (tmp_path / "trusted/certs/ca.der").write_bytes(der(ca.cert))
    (tmp_path / "trusted/crl/ca.crl").write_bytes(ca.crl())
    expired = ca.issue("old", days=30, start=NOW - dt.timedelta(days=60))
    future = ca.issue("future", start=NOW + dt.timedelta(days=2))
    no_signing = ca.issue("encrypt-only", signing=False)
    with pytest.raises(
        CertificateError, match=r"BadCertificateTimeInvalid: .*valid from 2026-09-27 to 2026-10-27"
    ):
        pki.validate(expired, NOW)
    with pytest.raises(CertificateError, match="BadCertificateTimeInvalid"):
        pki.validate(future, NOW)
    with pytest.raises(CertificateError, match="BadCertificateUseNotAllowed"):
        pki.validate(no_signing, NOW)
    assert pki.validate(ca.issue("fine"), NOW)


def test_a_forged_certificate_with_a_trusted_name_is_refused(tmp_path: Path) -> None:
    """Same subject and issuer name as the trusted CA's, signed by another key."""
    pki = Pki(tmp_path)
    pki.create_folders()
    ca, forger = Ca("Utility CA"), Ca("Utility CA")
    (tmp_path / "trusted/certs/ca.der").write_bytes(der(ca.cert))
    (tmp_path / "trusted/crl/ca.crl").write_bytes(ca.crl())
    with pytest.raises(CertificateError, match="BadCertificateUntrusted"):
        pki.validate(forger.issue("operator"), NOW)
    (tmp_path / "rejected/certs/junk.der").write_bytes(b"not a certificate")
    assert pki.certificates("rejected/certs") == {}


def test_a_trusted_application_certificate_cannot_issue_others(tmp_path: Path) -> None:
    """Only a CA (CA:true, keyCertSign) vouches for other certificates, even with a CRL of its own."""
    pki = Pki(tmp_path)
    pki.create_folders()
    app_key = key()
    app = (
        x509.CertificateBuilder().subject_name(name("trusted app")).issuer_name(name("trusted app"))
        .public_key(app_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(app_key, hashes.SHA256())
    )  # fmt: skip
    (tmp_path / "trusted/certs/app.der").write_bytes(der(app))
    minted = (
        x509.CertificateBuilder().subject_name(name("minted")).issuer_name(name("trusted app"))
        .public_key(key().public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=30))
        .sign(app_key, hashes.SHA256())
    )  # fmt: skip
    crl = (
        x509.CertificateRevocationListBuilder().issuer_name(name("trusted app"))
        .last_update(NOW - dt.timedelta(days=1)).next_update(NOW + dt.timedelta(days=30))
        .sign(app_key, hashes.SHA256())
    )  # fmt: skip
    (tmp_path / "trusted/crl/app.crl").write_bytes(crl.public_bytes(serialization.Encoding.DER))
    with pytest.raises(CertificateError, match="BadCertificateUntrusted"):
        pki.validate(minted, NOW)


def test_an_out_of_date_revocation_list_is_as_good_as_none(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    pki.create_folders()
    ca = Ca()
    client = ca.issue("operator-1")
    (tmp_path / "trusted/certs/ca.der").write_bytes(der(ca.cert))
    (tmp_path / "trusted/crl/ca.crl").write_bytes(ca.crl())  # next update: NOW + 30 days
    assert pki.validate(client, NOW).chain == (client, ca.cert)
    with pytest.raises(CertificateError, match=r"BadCertificateRevocationUnknown.*out of date"):
        pki.validate(client, NOW + dt.timedelta(days=31))


def test_the_rejected_folder_keeps_at_most_the_newest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anybody can present a certificate: rejected/ must not grow without bound."""
    monkeypatch.setattr("gateway.security.pki.MAX_REJECTED", 3)
    pki = Pki(tmp_path)
    pki.create_folders()
    certs = [Ca(f"stranger {n}").issue(f"client {n}") for n in range(5)]
    kept = []
    for n, cert in enumerate(certs):
        path = pki.reject(cert)
        stamp = NOW.timestamp() + n  # distinct modification times, oldest first
        os.utime(path, (stamp, stamp))
        kept.append(path)
    left = sorted(p.name for p in (tmp_path / "rejected/certs").iterdir())
    assert left == sorted(p.name for p in kept[2:])
