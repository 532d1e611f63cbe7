"""The EN 50160 weeks of every meter for the adapters (OPC UA ``PowerQuality``, REST, the
report page), and each completed week written to the archive as CSV
(``<meter>/pq-week/<Monday>.csv``, gateway/archive/quality.py).

The numbers come from the archive's ``pq10`` records and event log (what survives a
restart), plus the recorder's 10-minute interval still open for the running week.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import timedelta, tzinfo

from gateway.archive.quality import week_from_archive, weeks, write_week
from gateway.archive.recorder import ArchiveRecorder
from gateway.clock import Clock
from gateway.errors import ArchiveError
from gateway.quality.en50160 import WeekReport

log = logging.getLogger(__name__)

#: Seconds between looks for a completed week whose report is not yet written.
CHECK_S = 600.0
#: How long after its end a week is written (the event log is read every 15 minutes).
GRACE = timedelta(hours=1)


class PowerQuality:
    """EN 50160 statistics per meter and week (see the module's docstring)."""

    def __init__(
        self, recorders: Mapping[str, ArchiveRecorder], zones: Mapping[str, tzinfo | None], clock: Clock
    ) -> None:
        self.recorders = recorders
        self.zones = zones
        self.clock = clock

    def meters(self) -> list[str]:
        return list(self.recorders)

    async def week(self, meter_id: str, last: bool = False) -> WeekReport:
        """The running week (``last`` False) or the last complete one; KeyError for a meter
        without an archive."""
        recorder = self.recorders[meter_id]
        running, previous = weeks(self.clock.now(), self.zones.get(meter_id))
        start, end = previous if last else running
        live = None if last or recorder.quality is None else recorder.quality.flush()
        return await asyncio.to_thread(week_from_archive, recorder.archive.reader, start, end, live)

    async def write_completed(self) -> list[str]:
        """Write the last complete week's CSV of every meter that lacks it, once the week has
        been over for :data:`GRACE` and the recorder has written what it holds (the last
        10-minute record, events read late); the paths written."""
        written = []
        for mid, recorder in self.recorders.items():
            _running, (start, end) = weeks(self.clock.now(), self.zones.get(mid))
            if self.clock.now() < end + GRACE or not recorder.idle.is_set():
                continue
            monday = start.astimezone(self.zones.get(mid)).date() if self.zones.get(mid) else start.date()
            reader = recorder.archive.reader
            path = reader.stream_dir("pq-week") / f"{monday.isoformat()}.csv"
            if await asyncio.to_thread(path.exists):
                continue
            try:
                report = await self.week(mid, last=True)
                if report.valid == 0:
                    continue  # the gateway did not run that week: nothing to report
                written.append(await asyncio.to_thread(write_week, reader, report, monday))
            except (OSError, ArchiveError) as err:  # tried again at the next look; the others go on
                log.error("power quality of %s: cannot write the week's report: %s", mid, err)
        return written

    async def run(self) -> None:
        """Write each completed week's report, looking every :data:`CHECK_S`."""
        while True:
            for path in await self.write_completed():
                log.info("EN 50160 report of the last week written to %s", path)
            await self.clock.sleep(CHECK_S)
