"""``Objects/SMX/Administration``: the trust list over OPC UA, for the admin role (DESIGN §8).

An administrator reaching the box through the VPN can do what ``smx-gateway certs`` does
on the box: list the trusted and the rejected client certificates, trust a rejected one
(a client refused with BadCertificateUntrusted connects at its next attempt), and stop
trusting one. Every call needs the admin role and is logged with the caller. The PKI
folders are touched in worker threads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from asyncua import ua
from cryptography import x509

from gateway.opcua.address_space import AddressSpace
from gateway.opcua.guard import caller
from gateway.opcua.ids import ADMINISTRATION_TYPE
from gateway.opcua.methods import ArgumentError, count, for_role, refused, scalar
from gateway.security.pki import CertificateError, Pki, load_certificate
from gateway.security.users import Role

log = logging.getLogger(__name__)

#: How a certificate is shown in ListCertificates.
LINE = "{thumbprint}  {subject}  (valid until {until:%Y-%m-%d})"


def describe(thumbprint: str, cert: x509.Certificate) -> str:
    return LINE.format(
        thumbprint=thumbprint, subject=cert.subject.rfc4514_string(), until=cert.not_valid_after_utc
    )


class AdminNodes:
    """Links the Administration methods of ``Objects/SMX`` to the PKI."""

    def __init__(self, space: AddressSpace, pki: Pki) -> None:
        self.space = space
        self.pki = pki

    async def add(self) -> None:
        """``Objects/SMX/Administration`` (an AdministrationType) with its three methods linked."""
        server = self.space.server
        await server.get_node(self.space.nid("SMX")).add_object(
            self.space.nid("SMX.Administration"), ua.QualifiedName("Administration", self.space.ns),
            objecttype=ua.NodeId(ADMINISTRATION_TYPE, self.space.ns),
        )  # fmt: skip
        for name, call in (
            ("ListCertificates", self._list),
            ("TrustCertificate", self._trust),
            ("RejectCertificate", self._reject),
        ):
            node = server.get_node(self.space.nid(f"SMX.Administration.{name}"))
            server.link_method(node, for_role(Role.ADMIN, f"SMX.Administration.{name}", call))

    async def _list(self, parent: ua.NodeId, *args: ua.Variant) -> ua.CallMethodResult | list[ua.Variant]:
        try:
            count(args, 0)
        except ArgumentError as err:
            return refused(err, len(args))

        def listing() -> tuple[list[str], list[str]]:
            return tuple(  # type: ignore[return-value]
                [describe(t, c) for t, (_p, c) in self.pki.certificates(folder).items()]
                for folder in ("trusted/certs", "rejected/certs")
            )

        trusted, rejected = await asyncio.to_thread(listing)
        return [
            ua.Variant(trusted, ua.VariantType.String, is_array=True),
            ua.Variant(rejected, ua.VariantType.String, is_array=True),
        ]

    async def _trust(self, parent: ua.NodeId, *args: ua.Variant) -> ua.CallMethodResult | list[ua.Variant]:
        return await self._move(args, self.pki.trust, "trusted")

    async def _reject(self, parent: ua.NodeId, *args: ua.Variant) -> ua.CallMethodResult | list[ua.Variant]:
        return await self._move(args, self.pki.distrust, "no longer trusted")

    async def _move(
        self, args: tuple[ua.Variant, ...], move: Callable[[str], Path], done: str
    ) -> ua.CallMethodResult | list[ua.Variant]:
        try:
            count(args, 1)
            prefix = scalar(args, 0, ua.VariantType.String, "Thumbprint")
            if len(prefix.replace(":", "")) < 8:
                short = "Thumbprint: give at least 8 hex digits (see ListCertificates)"
                raise ArgumentError(0, ua.StatusCodes.BadInvalidArgument, short)

            def carry_out() -> str:
                path = move(prefix)
                return load_certificate(path.read_bytes()).subject.rfc4514_string()

            try:
                subject = await asyncio.to_thread(carry_out)
            except CertificateError as err:
                raise ArgumentError(0, ua.StatusCodes.BadNotFound, err.reason) from None
        except ArgumentError as err:
            return refused(err, len(args))
        log.warning("certificate %s (%s) %s by %s over OPC UA", prefix, subject, done, caller())
        return [ua.Variant(subject, ua.VariantType.String)]
