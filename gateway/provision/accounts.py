"""``smx-gateway certs ...`` and ``smx-gateway users ...``: the administrator's commands.

They work on the files the gateway reads at start (the PKI folders and the users file);
a running gateway reads the trust list again for each new connection.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import socket
import sys
from pathlib import Path

from cryptography import x509

from gateway.security.pki import EXPIRY_WARNING, CertificateError, Pki, application_uri_of, thumbprint
from gateway.security.users import Role, UserDb

DEFAULT_PKI = Path("certs")
DEFAULT_USERS = Path("certs/users")
DEFAULT_URI = "urn:smx:gateway"


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    certs = sub.add_parser("certs", help="the gateway's certificate and the trust list of its clients")
    certs.add_argument("--pki", type=Path, default=DEFAULT_PKI, help="PKI folder (default: certs)")
    what = certs.add_subparsers(dest="action", required=True)
    create = what.add_parser("create", help="create the application instance certificate if it is missing")
    create.add_argument(
        "--uri", default=DEFAULT_URI, help="ApplicationUri (must match [opcua] application_uri)"
    )
    create.add_argument("--organization", default="SMX operator", help="the organization running the gateway")
    create.add_argument("--host", action="append", default=[], help="DNS name of the box (repeatable)")
    create.add_argument("--ip", action="append", default=[], help="address clients use, e.g. the tunnel's")
    what.add_parser("list", help="own, trusted, issuer and rejected certificates")
    for verb, text in (("trust", "trust a rejected certificate"), ("reject", "stop trusting a certificate")):
        p = what.add_parser(verb, help=text)
        p.add_argument("thumbprint", help="SHA-1 thumbprint or a unique prefix (see certs list)")

    users = sub.add_parser("users", help="users and roles for OPC UA and the web")
    users.add_argument("--file", type=Path, default=DEFAULT_USERS, help="users file (default: certs/users)")
    verbs = users.add_subparsers(dest="action", required=True)
    add = verbs.add_parser("add", help="add a user or change one (asks for the password)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=[str(r) for r in Role])
    add.add_argument("--certificate", default="", help="thumbprint of the user's X.509 certificate")
    add.add_argument("--no-password", action="store_true", help="certificate login only")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    remove = verbs.add_parser("remove", help="remove a user")
    remove.add_argument("name")
    verbs.add_parser("list", help="users and their roles")


def run(args: argparse.Namespace) -> int:
    """Carry out a ``certs`` or ``users`` command; returns the exit status."""
    try:
        if args.command == "certs":
            return _certs(args)
        return _users(args)
    except (CertificateError, KeyError, ValueError) as err:
        message = err.args[0] if isinstance(err, KeyError) else str(err)
        print(f"error: {message}", file=sys.stderr)
        return 1


def _certs(args: argparse.Namespace) -> int:
    pki = Pki(args.pki)
    if args.action == "create":
        hosts = args.host or [socket.gethostname()]
        cert, created = pki.ensure_own(
            args.uri,
            common_name="SMX Gateway",
            organization=args.organization,
            hostnames=hosts,
            addresses=args.ip,
        )
        state = "created" if created else "exists"
        print(f"{state}: {pki.own_certificate} ({application_uri_of(cert)}, {_line(cert)})")
        return 0
    if args.action == "list":
        now = dt.datetime.now(dt.UTC)
        if pki.own_certificate.exists():
            own = x509.load_der_x509_certificate(pki.own_certificate.read_bytes())
            print(f"own:      {_line(own)}{_expiry(own, now)}")
        for folder in ("trusted/certs", "issuers/certs", "rejected/certs"):
            for _thumb, (_path, cert) in pki.certificates(folder).items():
                print(f"{folder.split('/')[0] + ':':<9} {_line(cert)}{_expiry(cert, now)}")
        return 0
    moved = pki.trust(args.thumbprint) if args.action == "trust" else pki.distrust(args.thumbprint)
    print(f"moved to {moved}")
    return 0


def _line(cert: x509.Certificate) -> str:
    return (
        f"{thumbprint(cert)}  {cert.subject.rfc4514_string()}  "
        f"valid {cert.not_valid_before_utc:%Y-%m-%d}..{cert.not_valid_after_utc:%Y-%m-%d}"
    )


def _expiry(cert: x509.Certificate, now: dt.datetime) -> str:
    if cert.not_valid_after_utc < now:
        return "  EXPIRED"
    if cert.not_valid_after_utc - now < EXPIRY_WARNING:
        return f"  expires in {(cert.not_valid_after_utc - now).days} days"
    return ""


def _users(args: argparse.Namespace) -> int:
    db = UserDb.load(args.file)
    if args.action == "list":
        for user in db.users.values():
            how = ", ".join(
                w for w, on in (("password", user.password_hash), ("certificate", user.certificate)) if on
            )
            print(f"{user.name:<20} {user.role!s:<9} {how}")
        return 0
    if args.action == "remove":
        db.remove(args.name)
        db.save()
        print(f"removed {args.name}")
        return 0
    password = ""
    if not args.no_password:
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass(f"password for {args.name}: ")
            if getpass.getpass("again: ") != password:
                raise ValueError("the two passwords differ")
    user = db.add(args.name, Role.parse(args.role), password=password, certificate=args.certificate)
    db.save()
    print(f"{user.name}: {user.role} saved in {args.file}")
    return 0
