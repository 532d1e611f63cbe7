"""Tests of the HDLC sans-I/O core against the protocol vectors (hdlc.json, dlms_ln.json).

Vectors are parsed whole, byte by byte and in seeded random splits; valid frames are
encoded again and must give the same bytes. The LN session is replayed through a client
and through a server connection, whose own output must equal the recorded frames. A
client and a server are then driven against each other in memory.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.protocols.hdlc import (
    NEED_DATA,
    Connected,
    DataReceived,
    Disconnected,
    Event,
    Frame,
    FrameKind,
    FrameParser,
    HdlcAddress,
    HdlcConnection,
    HdlcParameters,
    PeerReady,
    Role,
    SegmentReceived,
    State,
    crc16_x25,
    encode_frame,
    negotiate,
)
from tests.support.strategies import frames, hdlc_addresses

VECTORS = Path(__file__).resolve().parents[1] / "fixtures" / "protocol-vectors"
HDLC: list[dict[str, Any]] = json.loads((VECTORS / "hdlc.json").read_text())["hdlc"]
LN: list[dict[str, Any]] = json.loads((VECTORS / "dlms_ln.json").read_text())["dlms_ln"]
LN_HDLC = [v for v in LN if "control" in v.get("expect", {})]
VALID = [v for v in HDLC if v["valid"]]
INVALID = [v for v in HDLC if not v["valid"]]
BY_NAME = {v["name"]: v for v in HDLC + LN}

CLIENT = HdlcAddress(16)
SERVER = HdlcAddress(1, 17, 2)


def raw(vector: dict[str, Any]) -> bytes:
    return bytes.fromhex(vector["hex"])


def parse_pieces(pieces: list[bytes]) -> list[Frame]:
    """Feed the pieces one by one, collecting frames; a frame may only follow its last byte."""
    parser = FrameParser()
    frames: list[Frame] = []
    for piece in pieces:
        parser.receive_data(piece)
        while (frame := parser.next_frame()) is not NEED_DATA:
            frames.append(frame)
    return frames


def random_splits(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), rng.randint(0, min(6, len(data) - 1))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def check_expect(frame: Frame, vector: dict[str, Any], data: bytes) -> None:
    expect = vector["expect"]
    assert frame.kind is FrameKind[expect["control"]]
    assert frame.segmented == expect["segmented"]
    assert len(data) - 2 == expect["frame_length"]
    client = expect["client_address"]
    server = expect["server_address"]
    if vector["direction"] == "client->meter":
        client_addr, server_addr = frame.source, frame.destination
    else:
        client_addr, server_addr = frame.destination, frame.source
    assert client_addr == HdlcAddress(client["value"])
    if server["bytes"] == 1:
        assert server_addr == HdlcAddress(server["value"])
    else:
        assert server_addr == HdlcAddress(server["logical"], server["physical"], server["bytes"])
    if "ns" in expect:
        assert frame.ns == expect["ns"]
    if "nr" in expect:
        assert frame.nr == expect["nr"]
    if frame.kind in (FrameKind.SNRM, FrameKind.UA):
        params = HdlcParameters.parse(frame.information)
        for key in ("max_info_tx", "max_info_rx", "window_tx", "window_rx"):
            assert getattr(params, key) == expect.get(key, getattr(HdlcParameters(), key))


# --------------------------------------------------------------------------- CRC, addresses


def test_crc_check_value() -> None:
    assert crc16_x25(b"123456789") == 0x906E
    assert crc16_x25(b"") == 0x0000


@pytest.mark.parametrize(
    ("address", "encoded"),
    [
        (HdlcAddress(16), "21"),
        (HdlcAddress(1), "03"),
        (HdlcAddress(1, 17, 2), "0223"),
        (HdlcAddress(1, 1000, 4), "00020ed1"),
    ],
)
def test_address_encoding(address: HdlcAddress, encoded: str) -> None:
    assert address.encode().hex() == encoded
    assert HdlcAddress.parse(bytes.fromhex(encoded) + b"\x21") == (address, len(encoded) // 2)


@pytest.mark.parametrize("data", ["0204", "020406", "02", "02040608"])
def test_address_parse_errors(data: str) -> None:
    with pytest.raises(RemoteProtocolError, match="address"):
        HdlcAddress.parse(bytes.fromhex(data))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"logical": 128},
        {"logical": 1, "physical": 1},
        {"logical": 1, "length": 2},
        {"logical": 1, "length": 3},
    ],
)
def test_address_construction_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(LocalProtocolError):
        HdlcAddress(**kwargs)


# --------------------------------------------------------------------------- vectors


@pytest.mark.parametrize("vector", VALID, ids=lambda v: v["name"])
def test_valid_vector_whole_bytewise_and_split(vector: dict[str, Any]) -> None:
    data = raw(vector)
    (frame,) = parse_pieces([data])
    check_expect(frame, vector, data)
    assert parse_pieces([data[i : i + 1] for i in range(len(data))]) == [frame]
    rng = random.Random(vector["name"])
    for _ in range(50):
        assert parse_pieces(random_splits(data, rng)) == [frame]
    assert encode_frame(frame) == data


def test_bytewise_frame_only_after_last_byte() -> None:
    data = raw(BY_NAME["hdlc.ua.params_128_window_1"])
    parser = FrameParser()
    for byte in data[:-1]:
        parser.receive_data(bytes([byte]))
        assert parser.next_frame() is NEED_DATA
    parser.receive_data(data[-1:])
    assert isinstance(parser.next_frame(), Frame)
    assert parser.next_frame() is NEED_DATA


def test_back_to_back_with_shared_and_repeated_flags() -> None:
    a, b, c = (raw(BY_NAME[n]) for n in ("hdlc.snrm.params_512", "hdlc.disc", "hdlc.dm"))
    stream = a + b[1:] + b"\x7e\x7e" + c
    rng = random.Random(7)
    expected = parse_pieces([a]) + parse_pieces([b]) + parse_pieces([c])
    assert len(expected) == 3
    for _ in range(50):
        assert parse_pieces(random_splits(stream, rng)) == expected


@pytest.mark.parametrize(
    ("name", "match"), [("hdlc.invalid.bad_fcs", "FCS"), ("hdlc.invalid.bad_hcs", "HCS")]
)
def test_invalid_vectors_raise(name: str, match: str) -> None:
    data = raw(BY_NAME[name])
    parser = FrameParser()
    parser.receive_data(data)
    with pytest.raises(RemoteProtocolError, match=match):
        parser.next_frame()
    assert parser.next_frame() is NEED_DATA  # the parser resynchronised; no frame came out


def test_truncated_vector_waits_then_fails() -> None:
    data = raw(BY_NAME["hdlc.invalid.truncated"])
    parser = FrameParser()
    parser.receive_data(data)
    assert parser.next_frame() is NEED_DATA
    parser.receive_data(raw(BY_NAME["hdlc.disc"]))  # more bytes arrive: the length is wrong
    with pytest.raises(RemoteProtocolError):
        parser.next_frame()


def test_garbage_reported_then_frame_parsed() -> None:
    disc = raw(BY_NAME["hdlc.disc"])
    parser = FrameParser()
    parser.receive_data(b"\x00\x11garbage" + disc)
    with pytest.raises(RemoteProtocolError, match="9 bytes of garbage"):
        parser.next_frame()
    frame = parser.next_frame()
    assert isinstance(frame, Frame)
    assert frame.kind is FrameKind.DISC


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ("7E B0 08 02 23 21 93 BD 64 7E", "format"),
        ("7E A0 03 02 23 21 7E", "length"),
        ("7E A0 08 02 23 21 93 BD 64 00", "closing flag"),
        ("7E A0 08 02 23 21 97 00 00 7E", "FCS"),
    ],
)
def test_malformed_frames_name_the_fault(data: str, match: str) -> None:
    parser = FrameParser()
    parser.receive_data(bytes.fromhex(data))
    with pytest.raises(RemoteProtocolError, match=match):
        parser.next_frame()


@pytest.mark.parametrize("extra", [b"\x01", b"\x01\x02"])
def test_too_short_for_hcs_and_information(extra: bytes) -> None:
    body = bytearray(b"\xa0\x00\x02\x23\x21\x93" + extra)
    body[1] = len(body) + 2
    body += crc16_x25(body).to_bytes(2, "little")
    parser = FrameParser()
    parser.receive_data(b"\x7e" + bytes(body) + b"\x7e")
    with pytest.raises(RemoteProtocolError, match="too short for HCS"):
        parser.next_frame()


def test_unknown_control_byte_rejected() -> None:
    body = bytearray(b"\xa0\x08\x02\x23\x21\x2f")  # 0x2F: an unnumbered code HDLC does not define
    body += crc16_x25(body).to_bytes(2, "little")
    parser = FrameParser()
    parser.receive_data(b"\x7e" + bytes(body) + b"\x7e")
    with pytest.raises(RemoteProtocolError, match="control"):
        parser.next_frame()


@pytest.mark.parametrize("vector", LN_HDLC, ids=lambda v: v["name"])
def test_ln_session_frames(vector: dict[str, Any]) -> None:
    data = raw(vector)
    (frame,) = parse_pieces([data])
    check_expect(frame, vector, data)
    rng = random.Random(vector["name"])
    for _ in range(10):
        assert parse_pieces(random_splits(data, rng)) == [frame]
    assert encode_frame(frame) == data


# --------------------------------------------------------------------------- parameters


def test_parameter_encodings_match_vectors() -> None:
    def info(name: str) -> bytes:
        (frame,) = parse_pieces([raw(BY_NAME[name])])
        return frame.information

    assert HdlcParameters(512, 512).encode(omit_defaults=True) == info("hdlc.snrm.params_512")
    assert HdlcParameters(256, 256, 1, 7).encode(omit_defaults=True) == info(
        "hdlc.snrm.params_256_window_rx7"
    )
    assert HdlcParameters().encode() == info("hdlc.ua.params_128_window_1")
    assert HdlcParameters(512, 512).encode() == info("hdlc.ua.params_512_window_1")
    assert HdlcParameters().encode(omit_defaults=True) == b""
    assert HdlcParameters.parse(b"") == HdlcParameters(128, 128, 1, 1)


def test_negotiation() -> None:
    proposal = HdlcParameters.parse(parse_pieces([raw(BY_NAME["hdlc.snrm.params_512"])])[0].information)
    assert negotiate(proposal, HdlcParameters(256, 128, 1, 1)) == HdlcParameters(256, 128, 1, 1)
    assert negotiate(proposal, HdlcParameters(1024, 1024, 7, 7)) == HdlcParameters(512, 512, 1, 1)
    assert negotiate(HdlcParameters(100, 300, 3, 2), HdlcParameters(256, 256, 7, 7)) == HdlcParameters(
        256, 100, 2, 3
    )


@pytest.mark.parametrize(
    ("info", "match"),
    [
        ("818002050100", "group length"),
        ("8180030503000080", "group length"),
        ("8180050503000000", "3-byte"),
        ("818004050100", "group length"),
        ("818003070108", "window"),
        ("828003050180", "format"),
        ("8180020501", "truncated"),
    ],
)
def test_bad_parameters(info: str, match: str) -> None:
    with pytest.raises(RemoteProtocolError, match=match):
        HdlcParameters.parse(bytes.fromhex(info))


# --------------------------------------------------------------------------- connections


def feed(conn: HdlcConnection, data: bytes) -> list[Event]:
    conn.receive_data(data)
    events: list[Event] = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
    return events


SESSION = LN[: [v["name"] for v in LN].index("ln.disc") + 1]


def test_ln_session_replayed_by_the_client() -> None:
    client = HdlcConnection(Role.CLIENT, CLIENT, SERVER)
    assert client.connect() == raw(BY_NAME["hdlc.snrm.no_params.server_1_17"])
    assert feed(client, raw(BY_NAME["hdlc.ua.params_128_window_1"])) == [Connected(HdlcParameters())]
    pending = b""
    reassembled = 0
    for vector in SESSION:
        data = raw(vector)
        if vector["direction"] == "meter->client":
            (event,) = feed(client, data)
            pending = event.reply
            if vector["expect"]["segmented"]:
                assert isinstance(event, SegmentReceived)
            else:
                assert isinstance(event, DataReceived)
                expected = vector["expect"].get("reassembled_apdu_hex")
                assert event.apdu == (bytes.fromhex(expected) if expected else data[12:-3])
                reassembled += bool(expected)
        elif vector["expect"]["control"] == "I":
            assert client.send_data(data[12:-3]) == [data]
        elif vector["expect"]["control"] == "RR":
            assert pending == data
        else:
            assert client.disconnect() == data
    assert reassembled == 1
    assert feed(client, raw(BY_NAME["hdlc.ua.after_disc"])) == [Disconnected(FrameKind.UA)]
    assert client.state is State.DISCONNECTED


def test_ln_session_replayed_by_the_server() -> None:
    server = HdlcConnection(Role.SERVER, CLIENT, SERVER)
    (event,) = feed(server, raw(BY_NAME["hdlc.snrm.no_params.server_1_17"]))
    assert event == Connected(HdlcParameters(), raw(BY_NAME["hdlc.ua.params_128_window_1"]))
    segments = [v for v in SESSION if v["name"].startswith("ln.segmented.")]
    for index, vector in enumerate(SESSION):
        data = raw(vector)
        if vector["direction"] == "client->meter":
            (event,) = feed(server, data)
            if vector["expect"]["control"] == "I":
                assert isinstance(event, DataReceived)
                assert event.apdu == data[12:-3]
            elif vector["expect"]["control"] == "RR":
                assert event == PeerReady(raw(SESSION[index + 1]))
            else:
                assert event == Disconnected(FrameKind.DISC, raw(BY_NAME["hdlc.ua.after_disc"]))
        elif vector is segments[0]:
            apdu = bytes.fromhex(segments[-1]["expect"]["reassembled_apdu_hex"])
            assert server.send_data(apdu) == [data]
        elif vector in segments:
            pass  # sent as the reply to the client's RR
        else:
            assert server.send_data(data[12:-3]) == [data]
    assert server.state is State.DISCONNECTED


def exchange(sender: HdlcConnection, receiver: HdlcConnection, frames: list[bytes]) -> list[Event]:
    """Deliver frames, and the replies they cause, until one side has nothing more to say."""
    events: list[Event] = []
    pair = (sender, receiver)
    while frames:
        got = feed(pair[1], b"".join(frames))
        events += got
        frames = [e.reply for e in got if e.reply]
        pair = (pair[1], pair[0])
    return events


def test_client_server_end_to_end() -> None:
    client = HdlcConnection(Role.CLIENT, CLIENT, SERVER, HdlcParameters(1024, 1024))
    server = HdlcConnection(Role.SERVER, CLIENT, SERVER, HdlcParameters(128, 128))
    (connected_s, connected_c) = exchange(client, server, [client.connect()])
    assert connected_s == Connected(HdlcParameters(128, 128), connected_s.reply)
    assert connected_c == Connected(HdlcParameters(128, 128))
    assert client.state is server.state is State.CONNECTED
    rng = random.Random(1)
    for _ in range(3):
        request = rng.randbytes(1000)
        first = client.send_data(request)
        assert len(first) == 1
        assert len(first[0]) <= 128 + 15
        events = exchange(client, server, first)
        segments = [e for e in events if isinstance(e, SegmentReceived)]
        assert len(segments) == 7  # 1003 bytes with the LLC: 8 frames
        assert sum(isinstance(e, PeerReady) for e in events) == 7
        assert events[-1] == DataReceived(request)
        response = rng.randbytes(1000)
        events = exchange(server, client, server.send_data(response))
        assert events[-1] == DataReceived(response)
        assert len(events) == 15
    assert exchange(client, server, [client.disconnect()]) == [
        Disconnected(FrameKind.DISC, encode_frame(Frame(FrameKind.UA, CLIENT, SERVER))),
        Disconnected(FrameKind.UA),
    ]
    assert client.state is server.state is State.DISCONNECTED


def test_segments_carry_segmentation_bit_and_llc_once() -> None:
    client = HdlcConnection(Role.CLIENT, CLIENT, SERVER)
    server = HdlcConnection(Role.SERVER, CLIENT, SERVER)
    exchange(client, server, [client.connect()])
    (first,) = server.send_data(bytes(300))
    frames = [parse_pieces([first])[0]]
    while True:
        (event,) = feed(client, encode_frame(frames[-1]))
        if isinstance(event, DataReceived):
            break
        (ready,) = feed(server, event.reply)
        frames.append(parse_pieces([ready.reply])[0])
    assert [f.segmented for f in frames] == [True, True, False]
    assert [len(f.information) for f in frames] == [128, 128, 47]
    assert frames[0].information[:3] == b"\xe6\xe7\x00"
    assert frames[1].information[:3] == bytes(3)
    assert [f.ns for f in frames] == [0, 1, 2]


def test_sequence_errors() -> None:
    client = HdlcConnection(Role.CLIENT, CLIENT, SERVER)
    server = HdlcConnection(Role.SERVER, CLIENT, SERVER)
    exchange(client, server, [client.connect()])
    request = client.send_data(b"\xc0\x01")
    feed(server, request[0])
    with pytest.raises(RemoteProtocolError, match="N\\(S\\)=0, expected 1"):
        feed(server, request[0])  # repeated frame
    bad = Frame(FrameKind.I, CLIENT, SERVER, ns=0, nr=3, information=b"\xe6\xe7\x00\x01")
    with pytest.raises(RemoteProtocolError, match="N\\(R\\)=3, expected 1"):
        feed(client, encode_frame(bad))
    wrong_llc = Frame(FrameKind.I, CLIENT, SERVER, ns=0, nr=1, information=b"\xe6\xe6\x00\x01")
    with pytest.raises(RemoteProtocolError, match="LLC"):
        feed(client, encode_frame(wrong_llc))


def test_local_errors_and_unexpected_frames() -> None:
    client = HdlcConnection(Role.CLIENT, CLIENT, SERVER)
    server = HdlcConnection(Role.SERVER, CLIENT, SERVER)
    with pytest.raises(LocalProtocolError):
        client.send_data(b"x")
    with pytest.raises(LocalProtocolError):
        server.connect()
    with pytest.raises(RemoteProtocolError, match="UA frame not expected"):
        feed(client, raw(BY_NAME["hdlc.ua.no_params"]))
    # a server that is not connected answers DM
    (event,) = feed(server, raw(BY_NAME["hdlc.disc"]))
    assert event == Disconnected(FrameKind.DISC, raw(BY_NAME["hdlc.dm"]))
    client.connect()
    assert feed(client, raw(BY_NAME["hdlc.dm"])) == [Disconnected(FrameKind.DM)]
    assert client.state is State.DISCONNECTED


def test_frames_for_other_stations_are_ignored() -> None:
    client = HdlcConnection(Role.CLIENT, HdlcAddress(17), SERVER)
    client.connect()
    assert feed(client, raw(BY_NAME["hdlc.ua.no_params"])) == []  # addressed to client 16
    assert client.state is State.CONNECTING


def test_ua_parameters_are_swapped_for_the_client() -> None:
    client = HdlcConnection(Role.CLIENT, CLIENT, SERVER)
    client.connect(HdlcParameters(256, 256))
    (event,) = feed(client, raw(BY_NAME["hdlc.ua.params_tx256_rx128"]))
    assert event == Connected(HdlcParameters(max_info_tx=128, max_info_rx=256))
    assert [len(f) for f in client.send_data(bytes(200))] == [128 + 12]


# --------------------------------------------------------------------------- properties


@given(hdlc_addresses)
def test_address_round_trip(address: HdlcAddress) -> None:
    assert HdlcAddress.parse(address.encode()) == (address, address.length)


@given(frames(), st.randoms(use_true_random=False))
def test_frame_round_trip(frame: Frame, rng: random.Random) -> None:
    data = encode_frame(frame)
    assert parse_pieces(random_splits(data, rng)) == [frame]


@given(
    st.builds(
        HdlcParameters,
        st.integers(1, 0xFFFFFFFF),
        st.integers(1, 0xFFFFFFFF),
        st.integers(1, 7),
        st.integers(1, 7),
    ),
    st.booleans(),
)
def test_parameters_round_trip(params: HdlcParameters, omit: bool) -> None:
    assert HdlcParameters.parse(params.encode(omit_defaults=omit)) == params


@settings(max_examples=300)
@given(st.binary(max_size=400), st.randoms(use_true_random=False))
def test_fuzz_only_remote_protocol_errors(data: bytes, rng: random.Random) -> None:
    for role in Role:
        conn = HdlcConnection(role, CLIENT, SERVER)
        if role is Role.CLIENT:
            conn.connect()
        for piece in random_splits(data, rng) if len(data) > 1 else [data]:
            conn.receive_data(piece)
            for _ in range(len(data) + 2):
                try:
                    if conn.next_event() is NEED_DATA:
                        break
                except RemoteProtocolError:
                    pass


@settings(max_examples=200)
@given(frames(), st.integers(0, 400), st.integers(0, 255))
def test_fuzz_corrupted_frames(frame: Frame, position: int, flip: int) -> None:
    data = bytearray(encode_frame(frame))
    data[position % len(data)] ^= flip
    parser = FrameParser()
    parser.receive_data(bytes(data))
    for _ in range(len(data) + 2):
        try:
            if parser.next_frame() is NEED_DATA:
                break
        except RemoteProtocolError:
            pass
