"""The alarm journal: every condition notification, appended to a JSON-lines day file
``<archive>/_gateway/alarms/<YYYY-MM-DD>.jsonl`` (meter ids start with a letter, so the
folder is never a meter's). It is the alarms' event history (OPC UA HistoryReadEvents on
the sources, REST) and what restores the retained conditions after a restart.

Each line is one :class:`~gateway.alarms.condition.Notification` as JSON, written with one
``os.write`` and one ``fsync`` (alarms are rare: a handful a day), so a power cut leaves
complete lines and at most one torn last line, which readers skip.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, fields
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.alarms.condition import Notification
from gateway.errors import ArchiveError

log = logging.getLogger(__name__)

FOLDER = Path("_gateway") / "alarms"
_TIMES = {f.name for f in fields(Notification) if "datetime" in str(f.type)}  # every time field
_FIELDS = {f.name for f in fields(Notification)}


def to_json(n: Notification) -> dict[str, Any]:
    """A notification as plain JSON types (EventId as hex, times ISO 8601 UTC)."""
    out: dict[str, Any] = {}
    for key, value in asdict(n).items():
        if key == "event_id":
            value = value.hex()
        elif isinstance(value, datetime):
            value = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
        out[key] = value
    return out


def from_json(data: dict[str, Any]) -> Notification:
    values = {k: v for k, v in data.items() if k in _FIELDS}
    values["event_id"] = bytes.fromhex(values["event_id"])
    for key in _TIMES:
        if values.get(key):
            values[key] = datetime.fromisoformat(values[key])
    return Notification(**values)


class AlarmJournal:
    """Append and read the journal below an archive root (blocking: run in a thread)."""

    def __init__(self, root: Path | str) -> None:
        self.folder = Path(root) / FOLDER

    def path(self, day: date) -> Path:
        return self.folder / f"{day.isoformat()}.jsonl"

    def append(self, n: Notification) -> None:
        line = (json.dumps(to_json(n), ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        path = self.path(n.time.astimezone(UTC).date())
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            created = not path.exists()
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # a torn last line (a power cut) stays a line of its own
                try:
                    if os.write(fd, line) != len(line):
                        raise OSError(28, "short write (disk full?)")
                    os.fsync(fd)
                except OSError:
                    os.ftruncate(fd, size)  # nothing half-written stays behind
                    raise
            finally:
                os.close(fd)
            if created:  # the new file's name lasts too
                dir_fd = os.open(self.folder, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        except OSError as err:
            raise ArchiveError(f"cannot write the alarm journal {path}: {err.strerror or err}") from err

    def days(self) -> list[date]:
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            if name.endswith(".jsonl"):
                try:
                    out.append(date.fromisoformat(name[:-6]))
                except ValueError:
                    continue
        return sorted(out)

    def read(self, start: datetime | None = None, end: datetime | None = None) -> Iterator[Notification]:
        """Notifications with ``start <= time <= end``, in time order; torn lines skipped."""
        for day in self.days():
            if start is not None and day < start.astimezone(UTC).date():
                continue
            if end is not None and day > end.astimezone(UTC).date():
                break
            try:
                data = self.path(day).read_bytes()
            except FileNotFoundError:
                continue
            for raw in data.split(b"\n"):
                if not raw:
                    continue
                try:
                    n = from_json(json.loads(raw))
                except (ValueError, KeyError, TypeError):
                    log.warning("alarm journal %s: a damaged line skipped", self.path(day))
                    continue
                if (start is None or n.time >= start) and (end is None or n.time <= end):
                    yield n

    def latest(self, since: timedelta, now: datetime) -> dict[tuple[str, str], Notification]:
        """The last notification of every condition in the journal's last ``since``."""
        out: dict[tuple[str, str], Notification] = {}
        for n in self.read(now - since):
            out[(n.source, n.condition)] = n
        return out
