"""Meter local time <-> UTC, across daylight-saving changes.

Many meters keep local time: IEC 62056-21 profile stamps carry a season digit (0 normal
time, 1 summer time, 2 UTC; IEC 62056-21 Annex / DIN 43863-3 practice) and a DLMS
date-time may leave its deviation unspecified and say only "daylight saving active" in
its clock status (Blue Book, class 8 date-time). Everything inside the gateway is UTC
(DESIGN §5), so such a stamp is converted with the meter's configured zone (IANA name,
``timezone`` in the meter's configuration).

The season / DST flag is what makes the autumn change day readable: local 02:30 occurs
twice and only the flag tells which. When a meter gives no flag, the first occurrence
(summer time) is taken, as zoneinfo does with ``fold=0``. In the spring gap (local 02:30
never happens) a stamp with a flag is still converted by that flag's offset.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_HOUR = timedelta(hours=1)


def meter_zone(name: str) -> tzinfo | None:
    """The zone of a configured name ("" = the meter keeps UTC / states its offset)."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ValueError(f"unknown time zone {name!r} (an IANA name like 'Europe/Vienna')") from err


def _dst_amount(zone: tzinfo, naive: datetime) -> timedelta:
    """How far the zone's summer time is ahead of its normal time around ``naive``."""
    for probe in (naive, datetime(naive.year, 7, 1), datetime(naive.year, 1, 1)):
        for fold in (0, 1):
            amount = zone.dst(probe.replace(fold=fold))
            if amount:
                return amount
    return _HOUR


def local_to_utc(naive: datetime, zone: tzinfo | None, dst: bool | None = None) -> datetime:
    """A meter's local wall time as an aware UTC instant.

    ``dst``: the meter's own flag (True summer time, False normal time, None not given).
    Without a zone the stamp is taken as UTC already.
    """
    if naive.tzinfo is not None:
        return naive.astimezone(UTC)
    if zone is None:
        return naive.replace(tzinfo=UTC)
    if dst is None:
        return naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    first = naive.replace(tzinfo=zone, fold=0)
    offset = first.utcoffset()
    summer = first.dst()
    assert offset is not None  # a ZoneInfo always answers
    normal = offset - (summer or timedelta(0))
    return (naive - normal - (_dst_amount(zone, naive) if dst else timedelta(0))).replace(tzinfo=UTC)


def utc_to_local(moment: datetime, zone: tzinfo | None) -> tuple[datetime, bool]:
    """An aware instant as the meter's naive local wall time and its DST flag."""
    if zone is None:
        return moment.astimezone(UTC).replace(tzinfo=None), False
    local = moment.astimezone(zone)
    return local.replace(tzinfo=None), bool(local.dst())
