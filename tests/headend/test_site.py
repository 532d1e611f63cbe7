"""A site's messages per second and backlog from its cyclic status reports (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from headend.service import Site
from headend.storage import SiteState

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def test_the_rate_is_the_messages_between_two_reports_over_their_time() -> None:
    site = Site()
    site.report(T0, 1_000)
    assert site.rate == 0.0  # one report: nothing to compare with yet
    site.report(T0 + MINUTE, 1_090)
    assert site.rate == 1.5
    site.report(T0 + 2 * MINUTE, 1_090)
    assert site.rate == 0.0  # silent, but alive


def test_a_restarted_box_waits_for_its_next_report() -> None:
    site = Site()
    site.report(T0, 5_000)
    site.report(T0 + MINUTE, 5_060)
    site.report(T0 + 2 * MINUTE, 12)  # the count went back: the box restarted
    assert site.rate == 1.0
    site.report(T0 + 3 * MINUTE, 42)
    assert site.rate == 0.5


def test_a_report_out_of_order_changes_nothing() -> None:
    site = Site()
    site.report(T0 + MINUTE, 100)
    site.report(T0, 40)  # older than the last one (QoS 1 redelivery after a reconnect)
    assert site.rate == 0.0


def test_what_is_saved_is_what_is_known() -> None:
    site = Site(state="online", last_seen=T0, backlog=96)
    site.report(T0, 0)
    site.report(T0 + MINUTE, 30)
    assert site.saved("smx-1", 12.0) == SiteState("smx-1", "online", T0, 96, rate=0.5)
    assert site.saved_at == 12.0
