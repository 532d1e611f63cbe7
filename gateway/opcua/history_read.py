"""What every HistoryRead answerer shares (OPC 10000-11): the gateway's over the archive
(:mod:`gateway.opcua.history`) and the head-end's over its aggregate records
(``headend/opcua.py``).

A leaf of asyncua's types only: the head-end's adapter takes it without the gateway's
history module (which pulls in the archive and the meter's events).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from asyncua import Server, ua
from asyncua.server.history import HistoryStorageInterface

#: Times at or before this are "not specified" (the OPC UA DateTime minimum is 1601-01-01).
UNSPECIFIED = datetime(1601, 1, 2, tzinfo=UTC)


class HistoryFault(Exception):
    """A HistoryRead of one node that must be answered with ``status`` (and no data)."""

    def __init__(self, status: int) -> None:
        super().__init__(ua.StatusCode(status).name)
        self.status = status


class ReadOnlyHistory(HistoryStorageInterface):  # type: ignore[misc]  # asyncua is untyped for mypy
    """A history asyncua reads but never records: something else writes it (``WRITER``)."""

    #: Who writes the history (what a call of the recording side is told).
    WRITER = "the history is written elsewhere"

    async def init(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def new_historized_node(self, node_id: ua.NodeId, period: timedelta | None, count: int = 0) -> None:
        raise NotImplementedError(self.WRITER)

    async def save_node_value(self, node_id: ua.NodeId, datavalue: ua.DataValue) -> None:
        raise NotImplementedError(self.WRITER)


def request_time(t: datetime | None) -> datetime | None:
    """A request time in UTC, or None when the client left it unspecified."""
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)  # OPC UA DateTime is UTC by definition
    return None if t <= UNSPECIFIED else t.astimezone(UTC)


def fault(status: int) -> ua.HistoryReadResult:
    """The result of a node's HistoryRead refused with ``status``."""
    return ua.HistoryReadResult(StatusCode=ua.StatusCode(status))


def no_updates(params: ua.HistoryUpdateParameters) -> list[ua.HistoryUpdateResult]:
    """HistoryUpdate refused for every item: no client rewrites the history."""
    return [
        ua.HistoryUpdateResult(StatusCode=ua.StatusCode(ua.StatusCodes.BadHistoryOperationUnsupported))
        for _ in params.HistoryUpdateDetails
    ]


async def write_capabilities(server: Server, capabilities: Mapping[str, tuple[Any, ua.VariantType]]) -> None:
    """HistoryServerCapabilities (OPC 10000-11 §5.4.2): each name's value, where the server
    has the node."""
    for name, (value, vtype) in capabilities.items():
        node_id = getattr(ua.ObjectIds, f"HistoryServerCapabilities_{name}", None)
        if node_id is not None:
            await server.get_node(ua.NodeId(node_id)).write_value(ua.Variant(value, vtype))
