"""Meter local time <-> UTC on the daylight-saving change days (Europe/Vienna, 2026)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.localtime import local_to_utc, meter_zone, utc_to_local

VIENNA = meter_zone("Europe/Vienna")


def test_no_zone_means_utc() -> None:
    assert meter_zone("") is None
    assert local_to_utc(datetime(2026, 3, 29, 2, 30), None, True) == datetime(2026, 3, 29, 2, 30, tzinfo=UTC)


def test_unknown_zone_is_refused_with_its_name() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus"):
        meter_zone("Mars/Olympus")


def test_autumn_repeated_hour_is_told_apart_by_the_flag() -> None:
    # 2026-10-25 03:00 CEST -> 02:00 CET: local 02:30 happens twice.
    summer = local_to_utc(datetime(2026, 10, 25, 2, 30), VIENNA, True)
    normal = local_to_utc(datetime(2026, 10, 25, 2, 30), VIENNA, False)
    assert summer == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert normal == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    # Without a flag the first occurrence (summer time) is taken.
    assert local_to_utc(datetime(2026, 10, 25, 2, 30), VIENNA, None) == summer


def test_spring_gap_and_ordinary_times() -> None:
    # 2026-03-29 02:00 CET -> 03:00 CEST: local 02:30 never happens on the wall clock.
    assert local_to_utc(datetime(2026, 3, 29, 1, 45), VIENNA, False) == datetime(
        2026, 3, 29, 0, 45, tzinfo=UTC
    )
    assert local_to_utc(datetime(2026, 3, 29, 3, 0), VIENNA, True) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert local_to_utc(datetime(2026, 7, 1, 12, 0), VIENNA, None) == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
    assert local_to_utc(datetime(2026, 1, 1, 12, 0), VIENNA, None) == datetime(2026, 1, 1, 11, 0, tzinfo=UTC)


def test_the_utc_day_of_a_change_day_has_96_distinct_quarter_hours_in_local_time() -> None:
    for day in (datetime(2026, 3, 29, tzinfo=UTC), datetime(2026, 10, 25, tzinfo=UTC)):
        ends = [day + timedelta(minutes=15 * (k + 1)) for k in range(96)]
        stamps = [utc_to_local(t, VIENNA) for t in ends]
        assert len(set(stamps)) == 96  # the flag keeps the repeated hour apart
        assert [local_to_utc(local, VIENNA, dst) for local, dst in stamps] == ends


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 31)))
def test_round_trip_through_local_time_with_flag(naive: datetime) -> None:
    moment = naive.replace(tzinfo=UTC)
    local, dst = utc_to_local(moment, VIENNA)
    assert local_to_utc(local, VIENNA, dst) == moment
