"""Soak (issue 7): a simulated week of the whole gateway on a fast clock, faults sprinkled in.

``tests/support/soak.py`` runs the demo gateway (in-process simulated meter, DLMS LN at 9600 Bd,
archive, OPC UA, web) on a virtual-time loop from Wednesday 2026-03-25 (the week crosses
the change to summer time) with seven faults: the meter silent, the line cut for 30 min
and for 3 h, corrupted and exception answers, the meter's clock set back. Here the poller
runs a 60-second cycle so that the week takes about a minute and a half of CPU; ``python -m
bench soak`` runs the real 1-second cycle. Its files are on a RAM disk where there is one
(:func:`~tests.support.soak.soak_folder`). Virtual time makes it indifferent to the CPU
it gets: it runs in the parallel part of ``make test``, beside the other files.
"""

from __future__ import annotations

import pytest

from tests.support.harness import shared_pki
from tests.support.soak import FAULTS, SoakResult, run_soak, soak_folder


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> SoakResult:
    with soak_folder(tmp_path_factory.mktemp("soak")) as work:
        return run_soak(work, days=7.0, cycle_s=60.0, node_cache=str(shared_pki() / "node-cache"))


def test_the_gateway_runs_the_week_through_every_fault(week: SoakResult) -> None:
    assert week.gateway_alive
    assert len(week.faults) == len(FAULTS), week.faults
    assert week.cycles >= 0.95 * 7 * 86400 / 60, week.cycles  # outages excepted
    assert week.late_cycles == 0


def test_load_profiles_are_complete_after_outages_and_a_clock_change(week: SoakResult) -> None:
    # Every 15-minute period of the week and of the day backfilled before it, exactly once:
    # what the line cuts missed was read back from the meter.
    assert week.lp1_expected >= 8 * 96 - 2
    assert week.lp1_missing == []
    assert week.lp1_duplicates == 0
    assert week.lp2_entries >= week.lp1_expected


def test_minute_records_cover_every_minute_the_meter_answered(week: SoakResult) -> None:
    assert week.minutes_expected >= 7 * 1440 - 10
    assert week.minutes_missing_outside_faults == []


def test_the_event_log_is_archived_with_the_clock_setting(week: SoakResult) -> None:
    assert week.clock_events >= 2  # events 4 (old time) and 5 (new time), DLMS event log
    assert week.events >= week.clock_events


def test_no_memory_or_task_growth_from_day_two_to_the_end(week: SoakResult) -> None:
    (_, _, tasks_then), (_, _, tasks_end) = week.samples[0], week.samples[-1]
    assert tasks_end <= tasks_then, week.samples
    # Allocated memory blocks of the whole process after a collection: a leak of one small
    # object per cycle would add thousands over the five days.
    assert week.block_growth <= 0.02, week.samples
