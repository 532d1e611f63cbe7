"""The head-end's ingest core: what the gateway's uplink encodes comes out as rows; foreign,
malformed and hostile input is refused with its cause and never stops ingest."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.meter.model import Diagnostics, Quality, Reading, Snapshot
from gateway.obis import Obis
from gateway.pubsub import codec
from gateway.uplink import writers as w
from headend.ingest import Accepted, Cause, Ingest, LiveSeen, MetadataSeen, Refused, StatusSeen, parse_topic
from tests.support.headend_messages import (
    METER,
    NOW,
    PUB,
    VERSION,
    data_message,
    hostile,
    lp1_values,
    metadata_message,
    topic,
)


def ready(ingest: Ingest, *writers: str) -> None:
    for writer in writers:
        out = ingest.feed(topic("metadata", writer), metadata_message(writer), "application/json", NOW)
        assert isinstance(out[0], MetadataSeen)


def test_topics_of_the_tree_and_nothing_else() -> None:
    assert parse_topic("opcua", "opcua/json/data/smx-17/meter1/lp1") is not None
    assert parse_topic("opcua", "opcua/json/status/smx-17") is not None
    for bad in ("opcua/json/data/smx-17/meter1", "opcua/uadp/data/a/b/c", "other/json/data/a/b/c",
                "opcua/json/data//meter1/lp1", "opcua/json/status/a/b"):  # fmt: skip
        assert parse_topic("opcua", bad) is None, bad


def test_load_profile_periods_become_samples_of_every_field() -> None:
    ingest = Ingest()
    ready(ingest, "lp1")
    t1, t2 = NOW - timedelta(minutes=30), NOW - timedelta(minutes=15)
    out = ingest.feed(
        topic("data", "lp1"),
        data_message("lp1", [(t1, lp1_values(), 0), (t2, lp1_values(1), 0x80)]),
        "application/json",
        NOW,
    )
    assert all(isinstance(o, Accepted) for o in out)
    first, second = out
    assert isinstance(first, Accepted)
    assert isinstance(second, Accepted)
    assert (first.time, second.time) == (t1, t2)
    assert first.writer_id == 104
    names = {s.field for s in first.samples}
    assert "APlusPerPeriod" in names
    assert "MeterStatus" in names
    assert {s.stream for s in first.samples} == {"lp1"}
    status = {s.field: s for s in second.samples}
    assert status["MeterStatus"].value == 0x80
    assert status["APlusPerPeriod"].status == 0x40A40000  # the power-down period is Uncertain
    assert status["APlusPerPeriod"].value == 1.25


def test_events_become_events_and_live_values_are_seen_not_stored() -> None:
    ingest = Ingest()
    ready(ingest, "events", "live")
    (event,) = ingest.feed(topic("data", "events"), data_message("events", [(NOW, [40.0], 5)]), None, NOW)
    assert isinstance(event, Accepted)
    assert [(e.code, e.severity, e.message, e.meter_status) for e in event.events] == [
        (40, 800, "Terminal cover opened", 5)
    ]
    frames = w.LiveFrames(w.writer_fields(METER, w.BY_NAME["live"]), 1)
    power = Obis.parse("1-0:1.7.0")
    snap = Snapshot("meter1", NOW, {power: Reading(power, 1.5, "kW", NOW, Quality.GOOD)}, Diagnostics())
    kind, payload, worst = frames.frame(snap)
    msg = w.dataset_message(w.BY_NAME["live"], 101, 1, VERSION, NOW, payload, worst, kind)
    data = codec.encode(codec.NetworkMessage("x", PUB, "meter1", (msg,)))
    # Not stored; the portfolios take its Good values (the rest of the set is Waiting: None).
    (live,) = ingest.feed(topic("data", "live"), data, None, NOW)
    assert isinstance(live, LiveSeen)
    assert (live.publisher, live.meter, live.time) == (PUB, "meter1", NOW)
    assert live.values["ActivePowerImport"] == 1.5
    assert live.values["ActivePowerExport"] is None


def test_data_before_its_metadata_is_held_then_taken() -> None:
    ingest = Ingest()
    data = data_message("lp1", [(NOW - timedelta(minutes=15), lp1_values(), 0)])
    assert ingest.feed(topic("data", "lp1"), data, None, NOW) == []
    assert ingest.held == 1
    out = ingest.feed(topic("metadata", "lp1"), metadata_message("lp1"), None, NOW)
    assert isinstance(out[0], MetadataSeen)
    assert isinstance(out[1], Accepted)
    assert ingest.held == 0
    # A new major version (other fields) is held again until its metadata comes.
    newer = codec.ConfigurationVersion(900, 900)
    again = data_message("lp1", [(NOW, lp1_values(), 0)], version=newer)
    assert ingest.feed(topic("data", "lp1"), again, None, NOW) == []
    out = ingest.feed(topic("metadata", "lp1"), metadata_message("lp1", version=newer), None, NOW)
    assert [type(o) for o in out] == [MetadataSeen, Accepted]


def test_status_messages_and_the_will() -> None:
    ingest = Ingest()
    will = codec.encode(codec.StatusMessage("w", PUB, codec.PubSubState.ERROR))
    assert ingest.feed(topic("status"), will, None, NOW) == [StatusSeen(PUB, codec.PubSubState.ERROR)]


def test_thirty_hostile_messages_are_refused_with_their_cause_and_ingest_goes_on() -> None:
    ingest = Ingest()
    ready(ingest, "lp1", "lp2", "events")
    cases = hostile()
    assert len(cases) >= 30
    for what, where, payload, content_type, cause in cases:
        out = ingest.feed(where, payload, content_type, NOW)
        assert out, what
        assert all(isinstance(o, Refused) for o in out), (what, out)
        assert {o.cause for o in out if isinstance(o, Refused)} == {cause}, (what, out)
    # Nothing was held or changed by them: a good message is taken as before.
    assert ingest.held == 0
    out = ingest.feed(topic("data", "lp1"), data_message("lp1", [(NOW, lp1_values(), 0)]), None, NOW)
    assert [type(o) for o in out] == [Accepted]


def test_held_messages_are_bounded() -> None:
    ingest = Ingest()
    t = NOW - timedelta(days=3)
    refused = []
    for n in range(250):
        data = data_message("lp1", [(t + timedelta(minutes=15 * n), lp1_values(), 0)])
        refused += ingest.feed(topic("data", "lp1"), data, None, NOW)
    assert ingest.held == 200
    assert len(refused) == 50
    assert {r.cause for r in refused if isinstance(r, Refused)} == {Cause.METADATA_MISSING}
    out = ingest.feed(topic("metadata", "lp1"), metadata_message("lp1"), None, NOW)
    assert len([o for o in out if isinstance(o, Accepted)]) == 200


@pytest.mark.parametrize("publisher", ["smx-17", "smx-18"])
def test_one_publishers_metadata_does_not_serve_another(publisher: str) -> None:
    ingest = Ingest()
    ingest.feed(topic("metadata", "lp1", publisher="smx-17"), metadata_message("lp1", "smx-17"), None, NOW)
    data = data_message("lp1", [(NOW, lp1_values(), 0)], publisher=publisher)
    out = ingest.feed(topic("data", "lp1", publisher=publisher), data, None, NOW)
    assert (out == []) is (publisher == "smx-18")  # smx-18's data waits for smx-18's metadata


def test_writer_id_by_name_follows_the_metadata() -> None:
    ingest = Ingest()
    assert ingest.writer_id(PUB, "meter1", "lp1") is None
    ready(ingest, "lp1", "minute")
    lp1, minute = w.writer_id(0, w.BY_NAME["lp1"]), w.writer_id(0, w.BY_NAME["minute"])
    assert ingest.writer_id(PUB, "meter1", "lp1") == lp1
    assert ingest.writer_id(PUB, "meter1", "minute") == minute
    assert ingest.writer_id("smx-18", "meter1", "lp1") is None
    assert ingest.writer_id(PUB, "meter2", "lp1") is None
    # The id of lp1 announced again as another meter's lp1: the old name no longer has it.
    spec = w.BY_NAME["lp1"]
    moved = codec.MetaDataMessage("m2", PUB, lp1, "meter2", "lp1", NOW, w.metadata(METER, spec, VERSION))
    ingest.feed(f"opcua/json/metadata/{PUB}/meter2/lp1", codec.encode(moved), None, NOW)
    assert ingest.writer_id(PUB, "meter1", "lp1") is None
    assert ingest.writer_id(PUB, "meter2", "lp1") == lp1
    assert ingest.meters() == {(PUB, "meter1"), (PUB, "meter2")}


def test_writers_with_the_same_fields_share_one_type_table() -> None:
    """A fleet's boxes mostly have the same fields: ingest keeps one table per layout, not
    the whole metadata per writer (10,000 boxes' metadata decoded whole is 1.7 GB)."""
    ingest = Ingest()
    for n in range(50):
        for writer in ("lp1", "lp2", "minute"):
            out = ingest.feed(
                topic("metadata", writer, f"smx-{n}"), metadata_message(writer, f"smx-{n}"), None, NOW
            )
            assert isinstance(out[0], MetadataSeen)
    assert ingest.layouts == 3  # one per kind of writer, not one per writer (150)
    # And every box's data is still checked against its writer's fields.
    good = data_message("lp1", [(NOW, lp1_values(), 0)], publisher="smx-7")
    assert [type(o) for o in ingest.feed(topic("data", "lp1", "smx-7"), good, None, NOW)] == [Accepted]
