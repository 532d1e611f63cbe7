"""Sites of a portfolio as the gateway's uplink shows them, for the portfolio tests.

Each site announces itself as a box does (status Operational and the retained metadata of
its ``live`` and ``registers`` writers, built with the gateway's own writer table), then
publishes live values (a key frame with the net power's two fields) and register reads
that the test chooses. Messages are encoded by the gateway's codec, so the head-end reads
exactly what a box would send.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import aiomqtt

from gateway.pubsub import codec
from gateway.uplink import writers as w
from tests.support.headend_messages import METER, VERSION, metadata_message

PREFIX = "opcua"


def site_names(n: int, stem: str = "site") -> list[str]:
    return [f"{stem}-{i:04d}" for i in range(n)]


def live_message(publisher: str, time: datetime, kw: float, sequence: int = 1) -> bytes:
    """A live key frame with the net power ``kw`` (import or export, the other 0)."""
    spec = w.BY_NAME["live"]
    payload = {
        "ActivePowerImport": codec.FieldValue(max(kw, 0.0), 0),
        "ActivePowerExport": codec.FieldValue(max(-kw, 0.0), 0),
    }
    message = w.dataset_message(spec, w.writer_id(0, spec), sequence, VERSION, time, payload, 0,
                                codec.DataSetMessageType.KEY_FRAME)  # fmt: skip
    return codec.encode(codec.NetworkMessage(f"l{sequence}", publisher, METER.id, (message,)))


def registers_message(publisher: str, time: datetime, imported_kwh: float, exported_kwh: float) -> bytes:
    spec = w.BY_NAME["registers"]
    payload = {"ActiveEnergyImport": imported_kwh, "ActiveEnergyExport": exported_kwh}
    message = w.dataset_message(spec, w.writer_id(0, spec), 1, VERSION, time, payload)
    return codec.encode(codec.NetworkMessage("r1", publisher, METER.id, (message,)))


def topic(kind: str, publisher: str, writer: str = "") -> str:
    if writer:
        return f"{PREFIX}/json/{kind}/{publisher}/{METER.id}/{writer}"
    return f"{PREFIX}/json/{kind}/{publisher}"


def announce_messages(publisher: str, time: datetime) -> list[tuple[str, bytes]]:
    """(topic, payload) of a site's status Operational and its live and registers metadata."""
    status = codec.StatusMessage("s1", publisher, codec.PubSubState.OPERATIONAL, timestamp=time)
    out = [(topic("status", publisher), codec.encode(status))]
    for writer in ("live", "registers"):
        out.append((topic("metadata", publisher, writer), metadata_message(writer, publisher)))
    return out


async def announce(client: aiomqtt.Client, publishers: Iterable[str], time: datetime) -> None:
    """Status Operational and the live and registers metadata of each site, retained."""
    for publisher in publishers:
        for t, payload in announce_messages(publisher, time):
            await client.publish(t, payload, qos=1, retain=True)
