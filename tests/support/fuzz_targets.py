"""Fuzz targets of the sans-I/O protocol cores, shared by the short and the long fuzz run.

``tests/unit/test_fuzz_protocols.py`` drives these targets with Hypothesis on every
``make test``; ``bench/fuzz.py`` drives the same targets with a seeded :class:`random.Random`
for a million inputs. One :class:`Target` is one core in one role. Its ``run(data, rng)``
puts a fresh connection into a state reached by a real exchange (chosen by ``rng``), feeds
``data`` whole, byte by byte or in random pieces, pulls every event, reacts as that role
would (answers, acknowledgements, the parsers a caller applies to what it received) and
returns the protocol errors the core raised: its refusals.

The property is the sans-I/O contract (DESIGN §7): bytes from the peer can only make a
core raise :class:`~gateway.errors.RemoteProtocolError`, and our own calls only
:class:`~gateway.errors.LocalProtocolError` (subclasses included). Anything else that
escapes (IndexError, struct.error, UnicodeDecodeError, ValueError, KeyError,
OverflowError, RecursionError) is a bug in the core, and so are a core that keeps more
bytes than its bound (:class:`BoundExceeded`) and one that does not come back (:class:`Hang`).

Inputs (:func:`fuzz_input`) are real frames from ``tests/fixtures/protocol-vectors``
(captured and published meter traffic, protocol vectors) and frames the cores produce
themselves (a client core and a meter core talking to each other, the simulator's COSEM
server answering), changed by :func:`mutate`: bit flips, byte changes, boundary values,
insertions, deletions, truncations, duplicated and swapped chunks, splices of two inputs
and long runs. Half of the mutated inputs get their checksums repaired
(:attr:`Target.repair`: HDLC HCS/FCS and length, IEC BCC), so that mutations reach the
parsers behind the checksum instead of all dying at it.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import cache
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from gateway.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from gateway.protocols import apdu as ap
from gateway.protocols import axdr, cosem, hdlc
from gateway.protocols import iec62056_21 as iec
from gateway.protocols.common import NEED_DATA
from gateway.simulator.cosem_server import CosemServer
from gateway.simulator.physics import HouseholdModel, MeterPhysics

__all__ = [
    "TARGETS",
    "BoundExceeded",
    "Hang",
    "Target",
    "check",
    "chunks",
    "drain_hdlc",
    "fuzz_input",
    "hdlc_connected",
    "iec_wire",
    "mutate",
]

VECTORS = Path(__file__).resolve().parents[1] / "fixtures" / "protocol-vectors"
#: Longest input the mutator builds (a long run may reach it).
MAX_INPUT = 9000
#: Longest APDU an HDLC receiver may reassemble: the xDLMS max PDU size is a uint16,
#: plus the 3-byte LLC header.
HDLC_MAX_REASSEMBLED = 0xFFFF + 3
#: Longest '/' line (sign-on, identification) an IEC 62056-21 core buffers.
IEC_MAX_LINE = 128
#: Most bytes an HDLC frame parser may hold while waiting: flag + the 11-bit length.
HDLC_MAX_BUFFERED = 1 + 0x7FF

T = TypeVar("T")


class Hang(AssertionError):
    """A core did not finish an input in time, or its event loop made no progress."""


class BoundExceeded(AssertionError):
    """A core kept more received bytes than it should (unbounded buffer growth)."""


# --------------------------------------------------------------------------- mutation

_BYTES_OF_NOTE = bytes.fromhex(
    "00 01 02 03 04 06 0a 0d 15 21 28 29 2a 2f 30 39 3b 5c 7e 7f 80 81 82 83 84 85 a0 a8 e6 fe ff"
)
#: 16-bit values at the edges: 0/1, signed and unsigned limits, year 2000, 9999, HDLC length.
_WORDS_OF_NOTE = (0x0000, 0x0001, 0x007F, 0x0080, 0x00FF, 0x0100, 0x07D0, 0x07FF, 0x270F, 0x7FFF, 0x8000)
_WORDS_OF_NOTE += (0x8001, 0xFFFE, 0xFFFF)


def mutate(
    data: bytes, rng: random.Random, pool: Sequence[bytes] = (), tokens: Sequence[bytes] = ()
) -> bytes:
    """``data`` after one to eight random edits.

    ``pool``: other inputs to splice in; ``tokens``: the protocol's words (tags, field
    openers, edge values) to write over or into the input, as a fuzzing dictionary.
    """
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4, 8))):
        size = len(buf)
        op = rng.randrange(16)
        at = rng.randrange(size) if size else 0
        if size == 0 and op < 5:
            op = 5  # nothing to change yet: insert
        if op == 0:  # bit flip
            buf[at] ^= 1 << rng.randrange(8)
        elif op == 1:  # any byte
            buf[at] = rng.randrange(256)
        elif op == 2:  # a byte that means something to one of the protocols
            buf[at] = rng.choice(_BYTES_OF_NOTE)
        elif op == 3:  # small arithmetic: lengths and counts one off
            buf[at] = (buf[at] + rng.randint(-8, 8)) & 0xFF
        elif op == 4:  # boundary value of a 16-bit field (years, deviations, sizes)
            buf[at : at + 2] = rng.choice(_WORDS_OF_NOTE).to_bytes(2, rng.choice(("big", "little")))
        elif op == 5:  # insert a few bytes
            buf[at:at] = (
                rng.randbytes(rng.randint(1, 8))
                if rng.random() < 0.5
                else bytes([rng.choice(_BYTES_OF_NOTE)])
            )
        elif op == 6:  # delete a range
            del buf[at : at + rng.randint(1, 16)]
        elif op == 7:  # truncate: drop the tail (or the head)
            if rng.random() < 0.8:
                del buf[at:]
            else:
                del buf[:at]
        elif op == 8:  # duplicate a chunk somewhere else
            start = rng.randrange(size + 1)
            piece = buf[start : start + rng.randint(1, 64)]
            buf[at:at] = piece
        elif op == 9:  # swap two chunks (reordering)
            a, b = sorted((rng.randrange(size + 1), rng.randrange(size + 1)))
            c = rng.randrange(b, size + 1)
            buf[a:c] = buf[b:c] + buf[a:b]
        elif op == 10 and pool:  # splice: our head, another input's tail
            other = rng.choice(pool)
            buf[at:] = other[rng.randrange(len(other) + 1) :]
        elif op == 11 and pool:  # insert a chunk (often a whole message) of another input
            other = rng.choice(pool)
            start = rng.randrange(len(other) + 1) if rng.random() < 0.5 else 0
            buf[at:at] = other[start : start + rng.randint(1, len(other) + 1)]
        elif op == 12:  # a long run of one byte: oversized fields and lines
            byte = buf[at] if size and rng.random() < 0.7 else rng.choice(_BYTES_OF_NOTE)
            count = rng.randint(1, 64) if rng.random() < 0.7 else rng.randint(64, 8192)
            buf[at:at] = bytes([byte]) * count
        elif op == 13 and (numbers := list(_DIGITS.finditer(buf))):  # a decimal number in text
            number = rng.choice(numbers)
            buf[number.start() : number.end()] = _number_of_note(rng)
        elif op == 14 and tokens:  # a word of the protocol, written over or into the input
            token = rng.choice(tokens)
            if rng.random() < 0.5:
                buf[at : at + len(token)] = token
            else:
                buf[at:at] = token
        else:  # a random span of random bytes overwritten
            span = rng.randint(1, 8)
            buf[at : at + span] = rng.randbytes(span)
        if len(buf) > MAX_INPUT:
            del buf[MAX_INPUT:]
    return bytes(buf)


_DIGITS = re.compile(rb"\d+")


def _number_of_note(rng: random.Random) -> bytes:
    """A number that tests a text field's limits: 0, edges of int sizes, very long ones."""
    choice = rng.randrange(5)
    if choice == 0:
        return rng.choice((b"0", b"1", b"00", b"-1", b"255", b"256", b"65535", b"65536", b"4294967296"))
    if choice == 1:
        return str(rng.getrandbits(rng.randint(1, 64))).encode()
    if choice == 2:
        return b"0" * rng.randint(2, 40) + b"1"
    return bytes([rng.choice(b"123456789")]) * rng.choice((12, 20, 40, 400, 4400, 6000))


def chunks(data: bytes, rng: random.Random) -> list[bytes]:
    """``data`` whole, byte by byte or cut at up to eight random points."""
    how = rng.randrange(4)
    if how == 0 or len(data) < 2:
        return [data]
    if how == 1 and len(data) <= 2048:  # byte by byte (long inputs: random pieces instead)
        return [data[i : i + 1] for i in range(len(data))]
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 8))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True, slots=True)
class Target:
    """One core in one role: how to run an input, the seed corpus, how to repair checksums."""

    key: str
    core: str
    role: str
    run: Callable[[bytes, random.Random], list[ProtocolError]]
    seeds: Callable[[], tuple[bytes, ...]]
    repair: Callable[[bytes], bytes] | None = None
    tokens: tuple[bytes, ...] = ()


def fuzz_input(target: Target, rng: random.Random) -> bytes:
    """One input for ``target``: mostly a mutated seed, sometimes a seed or random bytes."""
    seeds = target.seeds()
    roll = rng.random()
    if roll < 0.04:
        return rng.randbytes(rng.randrange(64))
    data = rng.choice(seeds)
    if roll >= 0.08:
        data = mutate(data, rng, seeds, target.tokens)
    if target.repair is not None and rng.random() < 0.5:
        data = target.repair(data)
    return data


def _raise_hang(_signum: int, _frame: object) -> None:
    raise Hang("the core did not finish the input in time (infinite loop?)")


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` in the main thread when the block runs longer than ``seconds``."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _raise_hang)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check(target: Target, data: bytes, rng: random.Random, limit_s: float = 10.0) -> list[ProtocolError]:
    """Run one input under a watchdog; the refusals, or whatever else escaped is raised."""
    with _time_limit(limit_s):
        return target.run(data, rng)


def _call(refusals: list[ProtocolError], function: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """``function(*args)``; a protocol error is recorded as a refusal and gives None."""
    try:
        return function(*args, **kwargs)
    except ProtocolError as err:
        refusals.append(err)
        return None


# --------------------------------------------------------------------------- corpora


def _vectors(stem: str) -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = json.loads((VECTORS / f"{stem}.json").read_text())[stem]
    return [v for v in vectors if "hex" in v]


def _to(role: str, vector: dict[str, Any]) -> bool:
    """Whether ``vector`` is received by ``role`` ("client" or "meter")."""
    direction = vector["direction"]
    return direction == "both" or direction == ("meter->client" if role == "client" else "client->meter")


# --------------------------------------------------------------------------- IEC 62056-21

_IEC_C, _IEC_M = iec.Role.CLIENT, iec.Role.METER
_IDENT = iec.Identification("LGZ", "5", "ZMD3104107.B40", "2")
_READOUT_SETS = (
    iec.DataSet("F.F", ("00000000",)),
    iec.DataSet("0.0.0", ("54800102",)),
    iec.DataSet("1.8.0", ("012345.678",), "kWh"),
    iec.DataSet("32.7.0", ("230.1",), "V"),
    iec.DataSet("0.9.1", ("10:30:00",)),
)
_READOUT = "".join(iec.format_data_set(s) + "\r\n" for s in _READOUT_SETS) + "!\r\n"
_P01_START = iec.ProfileTime(2024, 3, 15, 8, 15, 0, 0)
_P01 = iec.format_profile(
    [
        iec.ProfileBlock(
            "P.01",
            _P01_START,
            "00",
            15,
            (("1.5.0", "kW"), ("2.5.0", "kW")),
            (("0.123", "0.000"), ("0.456", "0.010")),
        ),
        iec.ProfileBlock("P.98", _P01_START, "00", 0, (("0.0.0", ""),), (("0042",),)),
    ]
)
_P01_REQUEST = iec.profile_request("P.01", _P01_START, iec.ProfileTime(2024, 3, 15, 10, 15, 0, 0))

# A conversation that passes through every state; a setup is a prefix of it (or a branch).
_IEC_STEPS: tuple[tuple[iec.Role, iec.Event], ...] = (
    (_IEC_C, iec.SignOnRequest()),
    (_IEC_M, _IDENT),
    (_IEC_C, iec.OptionSelect("0", "5", "1")),
    (_IEC_M, iec.Command("P", "0", "(54800102)")),
    (_IEC_C, iec.Command("P", "1", "(00000000)")),
    (_IEC_M, iec.Ack()),
    (_IEC_C, _P01_REQUEST),
    (_IEC_M, iec.DataMessage(_P01.split("\r\n", 1)[0] + "\r\n", complete=False)),
)
_IEC_SETUPS: tuple[tuple[tuple[iec.Role, iec.Event], ...], ...] = (
    *(_IEC_STEPS[:k] for k in range(len(_IEC_STEPS) + 1)),
    (*_IEC_STEPS[:2], (_IEC_C, iec.OptionSelect("0", "5", "0"))),  # READOUT
    (*_IEC_STEPS[:2], (_IEC_C, iec.OptionSelect("2", "5", "2"))),  # mode E: HDLC
)
_PARITY = bytes(b | 0x80 if bin(b).count("1") % 2 else b for b in range(128)) * 2


@cache
def _iec_setup_wire(index: int) -> tuple[tuple[iec.Role, iec.Event, bytes], ...]:
    """The steps of setup ``index`` with their bytes, from a client and a meter talking."""
    ends = {_IEC_C: iec.Iec21Connection(_IEC_C), _IEC_M: iec.Iec21Connection(_IEC_M)}
    steps = []
    for role, event in _IEC_SETUPS[index]:
        wire = ends[role].send(event)
        receiver = ends[_IEC_M if role is _IEC_C else _IEC_C]
        receiver.receive_data(wire)
        assert receiver.next_event() == event
        steps.append((role, event, wire))
    return tuple(steps)


def _iec_connection(role: iec.Role, index: int, strip: bool, max_message: int) -> iec.Iec21Connection:
    conn = iec.Iec21Connection(role, strip_parity=strip, max_message=max_message)
    for sender, event, wire in _iec_setup_wire(index):
        if sender is role:
            conn.send(event)
        else:
            conn.receive_data(wire)
            got = conn.next_event()
            assert got == event, f"IEC setup step {event!r} parsed as {got!r}"
    return conn


def iec_wire(sender: iec.Role, event: iec.Event) -> bytes:
    """The bytes ``sender``'s core sends for ``event``, in the first setup state that allows it."""
    for index in range(len(_IEC_SETUPS)):
        conn = _iec_connection(sender, index, False, 65536)
        with contextlib.suppress(LocalProtocolError):
            return conn.send(event)
    raise LocalProtocolError(f"no state lets the {sender.value} send {event!r}")


def _iec_reply(role: iec.Role, state: iec.State, rng: random.Random) -> iec.Event | None:
    """What ``role`` sends next in ``state`` (None: nothing, it waits)."""
    s = iec.State
    if role is _IEC_C:
        if state is s.IDENTIFIED:
            return rng.choice(
                (
                    iec.OptionSelect("0", "5", "0"),
                    iec.OptionSelect("0", "5", "1"),
                    iec.OptionSelect("2", "5", "2"),
                )
            )
        if state is s.PROGRAMMING_PASSWORD:
            return iec.Command("P", "1", "(00000000)")
        if state is s.PROGRAMMING:
            return rng.choice((_P01_REQUEST, iec.Command("R", "5", "1.8.0()"), iec.Break))
        if state is s.PARTIAL_BLOCK:
            return rng.choice((iec.Ack(), iec.Nak()))
        if state is s.IDLE and rng.random() < 0.3:
            return iec.SignOnRequest()
        return None
    if state is s.AWAIT_IDENTIFICATION:
        return _IDENT
    if state is s.READOUT:
        return iec.DataMessage(_READOUT)
    if state is s.AWAIT_PASSWORD_PROMPT:
        return iec.Command("P", "0", "(54800102)")
    if state is s.AWAIT_PASSWORD_ACK:
        return rng.choice((iec.Ack(), iec.Nak(), iec.DataMessage("(ERROR)")))
    if state is s.AWAIT_ANSWER:
        return rng.choice((iec.DataMessage(_P01), iec.DataMessage("(ERROR)", complete=False), iec.Ack()))
    return None


def _iec_inspect(role: iec.Role, event: iec.Event, refusals: list[ProtocolError]) -> None:
    """Apply to a received message what a caller of that role applies to it."""
    if isinstance(event, iec.Identification):
        _ = event.reaction_time, event.max_baudrate
    elif isinstance(event, iec.OptionSelect):
        _call(refusals, lambda: event.baudrate)
    elif isinstance(event, iec.DataMessage | iec.Command):
        text = event.data
        for data_set in _call(refusals, iec.parse_data_sets, text) or ():
            _ = data_set.obis, data_set.is_error, data_set.value
            _call(refusals, data_set.number)
        for block in _call(refusals, iec.parse_profile, text) or ():
            _call(refusals, block.row_time, len(block.rows))
        if isinstance(event, iec.Command) and event.command == "R":
            _call(refusals, iec.parse_profile_request, text)


def _drain_iec(
    conn: iec.Iec21Connection,
    rng: random.Random,
    refusals: list[ProtocolError],
    budget: int,
    max_message: int,
) -> None:
    role = conn.role
    for _ in range(budget):
        try:
            event = conn.next_event()
        except RemoteProtocolError as err:
            refusals.append(err)
            continue
        if event is NEED_DATA or isinstance(event, iec.ConnectionClosed):
            # A partial message is shorter than max_message, a partial '/' line than 128 bytes.
            kept = len(conn.trailing_data)
            if conn.state is not iec.State.HDLC and kept >= max(max_message, IEC_MAX_LINE):
                raise BoundExceeded(f"IEC {role.value} keeps {kept} bytes, max_message={max_message}")
            return
        _iec_inspect(role, event, refusals)
        reply = _iec_reply(role, conn.state, rng)
        if reply is not None:
            _call(refusals, conn.send, reply)
    raise Hang(f"IEC {role.value}: next_event() did not run out of events after {budget} calls")


def _run_iec(role: iec.Role) -> Callable[[bytes, random.Random], list[ProtocolError]]:
    def run(data: bytes, rng: random.Random) -> list[ProtocolError]:
        strip = rng.random() < 0.3
        max_message = rng.choice((64, 300, 65536))  # 64: just above the longest setup message
        conn = _iec_connection(role, rng.randrange(len(_IEC_SETUPS)), strip, max_message)
        if strip and rng.random() < 0.5:
            data = data.translate(_PARITY)  # 7E1 characters through a transparent modem
        refusals: list[ProtocolError] = []
        budget = 2 * len(data) + 16
        for piece in chunks(data, rng):
            conn.receive_data(piece)
            _drain_iec(conn, rng, refusals, budget, max_message)
        if conn.state is iec.State.HDLC:  # mode E: the rest belongs to HDLC
            link = hdlc.HdlcConnection(_HDLC_ROLE[role], _CLIENT_ADDRESS, _SERVER_ADDRESS)
            if role is _IEC_C:
                link.connect()
            link.receive_data(conn.trailing_data)
            drain_hdlc(link, rng, refusals, budget)
        elif rng.random() < 0.5:
            conn.receive_data(b"")  # the peer closes the line
            _drain_iec(conn, rng, refusals, budget, max_message)
        return refusals

    return run


@cache
def _iec_own_messages() -> dict[iec.Role, tuple[bytes, ...]]:
    """What each role's core sends in a readout and a programming session, by receiver."""
    sent: dict[iec.Role, list[bytes]] = {_IEC_C: [], _IEC_M: []}  # by receiving role
    client, meter = iec.Iec21Connection(_IEC_C), iec.Iec21Connection(_IEC_M)
    script: list[tuple[iec.Role, iec.Event]] = [
        (_IEC_C, iec.SignOnRequest()),
        (_IEC_M, _IDENT),
        (_IEC_C, iec.OptionSelect("0", "6", "0")),
        (_IEC_M, iec.DataMessage(_READOUT)),
        (_IEC_C, iec.SignOnRequest("54800102")),
        (_IEC_M, iec.Identification("LGz", "6", "ZMD310", "")),
        (_IEC_C, iec.OptionSelect("0", "5", "1")),
        (_IEC_M, iec.Command("P", "0", "(54800102)")),
        (_IEC_C, iec.Command("P", "1", "(12345678)")),
        (_IEC_M, iec.Nak()),
        (_IEC_C, iec.Command("P", "2", "(abcdef)")),
        (_IEC_M, iec.Ack()),
        (_IEC_C, iec.Command("R", "5", "1.8.0()")),
        (_IEC_M, iec.DataMessage("1.8.0(012345.678*kWh)\r\n")),
        (_IEC_C, _P01_REQUEST),
        (_IEC_M, iec.DataMessage(_P01[:40], complete=False)),
        (_IEC_C, iec.Ack()),
        (_IEC_M, iec.DataMessage(_P01)),
        (_IEC_C, iec.Command("W", "2", "0.9.1(10:30:00)")),
        (_IEC_M, iec.Ack()),
        (_IEC_C, iec.Command("R", "5", "9.9.9()")),
        (_IEC_M, iec.DataMessage("(ERROR)")),
        (_IEC_C, iec.Break),
    ]
    for role, event in script:
        wire = (client if role is _IEC_C else meter).send(event)
        receiver = meter if role is _IEC_C else client
        receiver.receive_data(wire)
        assert receiver.next_event() == event
        sent[receiver.role].append(wire)
    sent[_IEC_M].append(b"/?!\r\n\x06252\r\n")  # mode E switch
    return {role: tuple(wires) for role, wires in sent.items()}


def _iec_seeds(role: iec.Role) -> Callable[[], tuple[bytes, ...]]:
    side = "client" if role is _IEC_C else "meter"

    @cache
    def seeds() -> tuple[bytes, ...]:
        real = [
            bytes.fromhex(v["hex"])
            for stem in ("iec62056_21", "real_captures")
            for v in _vectors(stem)
            if _to(side, v)
        ]
        return (*real, *_iec_own_messages()[role])

    return seeds


_SOH_STX = re.compile(rb"[\x01\x02]")
_ETX_EOT = re.compile(rb"[\x03\x04]")


def iec_repair(data: bytes) -> bytes:
    """Recompute the BCC after every SOH/STX ... ETX/EOT block (appended when missing)."""
    out = bytearray(data)
    pos = 0
    while (start := _SOH_STX.search(out, pos)) is not None and (
        end := _ETX_EOT.search(out, start.end())
    ) is not None:
        check_at = end.end()
        value = iec.bcc_span(out, start.end(), check_at)
        if check_at < len(out):
            out[check_at] = value
        else:
            out.append(value)
        pos = check_at + 1
    return bytes(out)


# --------------------------------------------------------------------------- HDLC

_CLIENT_ADDRESS = hdlc.HdlcAddress(16)
_SERVER_ADDRESS = hdlc.HdlcAddress(1, 17, 2)
_HDLC_ROLE = {_IEC_C: hdlc.Role.CLIENT, _IEC_M: hdlc.Role.SERVER}
_LIMITS = (hdlc.HdlcParameters(), hdlc.HdlcParameters(256, 256, 3, 3), hdlc.HdlcParameters(64, 512, 7, 2))


def _pump(a: hdlc.HdlcConnection, b: hdlc.HdlcConnection, frames: list[bytes], log: list[bytes]) -> list[Any]:
    """Deliver ``frames`` from ``a`` to ``b`` and the replies back and forth until quiet."""
    events: list[Any] = []
    pair = (a, b)
    while frames:
        log.extend(frames)
        receiver = pair[1]
        receiver.receive_data(b"".join(frames))
        got = []
        while (event := receiver.next_event()) is not NEED_DATA:
            got.append(event)
        events += got
        frames = [e.reply for e in got if e.reply]
        pair = (pair[1], pair[0])
    return events


def _hdlc_pair(limits: hdlc.HdlcParameters) -> tuple[hdlc.HdlcConnection, hdlc.HdlcConnection]:
    client = hdlc.HdlcConnection(hdlc.Role.CLIENT, _CLIENT_ADDRESS, _SERVER_ADDRESS, limits)
    server = hdlc.HdlcConnection(hdlc.Role.SERVER, _CLIENT_ADDRESS, _SERVER_ADDRESS, limits)
    return client, server


def _hdlc_setup(role: hdlc.Role, index: int) -> hdlc.HdlcConnection:
    """A connection of ``role`` in setup ``index`` (0..7), reached by talking to a real peer."""
    limits = _LIMITS[index % len(_LIMITS)]
    client, server = _hdlc_pair(limits)
    ours = client if role is hdlc.Role.CLIENT else server
    step = index % 8
    if step == 0:  # disconnected
        return ours
    snrm = client.connect()
    if step == 1 and role is hdlc.Role.CLIENT:  # SNRM sent, waiting for UA
        return ours
    log: list[bytes] = []
    _pump(client, server, [snrm], log)
    if step in (2, 3):  # connected, idle
        return ours
    if step == 4:  # connected, a long APDU of ours waits for the peer's RR
        ours.send_data(bytes(range(256)) * 2)
        return ours
    if step == 5:  # connected, the peer's long APDU half received (our RR not answered)
        peer = server if ours is client else client
        first = peer.send_data(bytes(600))
        ours.receive_data(first[0])
        while ours.next_event() is not NEED_DATA:
            pass
        return ours
    if step == 6:  # one request/response done, sequence numbers advanced
        _pump(client, server, client.send_data(b"\xc0\x01\xc1" + bytes(10)), log)
        _pump(server, client, server.send_data(b"\xc4\x01\xc1\x00\x06" + bytes(4)), log)
        return ours
    client.disconnect()  # client: DISC sent; server: still connected
    return ours


def hdlc_connected(role: hdlc.Role) -> hdlc.HdlcConnection:
    """A connection of ``role`` with the link set up (default parameters)."""
    return _hdlc_setup(role, 3)


def _hdlc_inspect(
    conn: hdlc.HdlcConnection, event: Any, rng: random.Random, refusals: list[ProtocolError]
) -> None:
    """React like a DLMS client or meter: answer an APDU, poll, sometimes hang up or restart."""
    roll = rng.random()
    if isinstance(event, hdlc.DataReceived) and roll < 0.5:
        _call(refusals, conn.send_data, b"\xc4\x01\xc1\x00\x06\x00\x00\x00\x01" * rng.randint(1, 40))
    elif roll < 0.05 and conn.role is hdlc.Role.CLIENT:
        _call(refusals, rng.choice((conn.disconnect, conn.connect)))
    elif roll < 0.1:
        _call(refusals, conn.send_data, b"\xc0\x01\xc1")


def drain_hdlc(
    conn: hdlc.HdlcConnection, rng: random.Random, refusals: list[ProtocolError], budget: int
) -> None:
    """Pull events until NEED_DATA, reacting to each; then check what the connection keeps."""
    for _ in range(budget):
        try:
            event = conn.next_event()
        except RemoteProtocolError as err:
            refusals.append(err)
            continue
        if event is NEED_DATA:
            # White-box bound checks: what the parser and the reassembly keep.
            if conn._parser.buffered > HDLC_MAX_BUFFERED:
                raise BoundExceeded(f"HDLC frame parser keeps {conn._parser.buffered} bytes")
            kept = sum(len(part) for part in conn._rx_parts)
            if kept > HDLC_MAX_REASSEMBLED:
                raise BoundExceeded(f"HDLC {conn.role.value} keeps {kept} bytes of a segmented APDU")
            return
        _hdlc_inspect(conn, event, rng, refusals)
    raise Hang(f"HDLC {conn.role.value}: next_event() did not run out of events after {budget} calls")


@cache
def _hdlc_address_pairs() -> tuple[tuple[hdlc.HdlcAddress, hdlc.HdlcAddress], ...]:
    """(client, server) address pairs of the seed frames; ours first."""
    pairs = [(_CLIENT_ADDRESS, _SERVER_ADDRESS)]
    for role in hdlc.Role:
        for wire in _hdlc_seeds(role)():
            parser = hdlc.FrameParser()
            parser.receive_data(wire)
            with contextlib.suppress(RemoteProtocolError):
                frame = parser.next_frame()
                if isinstance(frame, hdlc.Frame):
                    ends = (frame.destination, frame.source)
                    pair = ends if role is hdlc.Role.CLIENT else ends[::-1]
                    if pair not in pairs:
                        pairs.append(pair)
    return tuple(pairs)


def _run_hdlc(role: hdlc.Role) -> Callable[[bytes, random.Random], list[ProtocolError]]:
    def run(data: bytes, rng: random.Random) -> list[ProtocolError]:
        conn = _hdlc_setup(role, rng.randrange(24))
        if rng.random() < 0.25:  # a link to another meter or client address of the corpus
            client, server = rng.choice(_hdlc_address_pairs())
            conn = hdlc.HdlcConnection(role, client, server, conn.limits)
            if role is hdlc.Role.CLIENT and rng.random() < 0.7:
                conn.connect()
        refusals: list[ProtocolError] = []
        budget = 2 * len(data) + 16
        for piece in chunks(data, rng):
            conn.receive_data(piece)
            drain_hdlc(conn, rng, refusals, budget)
        return refusals

    return run


@cache
def _hdlc_own_frames() -> dict[hdlc.Role, tuple[bytes, ...]]:
    """Frames a client and a server core exchange (SNRM/UA, segmented I, RR, DISC ...), by receiver."""
    by_receiver: dict[hdlc.Role, list[bytes]] = {hdlc.Role.CLIENT: [], hdlc.Role.SERVER: []}
    for limits in _LIMITS:
        client, server = _hdlc_pair(limits)
        log: list[bytes] = []  # both directions
        _pump(client, server, [client.connect(limits)], log)
        _pump(client, server, client.send_data(bytes(range(200))), log)
        _pump(server, client, server.send_data(bytes(range(256)) * 3), log)
        _pump(client, server, [client.disconnect()], log)
        _pump(client, server, [client.connect()], log)
        for wire in log:
            parser = hdlc.FrameParser()
            parser.receive_data(wire)
            frame = parser.next_frame()
            assert isinstance(frame, hdlc.Frame)
            receiver = hdlc.Role.SERVER if frame.destination == _SERVER_ADDRESS else hdlc.Role.CLIENT
            by_receiver[receiver].append(wire)
    kinds = hdlc.FrameKind
    for kind, info in (
        (kinds.RNR, b""),
        (kinds.FRMR, b"\x93\x00\x01"),
        (kinds.UI, b"\xe6\xe7\x00\x0f"),
        (kinds.DM, b""),
        (kinds.RR, b""),
    ):
        by_receiver[hdlc.Role.CLIENT].append(
            hdlc.encode_frame(hdlc.Frame(kind, _CLIENT_ADDRESS, _SERVER_ADDRESS, information=info))
        )
        by_receiver[hdlc.Role.SERVER].append(
            hdlc.encode_frame(hdlc.Frame(kind, _SERVER_ADDRESS, _CLIENT_ADDRESS, information=info))
        )
    return {role: tuple(frames) for role, frames in by_receiver.items()}


def _hdlc_seeds(role: hdlc.Role) -> Callable[[], tuple[bytes, ...]]:
    side = "client" if role is hdlc.Role.CLIENT else "meter"

    @cache
    def seeds() -> tuple[bytes, ...]:
        real = [
            bytes.fromhex(v["hex"])
            for stem in ("hdlc", "dlms_ln", "dlms_sn", "dlms_published")
            for v in _vectors(stem)
            if v.get("layer", "hdlc") == "hdlc" and _to(side, v)
        ]
        return (*real, *_hdlc_own_frames()[role])

    return seeds


def hdlc_repair(data: bytes) -> bytes:
    """Make every frame's length field, HCS and FCS right again after a mutation.

    A frame runs from a flag to the flag its length field points at, or else to the next
    flag at least 8 bytes on (the mutation changed its length); its header is read as far
    as the address extension bits allow and the checksums recomputed over what is there.
    """
    out = bytearray()
    pos = 0
    size = len(data)
    while pos < size:
        start = data.find(0x7E, pos)
        if start < 0:
            out += data[pos:]
            break
        out += data[pos : start + 1]
        pos = start + 1
        if start + 3 > size or data[start + 1] == 0x7E or data[start + 1] & 0xF0 != 0xA0:
            continue
        end = start + 1 + ((data[start + 1] & 0x07) << 8 | data[start + 2])
        if not (end < size and data[end] == 0x7E):
            end = data.find(0x7E, start + 8)
            if end < 0:
                end = size
        out += _refit(data[start + 1 : end])
        pos = end
    return bytes(out)


def _refit(body: bytes) -> bytes:
    """One frame body (between the flags) with its length, HCS and FCS recomputed."""
    at = 2
    for _address in range(2):
        width = 1
        while at + width - 1 < len(body) and not body[at + width - 1] & 1 and width < 4:
            width += 1
        at += width
    header = bytearray(body[: at + 1])  # format, addresses, control
    if len(header) < at + 1:
        return body
    rest = body[at + 1 : -2]  # old HCS and information (the old FCS dropped)
    info = rest[2:] if len(rest) > 2 else b""
    length = len(header) + 2 + (len(info) + 2 if info else 0)
    if length > 0x7FF:
        return body
    header[0] = header[0] & 0xF8 | length >> 8
    header[1] = length & 0xFF
    out = bytes(header)
    if info:
        out += hdlc.crc16_x25(out).to_bytes(2, "little") + info
    return out + hdlc.crc16_x25(out).to_bytes(2, "little")


# --------------------------------------------------------------------------- A-XDR


def _run_axdr(data: bytes, rng: random.Random) -> list[ProtocolError]:
    """Decode (whole buffer and at an offset); whatever decodes must re-encode canonically."""
    refusals: list[ProtocolError] = []
    _call(refusals, axdr.decode_data, data, rng.randrange(len(data) + 1))
    value = _call(refusals, axdr.decode_all, data)
    if value is not None:
        _inspect_data(value, refusals)
        raw = axdr.encode_data(value)
        if axdr.decode_all(raw) != value and not _has_nan(value):
            raise AssertionError(f"A-XDR {value!r} does not survive encode -> decode")
    return refusals


def _has_nan(value: axdr.Data) -> bool:
    if isinstance(value.value, tuple):
        return any(_has_nan(item) for item in value.value)
    return isinstance(value.value, float) and value.value != value.value


def _inspect_data(value: axdr.Data, refusals: list[ProtocolError]) -> None:
    """What a caller reads from a decoded value: python form, items, bits, instants."""
    value.to_python()
    _call(refusals, lambda: value.items)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item.value, tuple):
            stack.extend(item.value)
        elif isinstance(item.value, axdr.BitString):
            item.value.bits()
        elif isinstance(item.value, axdr.CosemDateTime):
            _call(refusals, item.value.to_datetime)
        elif (
            item.tag is axdr.DataTag.OCTET_STRING and isinstance(item.value, bytes) and len(item.value) == 12
        ):
            _call(refusals, axdr.CosemDateTime.from_bytes(item.value).to_datetime)


# --------------------------------------------------------------------------- APDUs


def _run_apdu(role: str) -> Callable[[bytes, random.Random], list[ProtocolError]]:
    def run(data: bytes, rng: random.Random) -> list[ProtocolError]:
        refusals: list[ProtocolError] = []
        apdu = _call(refusals, ap.decode_apdu, data)
        if apdu is None:
            return refusals
        again = ap.encode_apdu(apdu)  # a decoded APDU must encode again, to a stable form
        if ap.encode_apdu(ap.decode_apdu(again)) != again:
            raise AssertionError(f"{apdu!r} does not re-encode stably")
        if role == "meter":
            _inspect_request(apdu, refusals)
        else:
            _inspect_response(apdu, refusals)
        return refusals

    return run


def _inspect_access(access: ap.SelectiveAccess | None, refusals: list[ProtocolError]) -> None:
    if access is None:
        return
    if access.selector == 1:
        _call(refusals, ap.RangeDescriptor.from_access, access)
    elif access.selector == 2:
        _call(refusals, ap.EntryDescriptor.from_access, access)
    _inspect_data(access.parameters, refusals)


def _inspect_request(apdu: ap.Apdu, refusals: list[ProtocolError]) -> None:
    """What a meter reads from a request: selective access descriptors, names."""
    if isinstance(apdu, ap.GetRequestNormal):
        _inspect_access(apdu.access, refusals)
    elif isinstance(apdu, ap.GetRequestWithList):
        for item in apdu.items:
            _inspect_access(item.access, refusals)
    elif isinstance(apdu, ap.ReadRequest):
        _ = apdu.variable_names
        for spec in apdu.items:
            if isinstance(spec, ap.ParameterizedAccess):
                _inspect_access(ap.SelectiveAccess(spec.selector, spec.parameter), refusals)


def _inspect_response(apdu: ap.Apdu, refusals: list[ProtocolError]) -> None:
    """What the gateway reads from a response: values, reasons, reassembled blocks."""
    results: tuple[ap.GetResult, ...] = ()
    if isinstance(apdu, ap.GetResponseNormal):
        results = (apdu.result,)
    elif isinstance(apdu, ap.GetResponseWithList | ap.ReadResponse):
        results = apdu.results
    elif isinstance(apdu, ap.GetResponseWithDatablock) and isinstance(apdu.raw_data, bytes):
        _call(refusals, axdr.decode_all, apdu.raw_data)
    elif isinstance(apdu, ap.Aare) and isinstance(apdu.user_information, ap.ConfirmedServiceError):
        _ = apdu.user_information.reason
    elif isinstance(apdu, ap.ConfirmedServiceError):
        _ = apdu.reason
    for result in results:
        if isinstance(result, axdr.Data):
            _inspect_data(result, refusals)


@cache
def _cosem_server_exchange() -> tuple[tuple[bytes, bytes], ...]:
    """(request, answer) APDUs of a session with the simulator's COSEM server."""
    server = _cosem_server()
    server.reset()
    exchange = []
    for request in _own_requests():
        answer = server.handle(request)
        if answer is not None:
            exchange.append((request, answer))
            if isinstance(ap.decode_apdu(answer), ap.GetResponseWithDatablock):
                for block in range(1, 4):  # a few blocks of the transfer
                    request_next = ap.GetRequestNext(block).encode()
                    exchange.append((request_next, server.handle(request_next) or b""))
    return tuple(exchange)


def _obis(a: int, b: int, c: int, d: int, e: int, f: int = 255) -> bytes:
    return bytes((a, b, c, d, e, f))


_CLOCK_LN = _obis(0, 0, 1, 0, 0)
_LP1_LN = _obis(1, 0, 99, 1, 0)
_START = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


_LN, _SN = ap.ApplicationContext.LOGICAL_NAME, ap.ApplicationContext.SHORT_NAME
_AARQ_LN = ap.Aarq(_LN, ap.InitiateRequest(0x001E1D, 0xFFFF)).encode()
_AARQ_LN_256 = ap.Aarq(_LN, ap.InitiateRequest(0x001E1D, 0x0100)).encode()  # answers over 256 bytes in blocks
_AARQ_SN = ap.Aarq(
    _SN, ap.InitiateRequest(0x1C0320, 0x0400), ap.AuthenticationMechanism.LOW, b"00000000"
).encode()
_GET_CLOCK = ap.GetRequestNormal(ap.AttributeDescriptor(8, _CLOCK_LN, 2)).encode()
_GET_LP1 = ap.GetRequestNormal(ap.AttributeDescriptor(7, _LP1_LN, 2)).encode()


@cache
def _own_requests() -> tuple[bytes, ...]:
    """Requests the gateway's encoders produce (LN and SN, with and without security), in session order."""
    span = cosem.range_access(cosem.CLOCK_CAPTURE, _START - timedelta(hours=3), _START)
    with_list = tuple(
        ap.AttributeRequest(ap.AttributeDescriptor(3, _obis(1, 0, c, 7, 0), attr))
        for c in (32, 31, 1, 2)
        for attr in (2, 3)
    )
    requests: list[ap.Apdu] = [
        ap.GetRequestNormal(ap.AttributeDescriptor(3, _obis(1, 0, 1, 8, 0), 2)),
        ap.GetRequestWithList(with_list),
        ap.GetRequestNormal(ap.AttributeDescriptor(7, _LP1_LN, 3)),
        ap.GetRequestNormal(ap.AttributeDescriptor(7, _LP1_LN, 2), span),
        ap.GetRequestNormal(ap.AttributeDescriptor(7, _obis(0, 0, 99, 98, 0), 2), cosem.entry_access(1, 0)),
        ap.GetRequestNormal(ap.AttributeDescriptor(15, _obis(0, 0, 40, 0, 0), 2)),
        ap.Rlrq(0),
    ]
    sn_requests: list[ap.Apdu] = [
        ap.ReadRequest((ap.VariableName(0x0208), ap.VariableName(0x1008), ap.VariableName(0x1010))),
        ap.ReadRequest((ap.ParameterizedAccess(0x3008, 1, span.parameters),)),
        ap.ReadRequest((ap.ParameterizedAccess(0x3208, 2, cosem.entry_access(2, 5).parameters),)),
        ap.ReadRequest((ap.VariableName(0xFA08),)),
        ap.Aarq(_LN, ap.InitiateRequest(0x001E1D, 64), ap.AuthenticationMechanism.LOW, b"wrong"),
        ap.Aarq(_LN, ap.InitiateRequest(0x001E1D, 0x0100, dlms_version=5)),
    ]
    return (
        _AARQ_LN,
        _GET_CLOCK,
        *(r.encode() for r in requests),
        _AARQ_SN,
        *(r.encode() for r in sn_requests),
        _AARQ_LN_256,
        _GET_LP1,
    )


def _apdu_vectors(side: str) -> list[bytes]:
    """APDUs of the vectors received by ``side`` (HDLC frames unwrapped, segments joined)."""
    out = []
    for stem in ("dlms_ln", "dlms_sn", "dlms_published"):
        for vector in _vectors(stem):
            if not _to(side, vector):
                continue
            raw = bytes.fromhex(vector["hex"])
            expect = vector.get("expect") or {}
            if "reassembled_apdu_hex" in expect:
                out.append(bytes.fromhex(expect["reassembled_apdu_hex"]))
            elif vector.get("layer") == "apdu":
                out.append(raw)
            else:
                parser = hdlc.FrameParser()
                parser.receive_data(raw)
                frame = parser.next_frame()
                if isinstance(frame, hdlc.Frame) and frame.kind is hdlc.FrameKind.I and not frame.segmented:
                    out.append(frame.information[3:])
    return out


def _apdu_seeds(side: str) -> Callable[[], tuple[bytes, ...]]:
    @cache
    def seeds() -> tuple[bytes, ...]:
        own = [request if side == "meter" else answer for request, answer in _cosem_server_exchange()]
        return (*_apdu_vectors(side), *own)

    return seeds


# --------------------------------------------------------------------------- COSEM


@cache
def _cosem_server() -> CosemServer:
    """The simulator's COSEM server over a quarter day of physics (the meter role)."""
    physics = MeterPhysics(HouseholdModel(seed=7, disturbances_per_week=0.0), _START, history_days=0.25)
    return CosemServer(physics, lambda: _START, max_pdu=1024)


@cache
def _zones() -> tuple[tzinfo | None, ...]:
    """Meter zones: none (UTC or stated offset), the demo's zone and the extreme offsets."""
    return (None, ZoneInfo("Europe/Vienna"), timezone(timedelta(hours=14)), timezone(timedelta(hours=-12)))


@cache
def _fixture_columns() -> tuple[ap.CaptureObject, ...]:
    return tuple(
        ap.CaptureObject(class_id, obis, 2)
        for class_id, obis in (
            (8, _CLOCK_LN),
            (1, _obis(0, 0, 96, 10, 1)),
            (3, _obis(1, 0, 1, 29, 0)),
            (3, _obis(1, 0, 2, 29, 0)),
        )
    )


def _run_cosem_client(data: bytes, rng: random.Random) -> list[ProtocolError]:
    """Decode one attribute value and interpret it as every COSEM class attribute the gateway reads."""
    refusals: list[ProtocolError] = []
    value = _call(refusals, axdr.decode_all, data)
    if value is None:
        return refusals
    zone = rng.choice(_zones())
    scaler = cosem.ScalerUnit(rng.randint(-128, 127), rng.choice((27, 30, 35, 255)))
    _call(refusals, cosem.ScalerUnit.from_data, value)
    _call(refusals, cosem.scaled, value, scaler)
    _call(refusals, cosem.register_value, value, value, value)
    _call(refusals, cosem.register_value, value, scaler)
    _call(refusals, cosem.clock_time, value)
    _call(refusals, cosem.clock_time, value, default_deviation=rng.choice((-840, -60, 0, 720)))
    _call(refusals, cosem.clock_time, value, zone=zone)
    _call(refusals, cosem.capture_objects, value)
    _call(refusals, cosem.capture_period, value)
    _call(refusals, cosem.event_info, value)
    period = rng.choice((0, 60, 900, 86400))
    _call(refusals, cosem.profile_rows, value, _fixture_columns(), period, zone=zone)
    if value.tag is axdr.DataTag.STRUCTURE and isinstance(value.value, tuple) and len(value.value) == 2:
        columns_data, buffer = value.value  # {capture_objects, buffer}
        columns = _call(refusals, cosem.capture_objects, columns_data)
        if columns is not None:
            scalers = {cosem.logical_name(c): scaler for c in columns}
            _call(refusals, cosem.profile_rows, buffer, columns, period, scalers, zone)
    return refusals


@cache
def _cosem_client_seeds() -> tuple[bytes, ...]:
    """Attribute values from the vectors' and the simulator's responses, and whole profiles."""
    values: list[axdr.Data] = []
    columns: list[axdr.Data] = []
    buffers: list[axdr.Data] = []
    answers = [*_apdu_vectors("client"), *(answer for _request, answer in _cosem_server_exchange())]
    for raw in answers:
        with contextlib.suppress(RemoteProtocolError):
            apdu = ap.decode_apdu(raw)
            if isinstance(apdu, ap.GetResponseNormal | ap.GetResponseWithList | ap.ReadResponse):
                results = (apdu.result,) if isinstance(apdu, ap.GetResponseNormal) else apdu.results
                for result in results:
                    if isinstance(result, axdr.Data):
                        values.append(result)
                        with contextlib.suppress(RemoteProtocolError):
                            cosem.capture_objects(result)
                            columns.append(result)
                        first = result.value[0] if isinstance(result.value, tuple) and result.value else None
                        if result.tag is axdr.DataTag.ARRAY and first and first.tag is axdr.DataTag.STRUCTURE:
                            buffers.append(result)
    for vector in _vectors("dlms_ln"):
        buffer = (vector.get("expect") or {}).get("reassembled_buffer_hex")
        if buffer:
            buffers.append(axdr.decode_all(bytes.fromhex(buffer)))
    fixture_columns = axdr.Data.array([c.to_data() for c in _fixture_columns()])
    profiles = [axdr.Data.structure([fixture_columns, b]) for b in buffers]
    profiles += [axdr.Data.structure([c, b]) for c in columns[:2] for b in buffers[:3]]
    return tuple(dict.fromkeys(axdr.encode_data(v) for v in (*values, *profiles)))


@cache
def _axdr_seeds() -> tuple[bytes, ...]:
    own = [
        axdr.Data.structure(
            [
                axdr.Data.bit_string([True, False, True]),
                axdr.Data.float32(1.5),
                axdr.Data.float64(-0.25),
                axdr.Data.utf8_string("Zähler"),
                axdr.Data.visible_string("LGZ"),
                axdr.Data.bcd(0x42),
                axdr.Data.int64(-(2**40)),
                axdr.Data.uint64(2**60),
                axdr.Data.date(axdr.CosemDate(2026, 3, 10, 2)),
                axdr.Data.time(axdr.CosemTime(9, 0, 0, 0)),
                axdr.Data.date_time(axdr.CosemDateTime.from_datetime(_START)),
                axdr.Data.boolean(True),
                axdr.Data.null(),
                axdr.Data.array([axdr.Data.uint16(n) for n in range(200)]),
            ]
        )
    ]
    return (*_cosem_client_seeds(), *(axdr.encode_data(v) for v in own))


#: Association states of the server: requests that bring a fresh one there.
_SERVER_SETUPS: tuple[tuple[bytes, ...], ...] = ((), (_AARQ_LN,), (_AARQ_SN,), (_AARQ_LN_256, _GET_LP1))


def _run_cosem_server(data: bytes, rng: random.Random) -> list[ProtocolError]:
    """The simulator's COSEM server (the meter role) answers a request in one of four states:
    not associated, LN, SN with LLS, LN in the middle of a block transfer.

    Its answer must decode, and it must still answer a valid request afterwards. What it
    refuses (exception responses, rejected associations, data-access errors, no answer)
    counts as its refusals.
    """
    server = _cosem_server()
    server.reset()
    for request in rng.choice(_SERVER_SETUPS):
        server.handle(request)
    refusals: list[ProtocolError] = []
    answer = _call(refusals, server.handle, data)
    if answer is None:
        refusals.append(RemoteProtocolError("no answer"))
    else:
        _server_refusals(ap.decode_apdu(answer), refusals)
    follow_up = server.handle(_GET_CLOCK)  # the clock (LN) or an exception (SN, none)
    if follow_up is None:
        raise AssertionError("the COSEM server gave no answer to a valid GET")
    ap.decode_apdu(follow_up)
    return refusals


def _server_refusals(answer: ap.Apdu, refusals: list[ProtocolError]) -> None:
    """Record the ways the server said no, by name."""
    results: tuple[ap.GetResult, ...] = ()
    if isinstance(answer, ap.ExceptionResponse):
        refusals.append(RemoteProtocolError(f"{answer.state_error.name} {answer.service_error.name}"))
    elif isinstance(answer, ap.Aare) and answer.result is not ap.AssociationResult.ACCEPTED:
        refusals.append(RemoteProtocolError(f"AARE {answer.result.name} {answer.diagnostic}"))
    elif isinstance(answer, ap.GetResponseNormal):
        results = (answer.result,)
    elif isinstance(answer, ap.GetResponseWithList | ap.ReadResponse):
        results = answer.results
    elif isinstance(answer, ap.GetResponseWithDatablock):
        results = (answer.raw_data,) if isinstance(answer.raw_data, ap.DataAccessResult) else ()
    refusals.extend(RemoteProtocolError(r.name) for r in results if isinstance(r, ap.DataAccessResult))


# --------------------------------------------------------------------------- dictionaries

_CONTROLS = {"<SOH>": "\x01", "<STX>": "\x02", "<ETX>": "\x03", "<EOT>": "\x04", "<ACK>": "\x06"}
_CONTROLS |= {"<NAK>": "\x15", "<CR>": "\r", "<LF>": "\n"}


def _text_words(text: str) -> tuple[bytes, ...]:
    """Space-separated words, control characters written as in the vectors (``<STX>``)."""
    words = []
    for word in text.split():
        for name, char in _CONTROLS.items():
            word = word.replace(name, char)
        words.append(word.encode("ascii"))
    return tuple(words)


def _hex_words(text: str) -> tuple[bytes, ...]:
    return tuple(bytes.fromhex(word) for word in text.split())


_IEC_TOKENS = _text_words(
    r"/?!<CR><LF> /LGZ5\2ZMD <ACK>050<CR><LF> <ACK>051<CR><LF> <ACK>252<CR><LF> <SOH>P0<STX>( <SOH>R5<STX>"
    " <SOH>B0<ETX> <STX> <ETX> <EOT> <ACK> <NAK> <CR><LF> !<CR><LF> (ERROR) P.01( P.98( )( () (;) *kWh)"
    " 1-1: &01 0240315081500 2991231235959"
)
_HDLC_TOKENS = _hex_words(
    "7e 7e7e 7ea0 7ea8 8180 818000 05020800 0604ffffffff 070400000007 080100 e6e600 e6e700"
    " 93 73 53 1f 0f 97 87 13 10 11 15 01 03 32"
)


def _edge_date_times() -> tuple[bytes, ...]:
    """12-byte COSEM date-times at the edges of what a datetime can hold, and wildcards."""
    edges = [
        axdr.CosemDateTime(1, 1, 1, None, 0, 0, 0, 0, None, 0),
        axdr.CosemDateTime(1, 1, 1, None, 0, 0, 0, 0, None, 0x80),
        axdr.CosemDateTime(1, 1, 1, None, 0, 0, 0, 0, 840, 0),
        axdr.CosemDateTime(9999, 12, 31, None, 23, 59, 59, 99, None, 0),
        axdr.CosemDateTime(9999, 12, 31, None, 23, 59, 59, 99, -840, 0x80),
        axdr.CosemDateTime(2024, 2, 29, None, 24, 60, 60, 100, None, None),
        axdr.CosemDateTime(0, 0, 0, 0, 0, 0, 0, 0, 0x7FFF, 0xFE),
        axdr.CosemDateTime(2026, 0xFE, 0xFD, 8, None, None, None, None, None, None),
    ]
    raw = [edge.to_bytes() for edge in edges]
    return (*raw, *(b"\x09\x0c" + r for r in raw), *(b"\x19" + r for r in raw))


_AXDR_TOKENS = (
    *_edge_date_times(),
    *_hex_words(
        "0184ffffffff 0282010000 098180 04840001000000 0c02c328 177fc00001 187ff0000000000000 0f80 16ff 00"
    ),
    b"\x01\x10" + b"\x01\x01" * 8,  # nested to the depth limit
)
_APDU_TOKENS = (
    *_AXDR_TOKENS,
    *_hex_words(
        "84ffffffff 820000 a109060760857405080101 a109060760857405080103 8a020780 8b0760857405080201"
        " ac0a8008 be10040e 5f1f0400 0100000006 080006 a203020100 a305a103020100 c001c1 c003c184"
        " c402c1000000000100 c403c1 050104 0c0100 0e0106 d80106"
    ),
)

# --------------------------------------------------------------------------- the table

_C, _M = hdlc.Role.CLIENT, hdlc.Role.SERVER
_IEC, _HDLC, _APDU = "IEC 62056-21", "HDLC (IEC 62056-46)", "xDLMS APDUs (LN/SN)"

#: Every core in every role it has, by key.
TARGETS: dict[str, Target] = {
    t.key: t
    for t in (
        Target("iec62056-21/client", _IEC, "client (gateway)", _run_iec(_IEC_C), _iec_seeds(_IEC_C),
               iec_repair, _IEC_TOKENS),
        Target("iec62056-21/meter", _IEC, "meter (simulator)", _run_iec(_IEC_M), _iec_seeds(_IEC_M),
               iec_repair, _IEC_TOKENS),
        Target("hdlc/client", _HDLC, "client (gateway)", _run_hdlc(_C), _hdlc_seeds(_C),
               hdlc_repair, _HDLC_TOKENS),
        Target("hdlc/server", _HDLC, "server (meter)", _run_hdlc(_M), _hdlc_seeds(_M),
               hdlc_repair, _HDLC_TOKENS),
        Target("axdr/both", "A-XDR", "both (one codec)", _run_axdr, _axdr_seeds, None, _AXDR_TOKENS),
        Target("apdu/client", _APDU, "client (responses)", _run_apdu("client"), _apdu_seeds("client"),
               None, _APDU_TOKENS),
        Target("apdu/meter", _APDU, "meter (requests)", _run_apdu("meter"), _apdu_seeds("meter"),
               None, _APDU_TOKENS),
        Target("cosem/client", "COSEM", "client (interpretation)", _run_cosem_client, _cosem_client_seeds,
               None, _AXDR_TOKENS),
        Target("cosem/meter", "COSEM", "meter (simulator server)", _run_cosem_server, _apdu_seeds("meter"),
               None, _APDU_TOKENS),
    )
}  # fmt: skip
