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
from gateway.obis import ObisInfo

MINUTE = timedelta(minutes=1)
STREAM = "minute"


@dataclass(slots=True)
class _Accumulator:
    total: float = 0.0
    minimum: float = float("inf")
    maximum: float = float("-inf")
    count: int = 0
    last_time: datetime | None = None

    def add(self, value: float) -> None:
        self.total += value
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)
        self.count += 1

    def values(self) -> tuple[float | None, ...]:
        if not self.count:
            return (None, None, None, 0.0)
        return (self.total / self.count, self.minimum, self.maximum, float(self.count))


def _minute_of(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


class MinuteAggregator:
    """Folds the 1-second readings of ``objects`` into one record per UTC minute."""

    def __init__(self, objects: Sequence[ObisInfo]) -> None:
        self.objects = tuple(objects)
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
        self._minute: datetime | None = None
        self._acc = {info.obis: _Accumulator() for info in self.objects}
        self._seen: dict[object, datetime] = {}

    def add(self, snapshot: Snapshot) -> list[Record]:
        """Take a snapshot's new Good readings; return the records of minutes now complete."""
        done: list[Record] = []
        fresh = []
        for info in self.objects:
            reading = snapshot.readings.get(info.obis)
            if reading is None or reading.quality is not Quality.GOOD:
                continue
            if reading.value is None or reading.source_time is None:
                continue
            if self._seen.get(info.obis) == reading.source_time:
                continue  # not read again since the last snapshot
            self._seen[info.obis] = reading.source_time
            fresh.append((reading.source_time, info.obis, reading.value))
        # In the order they were read: a cycle that straddles a minute fills both.
        for source_time, obis, value in sorted(fresh, key=lambda f: f[0]):
            minute = _minute_of(source_time)
            if self._minute is not None and minute < self._minute:
                continue  # late sample of a minute already written: dropped, never rewritten
            if self._minute is not None and minute > self._minute:
                done += self._close()
            self._minute = minute
            self._acc[obis].add(value)
        # A minute is over once the gateway's own clock has passed it, even if the meter
        # went silent in the middle of it.
        if self._minute is not None and _minute_of(snapshot.time) > self._minute:
            done += self._close()
        return done

    def flush(self) -> list[Record]:
        """The record of the minute in progress (at shutdown); it is incomplete, but true."""
        return self._close()

    def _close(self) -> list[Record]:
        minute, self._minute = self._minute, None
        if minute is None or not any(a.count for a in self._acc.values()):
            return []
        values = tuple(v for info in self.objects for v in self._acc[info.obis].values())
        self._acc = {info.obis: _Accumulator() for info in self.objects}
        return [Record(minute, 0, values)]
