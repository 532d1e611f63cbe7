"""The service manager's protocols without systemd: notifications over a datagram socket the
test listens on (sd_notify(3)), the watchdog's keep-alives on an injected clock, and the
journal's priority prefixes (sd-daemon(3))."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.clock import ManualClock
from gateway.systemd import JournalFormatter, Notifier, Watchdog, journal_stream, priority, watchdog_interval
from tests.support.notify import NotifyListener


async def test_ready_status_and_stopping_reach_the_socket_named_in_the_environment(tmp_path: Path) -> None:
    listener = NotifyListener(tmp_path / "notify")
    notifier = Notifier.from_environ(listener.environ())
    assert notifier is not None
    try:
        assert notifier.ready("serving OPC UA at opc.tcp://box:4840/smx")
        assert await listener.receive() == {
            "READY": "1",
            "STATUS": "serving OPC UA at opc.tcp://box:4840/smx",
        }
        assert notifier.stopping()
        assert await listener.receive() == {"STOPPING": "1", "STATUS": "stopping"}
    finally:
        notifier.close()
        listener.close()


async def test_an_abstract_socket_name_is_reached_too() -> None:
    listener = NotifyListener(f"@smx-test-notify-{os.getpid()}")
    notifier = Notifier.from_environ(listener.environ())
    assert notifier is not None
    try:
        assert notifier.notify(WATCHDOG="1")
        assert await listener.receive() == {"WATCHDOG": "1"}
    finally:
        notifier.close()
        listener.close()


@pytest.mark.parametrize("value", ["", "relative/path", "notify"])
def test_no_notifications_without_a_socket_address(value: str) -> None:
    assert Notifier.from_environ({"NOTIFY_SOCKET": value}) is None
    assert Notifier.from_environ({}) is None


def test_a_manager_gone_is_logged_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(str(tmp_path / "nobody-listens"))
    try:
        assert not notifier.notify(WATCHDOG="1")
        assert not notifier.notify(WATCHDOG="1")
    finally:
        notifier.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "gateway.systemd"]
    assert len(warnings) == 1, warnings
    assert "nobody-listens" in warnings[0]


def test_watchdog_interval_is_for_this_process_only() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}) is None
    for bad in ({}, {"WATCHDOG_USEC": "0"}, {"WATCHDOG_USEC": "-5"}, {"WATCHDOG_USEC": "30s"}):
        assert watchdog_interval(bad) is None, bad


async def test_keep_alives_stop_while_something_is_hung_and_resume_after(tmp_path: Path) -> None:
    listener = NotifyListener(tmp_path / "notify")
    notifier = Notifier(listener.address)
    clock = ManualClock(datetime(2026, 12, 7, tzinfo=UTC))
    problems: list[str] = []
    dog = Watchdog(notifier, 30.0, lambda: list(problems), clock)
    task = asyncio.create_task(dog.run())
    try:
        assert await listener.receive() == {"WATCHDOG": "1"}
        assert clock.next_deadline() == 15.0  # every half interval
        clock.advance(15.0)
        assert await listener.receive() == {"WATCHDOG": "1"}

        problems.append("poller of meter m1: no snapshot for over 60 s")
        clock.advance(15.0)
        assert await listener.receive() == {"STATUS": "hung: poller of meter m1: no snapshot for over 60 s"}
        for _ in range(3):  # no keep-alive, nothing more said: the manager's interval runs out
            clock.advance(15.0)
            await asyncio.sleep(0)
        assert clock.next_deadline() == 90.0
        assert dog.sent == 2

        problems.clear()
        clock.advance(15.0)
        assert await listener.receive() == {"WATCHDOG": "1"}
        assert await listener.receive() == {"STATUS": "serving"}
        assert dog.sent == 3
        assert [f for f in listener.received if "WATCHDOG" in f] == [{"WATCHDOG": "1"}] * 3
    finally:
        task.cancel()
        notifier.close()
        listener.close()


def test_priorities_follow_syslog_levels() -> None:
    assert [priority(level) for level in (50, 40, 30, 25, 20, 10, 5)] == [2, 3, 4, 6, 6, 7, 7]


def test_journal_lines_carry_the_priority_on_every_line() -> None:
    formatter = JournalFormatter()
    try:
        raise ValueError("bad frame")
    except ValueError:
        record = logging.LogRecord("gateway.poller", logging.ERROR, __file__, 1, "read of %s failed", ("m1",),
                                   sys.exc_info())  # fmt: skip
    lines = formatter.format(record).splitlines()
    assert lines[0] == "<3>gateway.poller: read of m1 failed"
    assert len(lines) > 2
    assert all(line.startswith("<3>") for line in lines)
    assert lines[-1] == "<3>ValueError: bad frame"
    info = logging.LogRecord("gateway", logging.INFO, __file__, 1, "stopped by SIGTERM", (), None)
    assert formatter.format(info) == "<6>gateway: stopped by SIGTERM"


def test_the_journal_stream_is_the_one_its_device_and_inode_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (tmp_path / "out").open("w") as out, (tmp_path / "err").open("w") as err:
        monkeypatch.setattr(sys, "stdout", out)
        monkeypatch.setattr(sys, "stderr", err)
        st_out, st_err = os.fstat(out.fileno()), os.fstat(err.fileno())
        assert journal_stream({"JOURNAL_STREAM": f"{st_out.st_dev}:{st_out.st_ino}"}) is out
        assert journal_stream({"JOURNAL_STREAM": f"{st_err.st_dev}:{st_err.st_ino}"}) is err
        assert journal_stream({"JOURNAL_STREAM": f"{st_out.st_dev}:{st_out.st_ino + 12345}"}) is None
        for bad in ("", "12", "a:b", f"{st_out.st_dev}-{st_out.st_ino}"):
            assert journal_stream({"JOURNAL_STREAM": bad}) is None
        assert journal_stream({}) is None
