"""Minute records of the 1-second values (DESIGN §5): mean, minimum, maximum and count.

A :class:`MinuteAggregator` is fed every published :class:`~gateway.meter.model.Snapshot`
and hands back the record of each minute once the minute is over. Each reading is
counted once, by its SourceTimestamp (a value not read again in a cycle keeps its old time
stamp and is not counted twice), in the UTC minute of that time stamp; only Good readings
count, so a minute the meter was lost for has fewer samples, and its ``count`` says so.
A minute without any sample produces no record: absence is the honest answer.

The record's time is the minute's start (the interval's start, as OPC UA aggregates are
stamped); per value the columns are ``mean``, ``min``, ``max`` (in the value's unit) and
``count``. Pure computation: the caller writes the records with the archive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.archive.files import Column, Record
from gateway.meter.model import Quality, Snapshot
from gateway.obis import Obis, ObisInfo
from gateway.streams import StreamId

MINUTE = timedelta(minutes=1)
STREAM = StreamId.MINUTE


@dataclass(slots=True)
class _Accumulator:
    total: float = 0.0
    minimum: float = float("inf")
    maximum: float = float("-inf")
    count: int = 0
    last_time: datetime | None = None

    def add(self, value: float) -> None:
        self.total += value
        if value < self.minimum:
            self.minimum = value
        if value > self.maximum:
            self.maximum = value
        self.count += 1

    def values(self) -> tuple[float | None, ...]:
        if not self.count:
            return (None, None, None, 0.0)
        return (self.total / self.count, self.minimum, self.maximum, float(self.count))


def _fresh(
    snapshot: Snapshot, keys: Sequence[Obis], seen: list[datetime | None]
) -> list[tuple[datetime, int, float]]:
    """(SourceTimestamp, position, value) of the Good readings of ``keys`` read since the
    last snapshot; ``seen`` remembers each one's last time stamp (updated here)."""
    fresh: list[tuple[datetime, int, float]] = []
    readings = snapshot.readings
    for n, obis in enumerate(keys):
        reading = readings.get(obis)
        if reading is None or reading.quality is not Quality.GOOD:
            continue
        value, stamp = reading.value, reading.source_time
        if value is None or stamp is None or seen[n] == stamp:
            continue  # no value, or not read again since the last snapshot
        seen[n] = stamp
        fresh.append((stamp, n, value))
    return fresh


def _minute_of(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


class _PerMinute:
    """What both folders share: each new Good reading once, in read order, into the UTC
    minute of its SourceTimestamp; a minute is handed over when a later one starts or the
    gateway's clock has passed it. Late samples of a minute already handed over are
    dropped, never rewritten."""

    def __init__(self, objects: Sequence[ObisInfo]) -> None:
        self.objects = tuple(objects)
        self._minute: datetime | None = None
        # Lists by position, not dicts by OBIS: this runs every second for every value on
        # a slow core, and an Obis hash is a tuple hash each time.
        self._keys = tuple(info.obis for info in self.objects)
        self._seen: list[datetime | None] = [None] * len(self.objects)

    def add(self, snapshot: Snapshot) -> list[Record]:
        """Take a snapshot's new Good readings; return the records of minutes now complete."""
        done: list[Record] = []
        fresh = _fresh(snapshot, self._keys, self._seen)
        if len(fresh) > 1 and any(f[0] != fresh[0][0] for f in fresh):
            fresh.sort(key=lambda f: f[0])  # in read order: a cycle across a minute fills both
        stamp_of_minute: datetime | None = None
        minute = self._minute
        for stamp, n, value in fresh:
            if stamp is not stamp_of_minute:
                stamp_of_minute, minute = stamp, _minute_of(stamp)
            assert minute is not None
            if self._minute is not None and minute < self._minute:
                continue
            if self._minute is not None and minute > self._minute:
                done += self._hand_over()
            self._minute = minute
            self._take(n, stamp, value)
        # A minute is over once the gateway's own clock has passed it, even if the meter
        # went silent in the middle of it.
        if self._minute is not None and _minute_of(snapshot.time) > self._minute:
            done += self._hand_over()
        return done

    def flush(self) -> list[Record]:
        """The record of the minute in progress (at shutdown); it is incomplete, but true."""
        return self._hand_over()

    def _hand_over(self) -> list[Record]:
        minute, self._minute = self._minute, None
        return [] if minute is None else self._records(minute)

    def _take(self, n: int, stamp: datetime, value: float) -> None:
        raise NotImplementedError

    def _records(self, minute: datetime) -> list[Record]:
        raise NotImplementedError


class MinuteAggregator(_PerMinute):
    """Folds the 1-second readings of ``objects`` into one record per UTC minute."""

    def __init__(self, objects: Sequence[ObisInfo]) -> None:
        super().__init__(objects)
        self.columns = tuple(
            Column(str(info.obis), unit, qualifier)
            for info in self.objects
            for qualifier, unit in (
                ("mean", info.unit),
                ("min", info.unit),
                ("max", info.unit),
                ("count", ""),
            )
        )
        self._acc = [_Accumulator() for _ in self.objects]

    def _take(self, n: int, stamp: datetime, value: float) -> None:
        self._acc[n].add(value)

    def _records(self, minute: datetime) -> list[Record]:
        if not any(a.count for a in self._acc):
            return []
        values = tuple(v for acc in self._acc for v in acc.values())
        self._acc = [_Accumulator() for _ in self.objects]
        return [Record(minute, 0, values)]


REGISTER_STREAM = StreamId.REGISTERS


class RegisterSampler(_PerMinute):
    """Samples of the energy registers, at most one per register and UTC minute.

    A register is a counter: its history is the value at known instants, not a mean.
    Per minute the newest Good read of each register is kept with its own
    SourceTimestamp; when the minute is over, reads taken together (one batch request)
    share one line and reads taken apart (one register per cycle) get a line each, with
    the other cells empty. So the archive holds true (time, value) pairs, and an
    interval's energy is their difference (Delta, DeltaBounds).
    """

    def __init__(self, objects: Sequence[ObisInfo]) -> None:
        super().__init__(objects)
        self.columns = tuple(Column(str(info.obis), info.unit) for info in self.objects)
        self._latest: dict[int, tuple[datetime, float]] = {}

    def _take(self, n: int, stamp: datetime, value: float) -> None:
        self._latest[n] = (stamp, value)

    def _records(self, minute: datetime) -> list[Record]:
        latest, self._latest = self._latest, {}
        lines: dict[datetime, list[float | None]] = {}
        for n, (t, value) in latest.items():
            lines.setdefault(t, [None] * len(self.objects))[n] = value
        return [Record(t, 0, tuple(values)) for t, values in sorted(lines.items())]
