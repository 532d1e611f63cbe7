"""Running under systemd: the service notification protocol and journald's log format.

No dependency: the protocol of ``sd_notify(3)`` is a datagram of ``KEY=VALUE`` lines sent
to the ``AF_UNIX`` socket named in ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract
namespace); the watchdog interval is ``$WATCHDOG_USEC`` for the process ``$WATCHDOG_PID``
(``sd_watchdog_enabled(3)``). Journald reads a priority prefix ``<N>`` (syslog levels,
``sd-daemon(3)``) at the start of each line of a stream it captures, which it names in
``$JOURNAL_STREAM`` as ``device:inode`` (``systemd.exec(5)``).

The gateway says ``READY=1`` once it serves, ``WATCHDOG=1`` every half interval only while
its event loop turns and every poller has published a snapshot recently (a hung poller
gets the service restarted by ``WatchdogSec=``; a lost meter does not: its poller still
publishes, Bad), and ``STOPPING=1`` when it stops.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Callable, Mapping
from typing import TextIO

from gateway.clock import Clock

log = logging.getLogger("gateway.systemd")

#: syslog priorities from the logging levels (sd-daemon(3): <2> crit, <3> err, <4> warning,
#: <6> info, <7> debug), highest level first; a level between two takes the lower one's.
PRIORITY = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


def priority(levelno: int) -> int:
    """The syslog priority of a logging level."""
    return next((p for level, p in PRIORITY if levelno >= level), 7)


class Notifier:
    """The sender of service notifications to ``address`` (``sd_notify(3)``)."""

    def __init__(self, address: str) -> None:
        # "@name" is the abstract namespace: a leading NUL byte on the wire.
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._sock.setblocking(False)
        self._failed = False

    @classmethod
    def from_environ(cls, env: Mapping[str, str] | None = None) -> Notifier | None:
        """A notifier if the service manager asked for notifications, else None."""
        address = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
        if not address or not (address.startswith("/") or address.startswith("@")):
            return None
        return cls(address)

    def notify(self, **fields: str) -> bool:
        """Send ``fields`` as one datagram; False (logged once) if the manager is gone."""
        message = "".join(f"{k}={v}\n" for k, v in fields.items()).encode()
        try:
            self._sock.sendto(message, self.address)
        except OSError as err:
            if not self._failed:
                log.warning("service manager notification to %s failed: %s", self.address.lstrip("\0"), err)
            self._failed = True
            return False
        self._failed = False
        return True

    def ready(self, status: str) -> bool:
        return self.notify(READY="1", STATUS=status)

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify(STOPPING="1", STATUS=status)

    def close(self) -> None:
        self._sock.close()


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """The watchdog interval (s) the manager expects a ``WATCHDOG=1`` within, or None if
    it watches no process or another one (``sd_watchdog_enabled(3)``)."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1e6


class Watchdog:
    """``WATCHDOG=1`` every ``interval_s / 2`` while ``hung()`` names nothing.

    ``hung`` returns what is not alive (e.g. "poller of meter m1: no snapshot for over 60 s");
    while it names anything no keep-alive is sent, the status says why, and the manager
    restarts the service after its interval. The task itself runs on the event loop, so a
    blocked loop sends nothing either."""

    def __init__(
        self, notifier: Notifier, interval_s: float, hung: Callable[[], list[str]], clock: Clock
    ) -> None:
        self.notifier = notifier
        self.interval_s = interval_s
        self.hung = hung
        self.clock = clock
        self.sent = 0

    async def run(self) -> None:
        said: list[str] = []
        while True:
            problems = self.hung()
            if not problems:
                if self.notifier.notify(WATCHDOG="1"):
                    self.sent += 1
                if said:  # a stall that ended before the manager's interval did
                    log.info("alive again: %s", "; ".join(said))
                    self.notifier.notify(STATUS="serving")
            elif problems != said:
                why = "; ".join(problems)
                log.error("not alive, the service manager's watchdog will restart it: %s", why)
                self.notifier.notify(STATUS=f"hung: {why}")
            said = problems
            await self.clock.sleep(self.interval_s / 2)


class JournalFormatter(logging.Formatter):
    """``<priority>logger: message``, each line of a multi-line record prefixed (journald
    takes the time, the unit and the process from its own records)."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def journal_stream(env: Mapping[str, str] | None = None) -> TextIO | None:
    """stdout or stderr if journald captures it (``$JOURNAL_STREAM`` names its device and
    inode), stdout first; None when not run by systemd with the journal."""
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep or not dev.isdigit() or not ino.isdigit():
        return None
    for stream in (sys.stdout, sys.stderr):
        try:
            st = os.fstat(stream.fileno())
        except (OSError, ValueError, AttributeError):
            continue
        if (st.st_dev, st.st_ino) == (int(dev), int(ino)):
            return stream
    return None
