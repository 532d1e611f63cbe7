"""Durable notified profiles: one CSV file per delivery day, replaced only whole.

``<root>/<meter>/notified/<delivery day>.csv``, in the archive's conventions (README
"Archive and history") so a person or a spreadsheet reads it as it is::

    # smx-archive 1 stream=notified meter=meter1
    # delivery day 2026-06-02 (Europe/Vienna), 96 periods of 15 min, net import energy per period (kWh)
    time,status,1-0:16.29.0 [kWh]
    2026-06-01T22:00:00Z,1,0.25
    2026-06-01T22:15:00Z,2,0.25

``time`` is the period's start (UTC), ``status`` its number in the day, the value the
notified net import energy (negative: net export). Unlike the meter's streams the file
is named by the market's *delivery day* (local), as a notification is one whole day.

A profile is written to a temporary file, synced, and renamed over the day's file (then
the directory is synced): after a power cut the day holds the old profile or the new
one, never a mix. A replaced profile is kept beside it as ``<day>.csv.replaced-<n>`` for
the audit trail. :class:`ExternalStore` keeps the latest external values the same way.
Synchronous file code: the async adapters run it in a worker thread.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from pathlib import Path

from gateway.archive.files import day_file, file_day
from gateway.errors import ArchiveError
from gateway.files import replace_file
from gateway.market.external import ExternalValue
from gateway.market.periods import MarketCalendar
from gateway.market.profiles import NotifiedProfile
from gateway.streams import StreamId

STREAM = StreamId.NOTIFIED
#: Net active energy per period, import minus export (OBIS C=16 sum active, D=29 per period).
COLUMN = "1-0:16.29.0 [kWh]"


class ProfileStore:
    """The notified profiles of one meter (one delivery point)."""

    def __init__(self, root: Path | str, meter_id: str, calendar: MarketCalendar, zone_name: str) -> None:
        self.folder = Path(root) / meter_id / STREAM
        self.meter_id = meter_id
        self.calendar = calendar
        self.zone_name = zone_name

    def path(self, day: date) -> Path:
        return self.folder / day_file(day)

    def days(self) -> list[date]:
        """Delivery days with a profile, oldest first."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        return sorted(d for d in map(file_day, names) if d is not None)

    def save(self, profile: NotifiedProfile, registered: datetime) -> None:
        """Write ``profile`` whole (validated already: :func:`~gateway.market.profiles.make_profile`)."""
        periods = self.calendar.periods(profile.day)
        if len(periods) != len(profile.energy_kwh) or profile.period_minutes != self.calendar.period_minutes:
            raise ValueError(f"profile for {profile.day} does not match the market's periods")
        lines = [
            f"# smx-archive 1 stream={STREAM} meter={self.meter_id}",
            f"# delivery day {profile.day} ({self.zone_name}), {len(periods)} periods of "
            f"{profile.period_minutes} min, net import energy per period (kWh); "
            f"registered {registered.astimezone(UTC).replace(tzinfo=None).isoformat()}Z",
            f"time,status,{COLUMN}",
            *(
                f"{p.start.replace(tzinfo=None).isoformat()}Z,{p.number},{value!r}"
                for p, value in zip(periods, profile.energy_kwh, strict=True)
            ),
        ]
        data = ("\n".join(lines) + "\n").encode("ascii")
        target = self.path(profile.day)

        def keep_the_old_one() -> None:
            if target.exists():
                os.link(target, self._aside(target))  # the replaced profile stays for the audit

        try:
            replace_file(target, data, before_replace=keep_the_old_one)
        except OSError as err:
            raise ArchiveError(f"cannot store the profile of {profile.day}: {err.strerror or err}") from err

    @staticmethod
    def _aside(path: Path) -> Path:
        n = 1
        while (aside := path.with_name(f"{path.name}.replaced-{n}")).exists():
            n += 1
        return aside

    def load(self, day: date) -> NotifiedProfile | None:
        """The profile of ``day``, or None if none was notified."""
        try:
            text = self.path(day).read_text(encoding="ascii")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as err:
            raise ArchiveError(f"cannot read the profile of {day}: {err}") from err
        values = []
        for line in text.splitlines():
            if not line or line.startswith(("#", "time,")):
                continue
            try:
                values.append(float(line.split(",")[2]))
            except (IndexError, ValueError) as err:
                raise ArchiveError(f"{self.path(day)}: unreadable line {line!r}") from err
        if len(values) != self.calendar.periods_in(day):
            raise ArchiveError(
                f"{self.path(day)}: {len(values)} values for {self.calendar.periods_in(day)} periods"
            )
        return NotifiedProfile(day, self.calendar.period_minutes, tuple(values))


class ExternalStore:
    """The latest external values, kept across a restart in one small JSON file.

    ``<root>/external.json``, replaced whole (temporary file, fsync, rename): after a power
    cut it holds the values before or after the last change, never a torn mix. A pushed
    value (REST PUT, OPC UA write) is otherwise gone until the next push.
    """

    def __init__(self, root: Path | str) -> None:
        self.path = Path(root) / "external.json"

    def load(self) -> list[ExternalValue]:
        """The saved values; an unreadable file is an ArchiveError naming it."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return [
                ExternalValue(
                    name, float(v["value"]), _time(v["time"]), _time(v["received"]), str(v["origin"])
                )
                for name, v in data.items()
            ]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise ArchiveError(f"{self.path}: unreadable external values: {err}") from err

    def save(self, values: list[ExternalValue]) -> None:
        data = {
            v.name: {"value": v.value, "time": _iso(v.time), "received": _iso(v.received), "origin": v.origin}
            for v in values
        }
        try:
            replace_file(self.path, json.dumps(data, indent=1).encode("utf-8"))
        except OSError as err:
            raise ArchiveError(f"cannot keep the external values: {err.strerror or err}") from err


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def _time(text: str) -> datetime:
    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        raise ValueError(f"time without offset: {text!r}")
    return t
