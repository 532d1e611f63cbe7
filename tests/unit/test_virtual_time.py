"""The virtual-time loop of the benchmarks: idle waits jump, socket I/O and order stay real."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from gateway.clock import LoopClock
from tests.support.virtual_time import run_virtual

START = datetime(2026, 6, 1, tzinfo=UTC)


def test_an_hour_of_sleeping_takes_no_real_hour_and_keeps_order() -> None:
    async def main() -> tuple[list[str], float, datetime]:
        clock = LoopClock(START)
        order: list[str] = []

        async def sleeper(name: str, seconds: float) -> None:
            await clock.sleep(seconds)
            order.append(name)

        await asyncio.gather(sleeper("late", 3600), sleeper("early", 10), sleeper("middle", 1800))
        return order, clock.monotonic(), clock.now()

    wall = time.monotonic()
    order, elapsed, now = run_virtual(main())
    assert time.monotonic() - wall < 5
    assert order == ["early", "middle", "late"]
    assert elapsed == 3600
    assert now == START + timedelta(hours=1)


def test_loopback_socket_round_trips_complete_without_a_clock_jump() -> None:
    async def main() -> tuple[bytes, float]:
        clock = LoopClock(START)

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readexactly(5))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        t0 = clock.monotonic()
        writer.write(b"hello")
        async with asyncio.timeout(30):  # a virtual timeout: fires only if the answer were lost
            answer = await reader.readexactly(5)
        elapsed = clock.monotonic() - t0
        writer.close()
        server.close()
        await server.wait_closed()
        return answer, elapsed

    answer, elapsed = run_virtual(main())
    assert answer == b"hello"
    assert elapsed == 0.0


def test_work_in_a_thread_keeps_the_clock_still_until_it_is_done() -> None:
    """An archive write in a worker thread takes no virtual time: timers due later do
    not fire while it runs (the clock would otherwise jump past them)."""
    import threading

    async def main() -> tuple[list[str], float]:
        clock = LoopClock(START)
        order: list[str] = []
        release = threading.Event()

        async def timer() -> None:
            await clock.sleep(5)
            order.append("timer")

        def slow_write() -> str:
            release.wait(10)  # released by the loop's own callback below, in real time
            return "written"

        pending = asyncio.create_task(timer())
        worker = asyncio.create_task(asyncio.to_thread(slow_write))
        asyncio.get_running_loop().call_soon(lambda: threading.Timer(0.2, release.set).start())
        order.append(await worker)
        elapsed = clock.monotonic()
        await pending
        return order, elapsed

    order, elapsed = run_virtual(main())
    assert order == ["written", "timer"]
    assert elapsed == 0.0
