"""Messages as a gateway's uplink encodes them, for the head-end's tests: one meter's
metadata and data (with the gateway's own writer table and codec), and their topics."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.config import MeterConfig
from gateway.pubsub import codec
from gateway.uplink import writers as w

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
METER = MeterConfig(id="meter1", url="socket://127.0.0.1:1", protocol="dlms")
VERSION = codec.ConfigurationVersion(800, 800)
PUB = "smx-17"


def metadata_message(
    writer: str, publisher: str = PUB, version: codec.ConfigurationVersion = VERSION
) -> bytes:
    spec = w.BY_NAME[writer]
    md = codec.MetaDataMessage(
        "m1", publisher, w.writer_id(0, spec), "meter1", writer, NOW, w.metadata(METER, spec, version)
    )
    return codec.encode(md)


def data_message(
    writer: str, records: list[tuple[datetime, list[float | None], int | None]], publisher: str = PUB,
    version: codec.ConfigurationVersion = VERSION,
) -> bytes:  # fmt: skip
    spec = w.BY_NAME[writer]
    fields = w.writer_fields(METER, spec)
    out = []
    for n, (t, values, status) in enumerate(records):
        payload, st = w.record_payload(spec, fields, status, values)
        out.append(w.dataset_message(spec, w.writer_id(0, spec), n + 1, version, t, payload, st))
    return codec.encode(codec.NetworkMessage("d1", publisher, "meter1", tuple(out)))


def topic(kind: str, writer: str = "", publisher: str = PUB) -> str:
    return f"opcua/json/{kind}/{publisher}/meter1/{writer}" if writer else f"opcua/json/{kind}/{publisher}"


def lp1_values(n: int = 0) -> list[float | None]:
    count = len(w.archive_columns(w.writer_fields(METER, w.BY_NAME["lp1"])))
    return [0.25 + n] * count
