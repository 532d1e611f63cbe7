"""OpenVPN remote access (gateway/provision/openvpn.py): what OpenVPN checks in the certificates, the
tls-crypt key format, the concentrator's server.conf and a gateway's self-contained
profile, tunnel address allocation, revocation, and the ``vpn`` command line. The real
OpenVPN is run against these files in tests/integration/test_openvpn.py."""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import re
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.errors import GatewayError
from gateway.provision import openvpn as vpn
from gateway.provision.openvpn import (
    AddressError,
    VpnError,
    VpnFolder,
    inline_block,
    parse_remote,
    parse_static_key,
)
from tests.support.netns import openvpn_binary

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def folder(tmp_path: Path) -> VpnFolder:
    """An initialised folder (remote vpn.example.net:1194, subnet 10.88.0.0/24)."""
    f = VpnFolder(tmp_path / "openvpn")
    f.init("vpn.example.net", now=NOW)
    return f


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def cn(c: x509.Certificate) -> str:
    return str(c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def directives(conf: str) -> dict[str, list[str]]:
    """Option name -> its arguments, comments and inline blocks left out."""
    found: dict[str, list[str]] = {}
    conf = re.sub(r"^<([a-z-]+)>\n.*?^</\1>\n", "", conf, flags=re.S | re.M)
    for line in conf.splitlines():
        words = line.split("#", 1)[0].split()
        if words:
            assert words[0] not in found, f"{words[0]} given twice"
            found[words[0]] = words[1:]
    return found


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- certificates ------------------------------------------------------------------------------


def test_ca_is_a_ca_for_end_entities_only(folder: VpnFolder) -> None:
    ca = cert(folder.ca_cert)
    assert ca.subject == ca.issuer
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical
    assert basic.value.ca
    assert basic.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    assert usage.value.crl_sign
    assert not usage.value.digital_signature
    assert not usage.value.key_encipherment
    assert isinstance(ca.signature_hash_algorithm, hashes.SHA256)
    public = ca.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.key_size >= 2048
    ca.verify_directly_issued_by(ca)
    assert (folder.server_dir / "ca.crt").read_bytes() == folder.ca_cert.read_bytes()


def test_server_certificate_passes_remote_cert_tls_server(folder: VpnFolder) -> None:
    ca, server = cert(folder.ca_cert), cert(folder.server_cert)
    server.verify_directly_issued_by(ca)
    assert cn(server) == "smx-concentrator"
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    usage = server.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature
    assert usage.key_encipherment
    assert not usage.key_cert_sign
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(server.signature_hash_algorithm, hashes.SHA256)
    key = serialization.load_pem_private_key(folder.server_key.read_bytes(), None)
    assert key.public_key() == server.public_key()


def test_client_certificate_passes_remote_cert_tls_client(folder: VpnFolder) -> None:
    folder.add("meter-box-7", now=NOW)
    ca, client = cert(folder.ca_cert), cert(folder.issued("meter-box-7"))
    client.verify_directly_issued_by(ca)
    assert cn(client) == "meter-box-7"
    eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    usage = client.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature
    assert usage.key_agreement or usage.key_encipherment
    assert not client.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    aki = client.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert client.not_valid_before_utc < NOW < client.not_valid_after_utc <= ca.not_valid_after_utc


def test_private_keys_are_the_owners_only(folder: VpnFolder) -> None:
    profile, _address = folder.add("gw1", now=NOW)
    for key in (folder.ca_key, folder.server_key, folder.tls_crypt, profile):
        assert mode(key) == 0o600, key
    for private in (folder.ca_dir, folder.server_key.parent, folder.clients):
        assert mode(private) == 0o700, private
    # What the concentrator reads after dropping privileges stays readable.
    assert mode(folder.crl) == 0o644
    assert mode(folder.ccd / "gw1") == 0o644


# -- tls-crypt key -----------------------------------------------------------------------------


def test_tls_crypt_key_has_openvpns_static_key_format(folder: VpnFolder) -> None:
    text = folder.tls_crypt.read_text(encoding="ascii")
    lines = text.splitlines()
    begin, end = lines.index(vpn.STATIC_KEY_BEGIN), lines.index(vpn.STATIC_KEY_END)
    body = lines[begin + 1 : end]
    assert len(body) == 16
    assert all(re.fullmatch(r"[0-9a-f]{32}", line) for line in body)
    assert all(line.startswith("#") for line in lines[:begin])
    key = parse_static_key(text)
    assert len(key) == 256
    assert key.hex() == "".join(body)
    assert parse_static_key(vpn.static_key()) != key
    with pytest.raises(ValueError, match="256 bytes"):
        parse_static_key(text.replace(body[3] + "\n", ""))
    with pytest.raises(ValueError, match="not an OpenVPN static key"):
        parse_static_key("-----BEGIN CERTIFICATE-----")


@pytest.mark.skipif(openvpn_binary() is None, reason="no openvpn binary")
def test_openvpn_reads_the_static_key(folder: VpnFolder) -> None:
    """OpenVPN's crypto self-test loads the key file in its own parser (V1 static key)."""
    binary = openvpn_binary()
    assert binary is not None
    test = subprocess.run(
        [binary, "--test-crypto", "--secret", str(folder.tls_crypt), "--cipher", "AES-256-CBC",
         "--auth", "SHA256", "--verb", "3"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert test.returncode == 0, test.stdout + test.stderr
    assert "crypto self-test mode SUCCEEDED" in test.stdout


# -- server.conf and the profile ---------------------------------------------------------------


def test_server_conf_is_the_hardened_concentrator(tmp_path: Path) -> None:
    folder = VpnFolder(tmp_path / "vpn")
    folder.init("192.0.2.1", 1195, "10.99.4.0/23", "concentrator-1", now=NOW)
    text = folder.server_conf.read_text(encoding="utf-8")
    conf = directives(text)
    assert conf["dev"] == ["tun"]
    assert conf["topology"] == ["subnet"]
    assert conf["server"] == ["10.99.4.0", "255.255.254.0", "nopool"]
    assert conf["proto"] == ["udp"]
    assert conf["port"] == ["1195"]
    assert conf["tls-version-min"] == ["1.2"]
    assert conf["data-ciphers"] == ["AES-256-GCM"]
    assert "auth" not in conf  # AES-256-GCM and tls-crypt authenticate by themselves
    assert conf["dh"] == ["none"]
    assert conf["remote-cert-tls"] == ["client"]
    assert conf["client-config-dir"] == ["ccd"]
    assert conf["ccd-exclusive"] == []
    assert conf["keepalive"] == ["10", "60"]
    assert "persist-key" in conf
    assert "persist-tun" in conf
    assert conf["status"][0] == "openvpn-status.log"
    for absent in ("client-to-client", "duplicate-cn", "comp-lzo", "compress", "cipher"):
        assert absent not in conf
    # Every file is named relative to the folder, and is there: the folder moves whole.
    for option in ("ca", "cert", "key", "crl-verify", "tls-crypt", "client-config-dir"):
        (path,) = conf[option]
        assert not path.startswith("/"), option
        assert (folder.server_dir / path).exists(), option
    assert conf["key"] == ["private/server.key"]
    assert conf["tls-crypt"] == ["private/tls-crypt.key"]
    assert "# No client-to-client" in text
    assert "openvpn --cd" in text


def test_profile_is_self_contained_and_matches_the_pki(folder: VpnFolder) -> None:
    path, address = folder.add("gw1", now=NOW)
    assert path == folder.clients / "gw1.ovpn"
    assert address == "10.88.0.2"
    profile = path.read_text(encoding="utf-8")
    conf = directives(profile)
    assert conf["client"] == []
    assert conf["dev"] == ["tun"]
    assert conf["proto"] == ["udp"]
    assert conf["remote"] == ["vpn.example.net", "1194"]
    assert conf["nobind"] == []
    assert conf["remote-cert-tls"] == ["server"]
    assert conf["verify-x509-name"] == [cn(cert(folder.server_cert)), "name"]
    assert conf["tls-version-min"] == ["1.2"]
    assert conf["data-ciphers"] == ["AES-256-GCM"]
    for option in ("ca", "cert", "key", "tls-crypt", "tls-auth", "secret"):
        assert option not in conf, f"{option} names a file: the profile must carry it inline"
    ca = x509.load_pem_x509_certificate(inline_block(profile, "ca").encode())
    assert ca == cert(folder.ca_cert)
    client = x509.load_pem_x509_certificate(inline_block(profile, "cert").encode())
    assert client == cert(folder.issued("gw1"))
    assert cn(client) == "gw1"
    client.verify_directly_issued_by(ca)
    key = serialization.load_pem_private_key(inline_block(profile, "key").encode(), None)
    assert key.public_key() == client.public_key()
    assert parse_static_key(inline_block(profile, "tls-crypt")) == parse_static_key(
        folder.tls_crypt.read_text(encoding="ascii")
    )
    assert "10.88.0.2" in profile.split("\nclient\n")[0]  # the header tells the tunnel address
    assert (folder.ccd / "gw1").read_text().splitlines()[-1] == "ifconfig-push 10.88.0.2 255.255.255.0"


# -- addresses ---------------------------------------------------------------------------------


def test_addresses_next_free_or_given(folder: VpnFolder) -> None:
    assert folder.add("gw1")[1] == "10.88.0.2"  # .1 is the concentrator's
    assert folder.add("gw2", "10.88.0.3")[1] == "10.88.0.3"
    assert folder.add("gw3", "10.88.0.20")[1] == "10.88.0.20"
    assert folder.add("gw4")[1] == "10.88.0.4"
    assert folder.addresses() == {
        ipaddress.IPv4Address(a): n
        for a, n in (("10.88.0.2", "gw1"), ("10.88.0.3", "gw2"), ("10.88.0.20", "gw3"), ("10.88.0.4", "gw4"))
    }


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("10.88.0.2", "10.88.0.2 is already the tunnel address of gateway 'gw1'"),
        ("10.89.0.5", "10.89.0.5 is outside the VPN subnet 10.88.0.0/24"),
        ("10.88.0.1", "10.88.0.1 is the concentrator's own tunnel address"),
        ("10.88.0.255", "10.88.0.255 is the network or broadcast address of 10.88.0.0/24"),
        ("10.88.0.0", "10.88.0.0 is the network or broadcast address"),
        ("gw1.local", "expected an IPv4 address"),
    ],
)
def test_address_refused(folder: VpnFolder, address: str, message: str) -> None:
    folder.add("gw1")
    with pytest.raises(AddressError, match=re.escape(message)):
        folder.add("gw2", address)
    assert not folder.profile("gw2").exists()
    assert not (folder.ccd / "gw2").exists()
    assert issubclass(AddressError, GatewayError)


def test_duplicate_gateway_and_full_subnet(tmp_path: Path) -> None:
    folder = VpnFolder(tmp_path / "vpn")
    folder.init("vpn.example.net", subnet="10.88.0.0/29", now=NOW)
    names = [f"gw{n}" for n in range(5)]
    assert [folder.add(n)[1] for n in names] == [f"10.88.0.{n}" for n in range(2, 7)]
    with pytest.raises(VpnError, match=r"gateway 'gw0' exists \(tunnel address 10.88.0.2\)"):
        folder.add("gw0")
    with pytest.raises(AddressError, match=r"no free tunnel address left in 10.88.0.0/29"):
        folder.add("gw5")
    with pytest.raises(VpnError, match="gateway name 'a b'"):
        folder.add("a b")
    with pytest.raises(VpnError, match="concentrator's name"):
        folder.add("smx-concentrator")


@pytest.mark.parametrize(
    ("subnet", "message"),
    [("10.88.0.1/24", "has host bits set"), ("10.88.0.0/30", "too small"), ("fd00::/64", "IPv4 subnet")],
)
def test_subnet_refused(tmp_path: Path, subnet: str, message: str) -> None:
    with pytest.raises(AddressError, match=message):
        VpnFolder(tmp_path).init("vpn.example.net", subnet=subnet)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("vpn.example.net", ("vpn.example.net", 1194)),
        ("192.0.2.1:443", ("192.0.2.1", 443)),
        ("[2001:db8::1]:1195", ("2001:db8::1", 1195)),
        ("2001:db8::1", ("2001:db8::1", 1194)),
    ],
)
def test_remote(text: str, expected: tuple[str, int]) -> None:
    assert parse_remote(text) == expected


@pytest.mark.parametrize("text", ["host:0", "host:70000", "host:x", ":1194", "[::1", "a b"])
def test_remote_refused(text: str) -> None:
    with pytest.raises(VpnError):
        parse_remote(text)


# -- revocation and a second init --------------------------------------------------------------


def test_revoke_lists_the_serial_and_removes_ccd(folder: VpnFolder) -> None:
    folder.add("gw1", now=NOW)
    folder.add("gw2", now=NOW)
    serial = cert(folder.issued("gw1")).serial_number
    gw2 = cert(folder.issued("gw2")).serial_number
    ca = cert(folder.ca_cert)
    ca_key = ca.public_key()
    assert isinstance(ca_key, rsa.RSAPublicKey)
    first = x509.load_pem_x509_crl(folder.crl.read_bytes())
    assert len(first) == 0
    assert first.is_signature_valid(ca_key)

    later = NOW + dt.timedelta(days=3)
    assert folder.revoke("gw1", now=later) == serial
    crl = x509.load_pem_x509_crl(folder.crl.read_bytes())
    assert crl.issuer == ca.subject
    assert crl.is_signature_valid(ca_key)
    entry = crl.get_revoked_certificate_by_serial_number(serial)
    assert entry is not None
    assert entry.revocation_date_utc == later
    assert crl.get_revoked_certificate_by_serial_number(gw2) is None
    assert crl.next_update_utc is not None
    assert crl.next_update_utc - later >= dt.timedelta(days=365)
    assert crl.last_update_utc <= later
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number == first.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
    assert not (folder.ccd / "gw1").exists()
    assert (folder.ccd / "gw2").exists()
    assert not folder.profile("gw1").exists()
    assert not folder.issued("gw1").exists()
    with pytest.raises(VpnError, match="no gateway 'gw1' in force"):
        folder.revoke("gw1")

    # The name and the address are free again; the old certificate stays revoked.
    _path, address = folder.add("gw1", now=later)
    assert address == "10.88.0.2"
    assert cert(folder.issued("gw1")).serial_number != serial
    assert folder.revoke("gw2", now=later) == gw2
    crl = x509.load_pem_x509_crl(folder.crl.read_bytes())
    assert {r.serial_number for r in crl} == {serial, gw2}
    assert cert(folder.ca_dir / "revoked" / f"gw2-{gw2:x}.crt").serial_number == gw2
    states = [(g.name, str(g.address), g.revoked) for g in folder.gateways()]
    assert all(g.revoked_at == later for g in folder.gateways() if g.revoked)
    assert states == [("gw1", "10.88.0.2", False), ("gw1", "None", True), ("gw2", "None", True)]


def test_init_again_keeps_the_ca_and_keys(folder: VpnFolder) -> None:
    folder.add("gw1", now=NOW)
    before = {p: p.read_bytes() for p in (folder.ca_cert, folder.ca_key, folder.server_key, folder.tls_crypt)}
    done = folder.init("vpn2.example.net", 1200)
    assert any(line.startswith(f"kept: {folder.ca_cert}") for line in done)
    assert "note: the profiles of gw1 still name vpn.example.net 1194; edit their remote line" in done[0]
    assert {p: p.read_bytes() for p in before} == before
    assert directives(folder.server_conf.read_text())["port"] == ["1200"]
    assert directives(folder.add("gw2")[0].read_text())["remote"] == ["vpn2.example.net", "1200"]
    assert (folder.ccd / "gw1").exists()
    with pytest.raises(VpnError, match="server name 'smx-concentrator'"):
        folder.init("vpn.example.net", server_name="other")
    with pytest.raises(AddressError, match=r"gateways hold addresses in it \(gw1, gw2\)"):
        folder.init("vpn.example.net", subnet="10.77.0.0/24")
    assert {p: p.read_bytes() for p in before} == before


def test_half_a_ca_is_refused(folder: VpnFolder) -> None:
    folder.ca_key.unlink()
    with pytest.raises(VpnError, match="only half a CA"):
        folder.init("vpn.example.net")
    assert folder.ca_cert.exists()


# -- command line ------------------------------------------------------------------------------


def vpn_main(*argv: str) -> int:
    """What ``smx-gateway vpn ...`` will do once cli.py dispatches to gateway.provision.openvpn."""
    parser = argparse.ArgumentParser(prog="smx-gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    vpn.add_command(sub)
    return vpn.run(parser.parse_args(["vpn", *argv]))


SUBNET = "10.60.0.0/24"


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = str(tmp_path / "ovpn")
    assert vpn_main("--dir", where, "add", "gw1") == 2
    assert "is not set up: run `smx-gateway vpn init --remote HOST` first" in capsys.readouterr().err

    assert vpn_main("--dir", where, "init", "--remote", "vpn.example.net:1195", "--subnet", SUBNET) == 0
    out = capsys.readouterr().out
    assert f"created: {where}/ca/ca.crt" in out
    assert "udp port 1195, subnet 10.60.0.0/24, server 10.60.0.1" in out
    assert vpn_main("--dir", where, "init", "--remote", "vpn.example.net:1195", "--subnet", SUBNET) == 0
    assert f"kept: {where}/ca/ca.crt" in capsys.readouterr().out

    assert vpn_main("--dir", where, "add", "gw1") == 0
    out = capsys.readouterr().out
    assert f"profile: {where}/clients/gw1.ovpn" in out
    assert re.search(r"^tunnel address: 10\.60\.0\.2 \(set \[opcua\] host and \[web\] host", out, re.M)
    assert f"concentrator: copy {where}/server/ccd/gw1 into its ccd/ folder" in out
    assert vpn_main("--dir", where, "add", "gw2", "--address", "10.60.0.2") == 2
    assert "error: 10.60.0.2 is already the tunnel address of gateway 'gw1'" in capsys.readouterr().err
    assert vpn_main("--dir", where, "add", "gw2", "--address", "10.61.0.9") == 2
    assert "outside the VPN subnet 10.60.0.0/24" in capsys.readouterr().err
    assert vpn_main("--dir", where, "add", "gw2", "--address", "10.60.0.9") == 0
    capsys.readouterr()

    assert vpn_main("--dir", where, "revoke", "gw2") == 0
    assert capsys.readouterr().out.startswith("revoked: gw2 (serial ")
    assert vpn_main("--dir", where, "revoke", "gw2") == 2
    assert vpn_main("--dir", where, "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(
        "concentrator smx-concentrator at vpn.example.net:1195/udp, subnet 10.60.0.0/24"
    )
    assert re.match(r"gw1\s+10\.60\.0\.2\s+serial [0-9a-f]+  valid until \d{4}-", lines[1])
    assert re.match(r"gw2\s+revoked \d{4}-\d\d-\d\d\s+serial", lines[2])
    assert vpn_main("--dir", where, "init", "--remote", "host:99999") == 2
    assert "expected a UDP port" in capsys.readouterr().err
