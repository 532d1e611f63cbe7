"""The streams: what a meter gives over time, declared once (DESIGN §5).

A *stream* is a series of records with one meaning: the gateway's minute records of the
1-second values, its register samples, the meter's load profiles and event log, the
notified profiles of the market. Every room reads this table instead of spelling the
names itself:

* the **meter sessions** find what to ask the meter for: the IEC 62056-21 data set of
  a readout (``P.01``, IEC 62056-21 §6.5 / DESIGN §3) or the DLMS/COSEM logical name of
  its profile generic object (``1-0:99.1.0``, IEC 62056-6-1 / DLMS Blue Book);
* the **poller** schedules the readouts (which ones, in what pieces);
* the **archive** names the folder of the day files (:attr:`Stream.id`) and how long it
  keeps them;
* the **history** knows what an archived sample means (:class:`Shape`, OPC 10000-13
  aggregates) and how it holds between samples (stepped or interpolated, OPC 10000-11
  §5.2.2);
* the **OPC UA address space** puts a profile below its object (``LoadProfile1``).

A profile's capture period is the meter's own (the meter says it with every readout:
IEC 62056-21 ``P.01`` header, COSEM capture_period attribute 4); :attr:`Stream.period` is
only what the gateway assumes until the meter or the archive has told it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta

from gateway.obis import LOAD_PROFILE_1, LOAD_PROFILE_2, Obis, ObisInfo, Refresh, lookup


class StreamId(enum.StrEnum):
    """The name of a stream: also its archive folder and the id other rooms key on."""

    MINUTE = "minute"
    REGISTERS = "registers"
    LOAD_PROFILE_1 = "lp1"
    LOAD_PROFILE_2 = "lp2"
    EVENTS = "events"
    NOTIFIED = "notified"
    QUALITY = "pq10"
    QUALITY_WEEKS = "pq-week"


class Origin(enum.Enum):
    """Where a stream's records come from."""

    #: Folded by the gateway from what it reads every second (minute records, registers).
    GATEWAY = "gateway"
    #: A load profile of the meter, read out in time ranges (the meter is the primary,
    #: metrological source: gaps are filled from it after an outage).
    PROFILE = "profile"
    #: The meter's event log, read out in time ranges.
    EVENT_LOG = "event-log"
    #: Written by the market services (notified profiles).
    MARKET = "market"
    #: Reports the gateway writes whole, one file per period (EN 50160 weeks).
    REPORT = "report"


class Shape(enum.Enum):
    """What an archived sample stands for, which decides how it aggregates (OPC 10000-13).

    * ``MINUTE`` - a minute record of a 1-second value: mean, minimum, maximum and number
      of the minute's samples, stamped at the minute's start, covering ``[t, t + 60 s)``.
    * ``PERIOD`` - a load-profile value: the energy (or mean) of the capture period that
      *ends* at ``t``, covering ``[t - period, t)``; it holds for its whole period
      (stepped).
    * ``POINT`` - a register sample: the counter's value at ``t``, covering no time.
    """

    MINUTE = "minute"
    PERIOD = "period"
    POINT = "point"

    @property
    def stepped(self) -> bool:
        """Whether the value holds until the next sample (OPC 10000-11 §5.2.2 Stepped)."""
        return self is Shape.PERIOD


@dataclass(frozen=True, slots=True)
class Stream:
    """One row of the table."""

    id: StreamId
    origin: Origin
    #: Days of day files kept by default (``[archive] keep_days`` overrides).
    keep_days: int
    #: How its samples aggregate; None: not a series of values (events, notified profiles).
    shape: Shape | None = None
    #: The IEC 62056-21 data set of the readout (``P.01``), and the DLMS/COSEM logical name
    #: of its profile generic object.
    iec: str = ""
    cosem: Obis | None = None
    #: The object below the meter in the OPC UA address space (``LoadProfile1``).
    folder: str = ""
    #: The channels the gateway publishes (values of the meter's profile matched by OBIS).
    channels: tuple[ObisInfo, ...] = ()
    #: The capture period assumed until the meter's own is known.
    period: timedelta | None = None
    #: Readouts: the span of the first piece read in one cycle, and the longest.
    piece: tuple[timedelta, timedelta] = (timedelta(0), timedelta(0))

    @property
    def readout(self) -> bool:
        """Read out of the meter in time ranges (profiles, event log)."""
        return self.origin in (Origin.PROFILE, Origin.EVENT_LOG)


_QUARTER_HOUR = timedelta(minutes=15)
_HOUR = timedelta(hours=1)
_DAYS = (timedelta(days=1), timedelta(days=1))


def _profile(sid: StreamId, iec: str, cosem: Obis, folder: str, channels: tuple[ObisInfo, ...]) -> Stream:
    """A load profile: 15-minute periods until the meter says otherwise, read an hour at a time."""
    pieces = (_HOUR, 2 * _HOUR)
    return Stream(sid, Origin.PROFILE, 731, Shape.PERIOD, iec, cosem, folder, channels, _QUARTER_HOUR, pieces)


#: Every stream. Minute records and register samples are the gateway's own and bulky;
#: profiles and events are the meter's billing data, kept two years (a year of 15-minute
#: LP1 is about 3.5 MB). The event log is sparse, so its readout pieces are long.
STREAMS: tuple[Stream, ...] = (
    Stream(StreamId.MINUTE, Origin.GATEWAY, 100, Shape.MINUTE),
    Stream(StreamId.REGISTERS, Origin.GATEWAY, 100, Shape.POINT),
    _profile(StreamId.LOAD_PROFILE_1, "P.01", Obis(1, 0, 99, 1, 0), "LoadProfile1", LOAD_PROFILE_1),
    _profile(StreamId.LOAD_PROFILE_2, "P.02", Obis(1, 0, 99, 2, 0), "LoadProfile2", LOAD_PROFILE_2),
    Stream(
        StreamId.EVENTS, Origin.EVENT_LOG, 731, None, "P.98", Obis(0, 0, 99, 98, 0), "EventLog", piece=_DAYS
    ),
    Stream(StreamId.NOTIFIED, Origin.MARKET, 731),
    # EN 50160's 10-minute voltage and 10-second frequency aggregates (gateway/quality):
    # the frequency criterion is judged over a year, so a year and a bit is kept.
    Stream(StreamId.QUALITY, Origin.GATEWAY, 400),
    Stream(StreamId.QUALITY_WEEKS, Origin.REPORT, 731),
)

_BY_ID = {s.id: s for s in STREAMS}
#: The meter's load profiles, in table order.
PROFILES: tuple[Stream, ...] = tuple(s for s in STREAMS if s.origin is Origin.PROFILE)
#: Everything read out of the meter in ranges: the profiles and the event log.
READOUTS: tuple[Stream, ...] = tuple(s for s in STREAMS if s.readout)
EVENT_LOG: Stream = next(s for s in STREAMS if s.origin is Origin.EVENT_LOG)


def stream(stream_id: StreamId | str) -> Stream:
    """The table row of ``stream_id`` (KeyError naming the known ones if there is none)."""
    try:
        return _BY_ID[StreamId(stream_id)]
    except ValueError:
        known = ", ".join(s.id for s in STREAMS)
        raise KeyError(f"no stream {stream_id!r} (known: {known})") from None


def value_stream(info: ObisInfo) -> StreamId:
    """Where the history of a value the poller reads is kept: an energy register's samples,
    or the minute records of a 1-second value."""
    return StreamId.REGISTERS if info.refresh is Refresh.REGISTER else StreamId.MINUTE


def history_stream(obis: Obis) -> StreamId | None:
    """The stream that keeps the history of ``obis``: a catalogue value's (see
    :func:`value_stream`) or the load profile that has it as a channel; None: none does."""
    info = lookup(obis)
    if info is not None and info.obis == obis:
        return value_stream(info)
    return next((p.id for p in PROFILES if any(c.obis == obis for c in p.channels)), None)
