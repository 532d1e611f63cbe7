"""OpenVPN remote access: the PKI, the concentrator's server and each gateway's client profile.

The gateway sits on a cellular or NAT'ed link, so it is the OpenVPN *client* of the
operator's concentrator (DESIGN §8). ``smx-gateway vpn`` makes everything both ends need,
in one folder (``openvpn/`` by default)::

    vpn.json                 remote, port, subnet and server name given to ``vpn init``
    ca/ca.crt                the CA (RSA 2048, SHA-256, CA:true pathlen 0) - folder 0700
    ca/ca.key                its private key (0600): keep it here, never on the concentrator
    ca/issued/<name>.crt     client certificates in force, one per gateway (CN = name)
    ca/revoked/<name>-<serial>.crt  revoked ones (the CRL lists their serials)
    server/                  the concentrator: copy this folder whole
        server.conf          paths relative to the folder: openvpn --cd <folder> --config server.conf
        ca.crt, server.crt   the CA and the server certificate (EKU serverAuth)
        private/server.key   (0600, folder 0700)
        private/tls-crypt.key  the pre-shared tls-crypt key (0600)
        crl.pem              the CA's revocation list (crl-verify)
        ccd/<name>           one per gateway: its fixed tunnel address (ifconfig-push)
    clients/<name>.ovpn      a gateway's self-contained profile with its key (0600, folder 0700)

OpenVPN reference manual (2.6) options relied on: ``--server``, ``--topology subnet``,
``--client-config-dir`` with ``--ccd-exclusive`` and ``--ifconfig-push``, ``--tls-crypt``,
``--dh none``, ``--tls-version-min``, ``--data-ciphers``, ``--remote-cert-tls``,
``--verify-x509-name``, ``--crl-verify``, ``--keepalive``, ``--persist-key``/``--persist-tun``,
``--status``, ``--cd``, and inline files (``<ca>``, ``<cert>``, ``<key>``, ``<tls-crypt>``).
Only ``cryptography`` and the standard library are used; the files are plain text an
operator can read and check with ``openssl``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import ipaddress
import json
import os
import re
import secrets
import sys
import textwrap
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.errors import GatewayError
from gateway.files import replace_file

DEFAULT_DIR = Path("openvpn")
DEFAULT_SUBNET = "10.88.0.0/24"
DEFAULT_PORT = 1194
DEFAULT_SERVER_NAME = "smx-concentrator"
#: RSA: the key usages the OpenVPN manual names for ``--remote-cert-tls`` (keyEncipherment is
#: an RSA usage; RFC 5480 forbids it for EC keys) and what any OpenVPN build accepts.
KEY_BITS = 2048
CA_LIFETIME = dt.timedelta(days=20 * 365)
CERT_LIFETIME = dt.timedelta(days=10 * 365)
#: OpenVPN refuses every client once the CRL's nextUpdate has passed: give it years, and
#: write it again at every ``init`` and ``revoke``.
CRL_LIFETIME = dt.timedelta(days=5 * 365)
#: Peers' clocks differ a little: certificates and CRLs start this much in the past.
BACKDATE = dt.timedelta(minutes=5)
STATIC_KEY_BEGIN = "-----BEGIN OpenVPN Static key V1-----"
STATIC_KEY_END = "-----END OpenVPN Static key V1-----"
#: A gateway's name is its certificate's CN and its ccd file's name. OpenVPN replaces
#: other characters in a CN by "_" before it looks for the ccd file, so allow none.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class VpnError(GatewayError):
    """A ``vpn`` command cannot be carried out; the message says why and what to do."""


class AddressError(VpnError):
    """A tunnel address is outside the subnet, reserved, or taken by another gateway."""


# -- keys and certificates ---------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, sign: bool = False, encipher: bool = False, ca: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign, content_commitment=False, key_encipherment=encipher,
        data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def create_ca(common_name: str, now: dt.datetime | None = None) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A self-signed CA that may sign end-entity certificates only (pathlen 0) and CRLs."""
    now = now or dt.datetime.now(dt.UTC)
    key = new_key()
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue(
    ca_cert: x509.Certificate,
    ca_key: rsa.RSAPrivateKey,
    common_name: str,
    *,
    server: bool,
    now: dt.datetime | None = None,
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """An end-entity certificate for the concentrator (``server``) or a gateway.

    ``--remote-cert-tls server`` on the gateway wants EKU serverAuth; ``--remote-cert-tls
    client`` on the concentrator wants clientAuth; both want a keyUsage (digitalSignature
    and keyEncipherment here, an RSA key).
    """
    now = now or dt.datetime.now(dt.UTC)
    key = new_key()
    public = key.public_key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + CERT_LIFETIME, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign=True, encipher=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def build_crl(
    ca_cert: x509.Certificate,
    ca_key: rsa.RSAPrivateKey,
    revoked: list[tuple[int, dt.datetime]],
    *,
    number: int,
    now: dt.datetime | None = None,
) -> x509.CertificateRevocationList:
    """The CA's revocation list of ``revoked`` (serial, revocation time), valid for CRL_LIFETIME."""
    now = now or dt.datetime.now(dt.UTC)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - BACKDATE)
        .next_update(now + CRL_LIFETIME)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
    )
    for serial, when in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    return builder.sign(ca_key, hashes.SHA256())


def static_key() -> str:
    """A new OpenVPN static key (``--tls-crypt``): 2048 random bits, 16 lines of 32 hex digits."""
    hexed = secrets.token_bytes(256).hex()
    lines = [hexed[i : i + 32] for i in range(0, len(hexed), 32)]
    return "\n".join(
        ["#", "# 2048 bit OpenVPN static key", "#", STATIC_KEY_BEGIN, *lines, STATIC_KEY_END, ""]
    )


def parse_static_key(text: str) -> bytes:
    """The 256 key bytes of an OpenVPN static key file; ValueError if it is not one."""
    try:
        body = text[text.index(STATIC_KEY_BEGIN) + len(STATIC_KEY_BEGIN) : text.index(STATIC_KEY_END)]
    except ValueError:
        raise ValueError("not an OpenVPN static key (no BEGIN/END OpenVPN Static key V1 lines)") from None
    data = bytes.fromhex("".join(body.split()))
    if len(data) != 256:
        raise ValueError(f"an OpenVPN static key has 256 bytes, this one {len(data)}")
    return data


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise VpnError(f"{path}: expected an RSA private key")
    return key


# -- configuration files -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    """What ``vpn init`` was given; kept in ``vpn.json``."""

    remote: str
    port: int = DEFAULT_PORT
    subnet: str = DEFAULT_SUBNET
    server_name: str = DEFAULT_SERVER_NAME

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def server_address(self) -> ipaddress.IPv4Address:
        """The concentrator's own tunnel address: the subnet's first (what ``--server`` takes)."""
        return self.network.network_address + 1


def server_conf(settings: Settings) -> str:
    """The concentrator's ``server.conf``; every path in it is relative to its folder."""
    net = settings.network
    return textwrap.dedent(f"""\
        # OpenVPN concentrator of the SMX gateways, written by `smx-gateway vpn init`.
        # Every path below is relative to this folder, so copy the folder whole and start
        # OpenVPN in it:  openvpn --cd /etc/openvpn/smx --config server.conf
        # (private/ holds the keys; ccd/ gets a file per gateway from `smx-gateway vpn add`).

        # Routed layer-3 tunnel; every gateway gets an address of one subnet, the server the first.
        dev tun
        topology subnet
        server {net.network_address} {net.netmask} nopool
        # UDP: a cellular link loses packets, and TCP inside TCP stalls on every loss.
        proto udp
        port {settings.port}

        # Only gateways with a file in ccd/ get in, and that file pins the gateway's tunnel
        # address (ifconfig-push), so the operator finds each gateway at a fixed address.
        client-config-dir ccd
        ccd-exclusive
        # No client-to-client, so OpenVPN itself relays nothing between gateways. The kernel
        # still routes tun-to-tun if this box forwards IP (ip_forward=1): then also drop it,
        #   iptables -A FORWARD -i tun+ -o tun+ -j DROP

        # TLS with our own CA only: certificates with EKU clientAuth, none revoked.
        ca ca.crt
        cert server.crt
        key private/server.key
        remote-cert-tls client
        # Re-read when it changes; OpenVPN refuses every client once it is past its nextUpdate.
        crl-verify crl.pem
        tls-version-min 1.2
        # ECDHE only (forward secrecy without a DH parameter file).
        dh none
        # Every control packet is authenticated and encrypted with this pre-shared key: packets
        # without it are dropped before any TLS code sees them (port scans, floods, TLS bugs),
        # and the certificates are not shown to eavesdroppers.
        tls-crypt private/tls-crypt.key

        # Data channel: AES-256-GCM only; both ends are ours, nothing older to negotiate (an AEAD
        # cipher and tls-crypt authenticate by themselves: no "auth" digest is used).
        data-ciphers AES-256-GCM

        # Ping every 10 s (keeps cellular NAT mappings open), restart a silent link after
        # 60 s (120 s on this side); pushed to the gateways.
        keepalive 10 60
        # Keep keys and the tun device across restarts after a ping timeout, so the tunnel
        # address never goes away (the gateway's services stay bound to it).
        persist-key
        persist-tun
        # Tell the gateways when the server stops, so they reconnect at once after a restart.
        explicit-exit-notify 1
        # Connected gateways, their real and tunnel addresses, written every 30 s.
        status openvpn-status.log 30
        verb 3
        # To drop privileges add "user nobody" and "group nogroup": the keys are read before
        # (persist-key keeps them); crl.pem and ccd/ are world-readable.
        """)


def client_profile(
    settings: Settings,
    *,
    name: str,
    address: ipaddress.IPv4Address,
    ca_pem: str,
    cert_pem: str,
    key_pem: str,
    tls_crypt: str,
) -> str:
    """A gateway's self-contained client profile (``<name>.ovpn``) with its inline key."""
    head = textwrap.dedent(f"""\
        # OpenVPN client profile of SMX gateway {name!r}, written by `smx-gateway vpn add`.
        # It holds the gateway's private key: keep it mode 0600 and on that gateway only.
        #   openvpn --config {name}.ovpn   (or as /etc/openvpn/client/{name}.conf)
        # Tunnel address {address} (fixed by the concentrator): put it in [opcua] host and
        # [web] host so the gateway serves over the tunnel only.
        client
        dev tun
        proto udp
        remote {settings.remote} {settings.port}
        # Keep trying while the cellular link or the name server is down.
        resolv-retry infinite
        nobind
        persist-key
        persist-tun
        # The server must hold a serverAuth certificate of our CA with this very name.
        remote-cert-tls server
        verify-x509-name {settings.server_name} name
        tls-version-min 1.2
        data-ciphers AES-256-GCM
        verb 3
        """)
    blocks = [("ca", ca_pem), ("cert", cert_pem), ("key", key_pem), ("tls-crypt", tls_crypt)]
    return head + "".join(f"<{tag}>\n{body.strip()}\n</{tag}>\n" for tag, body in blocks)


def inline_block(profile: str, tag: str) -> str:
    """The text between ``<tag>`` and ``</tag>`` of a profile (for checks and tests)."""
    match = re.search(rf"^<{re.escape(tag)}>\n(.*?)^</{re.escape(tag)}>$", profile, re.S | re.M)
    if match is None:
        raise ValueError(f"no <{tag}> block")
    return match[1]


def parse_remote(text: str) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT`` or ``[IPv6]:PORT`` (a bare IPv6 address has no port)."""
    host = text
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise VpnError(f"expected HOST[:PORT] or [IPv6]:PORT, got {text!r}")
        port_text = rest[1:] if rest else str(DEFAULT_PORT)
    elif text.count(":") == 1:
        host, _sep, port_text = text.partition(":")
    else:
        port_text = str(DEFAULT_PORT)
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise VpnError(f"expected a UDP port 1..65535 in {text!r}")
    if not host or any(ch.isspace() or ch in "\"'#;<>" for ch in host):
        raise VpnError(f"expected a host name or address in {text!r}")
    return host, int(port_text)


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(text)
    except ValueError as err:
        raise AddressError(f"expected an IPv4 subnet like 10.88.0.0/24, got {text!r} ({err})") from None
    if net.prefixlen > 29:
        raise AddressError(f"subnet {net} is too small: the server and the gateways need /29 or larger")
    return net


# -- the folder --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GatewayEntry:
    """A gateway known to the PKI (``vpn list``)."""

    name: str
    serial: int
    not_after: dt.datetime
    address: ipaddress.IPv4Address | None  # None: revoked, or its ccd file is gone
    revoked: bool = False
    revoked_at: dt.datetime | None = None  # as the CRL says


class VpnFolder:
    """The OpenVPN folder: the CA, the concentrator's files and the gateways' profiles."""

    def __init__(self, root: Path | str = DEFAULT_DIR) -> None:
        self.root = Path(root)
        self.settings_file = self.root / "vpn.json"
        self.ca_dir = self.root / "ca"
        self.ca_cert = self.ca_dir / "ca.crt"
        self.ca_key = self.ca_dir / "ca.key"
        self.server_dir = self.root / "server"
        self.server_conf = self.server_dir / "server.conf"
        self.server_cert = self.server_dir / "server.crt"
        self.server_key = self.server_dir / "private" / "server.key"
        self.tls_crypt = self.server_dir / "private" / "tls-crypt.key"
        self.crl = self.server_dir / "crl.pem"
        self.ccd = self.server_dir / "ccd"
        self.clients = self.root / "clients"

    def profile(self, name: str) -> Path:
        return self.clients / f"{name}.ovpn"

    def issued(self, name: str) -> Path:
        return self.ca_dir / "issued" / f"{name}.crt"

    # -- init ------------------------------------------------------------------------------

    def init(
        self,
        remote: str,
        port: int = DEFAULT_PORT,
        subnet: str = DEFAULT_SUBNET,
        server_name: str = DEFAULT_SERVER_NAME,
        now: dt.datetime | None = None,
    ) -> list[str]:
        """Create what is missing; an existing CA, server key and tls-crypt key are kept.

        Returns what was done, one line each. The remote (and port) may change on a second
        run - profiles made afterwards use the new one - but not the server name, which every
        profile checks, nor the subnet while gateways hold addresses in it.
        """
        now = now or dt.datetime.now(dt.UTC)
        net = parse_subnet(subnet)
        _check_name(server_name, "server name")
        settings = Settings(remote=remote, port=port, subnet=str(net), server_name=server_name)
        done: list[str] = []
        if self.settings_file.exists():
            old = self.settings()
            if (old.remote, old.port) != (remote, port) and (active := self._active()):
                done.append(
                    f"note: the profiles of {', '.join(active)} still name {old.remote} {old.port}; "
                    "edit their remote line or revoke and add them again"
                )
            if old.server_name != server_name:
                raise VpnError(
                    f"{self.root} is set up for server name {old.server_name!r}, which every gateway "
                    f"profile checks; keep it (--server-name {old.server_name}) or use another --dir"
                )
            holders = self._active()
            if old.subnet != settings.subnet and holders:
                raise AddressError(
                    f"{self.root} is set up for subnet {old.subnet} and gateways hold addresses in it "
                    f"({', '.join(holders)}); keep it (--subnet {old.subnet}) or use another --dir"
                )
        self._private_dir(self.ca_dir)
        self._private_dir(self.server_key.parent)
        self.ccd.mkdir(parents=True, exist_ok=True)
        if self.ca_cert.exists() and self.ca_key.exists():
            done.append(f"kept: {self.ca_cert} (the existing CA)")
        elif self.ca_cert.exists() or self.ca_key.exists():
            raise VpnError(f"{self.ca_dir} holds only half a CA (ca.crt or ca.key missing); restore it")
        else:
            ca_cert, ca_key = create_ca(f"{server_name} CA", now)
            replace_file(self.ca_key, _key_pem(ca_key), mode=0o600)
            replace_file(self.ca_cert, _pem(ca_cert).encode())
            done.append(f"created: {self.ca_cert} (CA; its key {self.ca_key} stays here)")
        ca_cert, ca_key = self._ca()
        replace_file(self.server_dir / "ca.crt", _pem(ca_cert).encode())
        if self.server_cert.exists() and self.server_key.exists() and _issued_by(self.server_cert, ca_cert):
            done.append(f"kept: {self.server_cert}")
        else:
            cert, key = issue(ca_cert, ca_key, server_name, server=True, now=now)
            replace_file(self.server_key, _key_pem(key), mode=0o600)
            replace_file(self.server_cert, _pem(cert).encode())
            done.append(f"created: {self.server_cert} (CN={server_name}, serverAuth)")
        if self.tls_crypt.exists():
            done.append(f"kept: {self.tls_crypt}")
        else:
            replace_file(self.tls_crypt, static_key().encode(), mode=0o600)
            done.append(f"created: {self.tls_crypt} (tls-crypt)")
        self._write_crl(ca_cert, ca_key, self._revoked_serials(), now)
        replace_file(self.settings_file, (json.dumps(asdict(settings), indent=2) + "\n").encode())
        replace_file(self.server_conf, server_conf(settings).encode())
        done.append(
            f"written: {self.server_conf} (udp port {port}, subnet {net}, server {settings.server_address}); "
            f"copy {self.server_dir} to the concentrator"
        )
        return done

    def settings(self) -> Settings:
        try:
            data = json.loads(self.settings_file.read_text(encoding="utf-8"))
            return Settings(**data)
        except FileNotFoundError:
            raise VpnError(
                f"{self.root} is not set up: run `smx-gateway vpn init --remote HOST` first"
            ) from None
        except (ValueError, TypeError) as err:
            raise VpnError(f"{self.settings_file}: unreadable ({err})") from None

    def _private_dir(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path, 0o700)  # also when it existed with a wider mode

    def _ca(self) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
        return x509.load_pem_x509_certificate(self.ca_cert.read_bytes()), _load_key(self.ca_key)

    # -- gateways --------------------------------------------------------------------------

    def addresses(self) -> dict[ipaddress.IPv4Address, str]:
        """Tunnel addresses in use, from the ccd files, with the gateway holding each."""
        used: dict[ipaddress.IPv4Address, str] = {}
        if not self.ccd.is_dir():
            return used
        for path in sorted(self.ccd.iterdir()):
            address = _ccd_address(path)
            if address is not None:
                used[address] = path.name
        return used

    def add(self, name: str, address: str | None = None, now: dt.datetime | None = None) -> tuple[Path, str]:
        """Issue ``name``'s certificate, pin its address in ccd/ and write its profile.

        Returns the profile's path and the tunnel address.
        """
        now = now or dt.datetime.now(dt.UTC)
        settings = self.settings()
        _check_name(name, "gateway name")
        if name == settings.server_name:
            raise VpnError(f"{name!r} is the concentrator's name; choose another gateway name")
        if self.issued(name).exists():
            held = _ccd_address(self.ccd / name)
            raise VpnError(
                f"gateway {name!r} exists (tunnel address {held}); "
                f"`vpn revoke {name}` first to issue a new one"
            )
        chosen = self._address(settings, address)
        ca_cert, ca_key = self._ca()
        cert, key = issue(ca_cert, ca_key, name, server=False, now=now)
        profile = client_profile(
            settings, name=name, address=chosen, ca_pem=_pem(ca_cert), cert_pem=_pem(cert),
            key_pem=_key_pem(key).decode(), tls_crypt=self.tls_crypt.read_text(encoding="ascii"),
        )  # fmt: skip
        self._private_dir(self.clients)
        replace_file(self.profile(name), profile.encode(), mode=0o600)
        replace_file(self.issued(name), _pem(cert).encode())
        net = settings.network
        replace_file(
            self.ccd / name,
            f"# SMX gateway {name}: its fixed tunnel address (smx-gateway vpn add)\n"
            f"ifconfig-push {chosen} {net.netmask}\n".encode(),
        )
        return self.profile(name), str(chosen)

    def _address(self, settings: Settings, wanted: str | None) -> ipaddress.IPv4Address:
        net = settings.network
        used = self.addresses()
        reserved = {net.network_address, net.broadcast_address, settings.server_address}
        if wanted is None:
            for candidate in net.hosts():
                if candidate not in reserved and candidate not in used:
                    return candidate
            raise AddressError(f"no free tunnel address left in {net} ({len(used)} gateways)")
        try:
            address = ipaddress.IPv4Address(wanted)
        except ValueError:
            raise AddressError(
                f"expected an IPv4 address like {net.network_address + 2}, got {wanted!r}"
            ) from None
        if address not in net:
            raise AddressError(f"{address} is outside the VPN subnet {net}")
        if address == settings.server_address:
            raise AddressError(f"{address} is the concentrator's own tunnel address")
        if address in reserved:
            raise AddressError(f"{address} is the network or broadcast address of {net}")
        if address in used:
            raise AddressError(f"{address} is already the tunnel address of gateway {used[address]!r}")
        return address

    def _active(self) -> list[str]:
        return [g.name for g in self.gateways() if not g.revoked]

    def gateways(self) -> list[GatewayEntry]:
        """Gateways in force (with their address) and revoked ones, by name."""
        entries: list[GatewayEntry] = []
        issued = self.ca_dir / "issued"
        for path in sorted(issued.glob("*.crt")) if issued.is_dir() else []:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
            entries.append(
                GatewayEntry(
                    path.stem,
                    cert.serial_number,
                    cert.not_valid_after_utc,
                    _ccd_address(self.ccd / path.stem),
                )
            )
        revoked = dict(self._revoked_serials())
        folder = self.ca_dir / "revoked"
        for path in sorted(folder.glob("*.crt")) if folder.is_dir() else []:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
            name = path.stem.rsplit("-", 1)[0]
            entries.append(
                GatewayEntry(
                    name,
                    cert.serial_number,
                    cert.not_valid_after_utc,
                    None,
                    True,
                    revoked.get(cert.serial_number),
                )
            )
        return sorted(entries, key=lambda e: (e.name, e.revoked))

    def revoke(self, name: str, now: dt.datetime | None = None) -> int:
        """Put ``name``'s certificate on the CRL, remove its ccd file and profile; returns the serial."""
        now = now or dt.datetime.now(dt.UTC)
        self.settings()
        path = self.issued(name)
        if not path.exists():
            raise VpnError(f"no gateway {name!r} in force here (see `smx-gateway vpn list`)")
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        ca_cert, ca_key = self._ca()
        revoked = [*self._revoked_serials(), (cert.serial_number, now)]
        # CRL first: should anything after it fail, the certificate is refused already.
        self._write_crl(ca_cert, ca_key, revoked, now)
        (self.ccd / name).unlink(missing_ok=True)
        target = self.ca_dir / "revoked" / f"{name}-{cert.serial_number:x}.crt"
        target.parent.mkdir(exist_ok=True)
        os.replace(path, target)
        self.profile(name).unlink(missing_ok=True)  # its key is worthless now; do not leave it about
        return cert.serial_number

    def crl_list(self) -> x509.CertificateRevocationList | None:
        if not self.crl.exists():
            return None
        return x509.load_pem_x509_crl(self.crl.read_bytes())

    def _revoked_serials(self) -> list[tuple[int, dt.datetime]]:
        crl = self.crl_list()
        if crl is None:
            return []
        return [(r.serial_number, r.revocation_date_utc) for r in crl]

    def _write_crl(
        self,
        ca_cert: x509.Certificate,
        ca_key: rsa.RSAPrivateKey,
        revoked: list[tuple[int, dt.datetime]],
        now: dt.datetime,
    ) -> None:
        number = 1
        old = self.crl_list()
        if old is not None:
            with contextlib.suppress(x509.ExtensionNotFound):
                number = old.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
        crl = build_crl(ca_cert, ca_key, revoked, number=number, now=now)
        replace_file(self.crl, crl.public_bytes(serialization.Encoding.PEM))


def _check_name(name: str, what: str) -> None:
    if not _NAME_RE.match(name):
        raise VpnError(
            f"{what} {name!r}: expected letters, digits, '_', '.', '-' (at most 63, starting with a letter "
            "or digit); it is the certificate's CN and a file name on the concentrator"
        )


def _ccd_address(path: Path) -> ipaddress.IPv4Address | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "ifconfig-push":
            try:
                return ipaddress.IPv4Address(words[1])
            except ValueError:
                return None
    return None


def _issued_by(path: Path, ca_cert: x509.Certificate) -> bool:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


# -- command line ------------------------------------------------------------------------------


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    vpn = sub.add_parser(
        "vpn", help="OpenVPN remote access: PKI, concentrator configuration, gateway profiles"
    )
    vpn.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="OpenVPN folder (default: openvpn)")
    what = vpn.add_subparsers(dest="action", required=True)
    init = what.add_parser("init", help="create the CA, the concentrator's server.conf and keys")
    init.add_argument(
        "--remote", required=True, metavar="HOST[:PORT]", help="the concentrator as gateways reach it"
    )
    init.add_argument("--subnet", default=DEFAULT_SUBNET, help=f"tunnel subnet (default: {DEFAULT_SUBNET})")
    init.add_argument(
        "--server-name",
        default=DEFAULT_SERVER_NAME,
        help=f"the server certificate's CN (default: {DEFAULT_SERVER_NAME})",
    )
    add = what.add_parser("add", help="issue a gateway's certificate, fixed tunnel address and profile")
    add.add_argument("name", help="the gateway's name (its certificate's CN)")
    add.add_argument("--address", help="its tunnel address (default: the next free one)")
    what.add_parser("list", help="gateways, their tunnel addresses and certificates")
    revoke = what.add_parser("revoke", help="revoke a gateway's certificate and free its address")
    revoke.add_argument("name")


def run(args: argparse.Namespace) -> int:
    """Carry out a ``vpn`` command; 0, or 2 with a message on standard error."""
    folder = VpnFolder(args.dir)
    try:
        if args.action == "init":
            host, port = parse_remote(args.remote)
            for line in folder.init(host, port, args.subnet, args.server_name):
                print(line)
        elif args.action == "add":
            profile, address = folder.add(args.name, args.address)
            print(
                f"profile: {profile} (mode 0600: it holds the gateway's key; install it on {args.name} only)"
            )
            print(f"tunnel address: {address} (set [opcua] host and [web] host of {args.name} to it)")
            print(f"concentrator: copy {folder.ccd / args.name} into its ccd/ folder")
        elif args.action == "list":
            _list(folder)
        else:
            serial = folder.revoke(args.name)
            print(
                f"revoked: {args.name} (serial {serial:x}); copy {folder.crl} and {folder.ccd} to the "
                "concentrator. A connected gateway is dropped at its next TLS renegotiation (within an hour)"
            )
    except VpnError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {err.filename or folder.root}: {err.strerror or err}", file=sys.stderr)
        return 2
    return 0


def _list(folder: VpnFolder) -> None:
    settings = folder.settings()
    crl = folder.crl_list()
    next_update = f"{crl.next_update_utc:%Y-%m-%d}" if crl is not None and crl.next_update_utc else "missing"
    print(
        f"concentrator {settings.server_name} at {settings.remote}:{settings.port}/udp, "
        f"subnet {settings.subnet} "
        f"(server {settings.server_address}), CRL valid until {next_update}"
    )
    for entry in folder.gateways():
        state = (
            f"revoked {entry.revoked_at:%Y-%m-%d}" if entry.revoked_at is not None
            else "revoked" if entry.revoked
            else f"{entry.address}" if entry.address is not None else "no ccd file"
        )  # fmt: skip
        print(f"{entry.name:<24} {state:<20} serial {entry.serial:x}  valid until {entry.not_after:%Y-%m-%d}")
