"""The virtual-time loop of the benchmarks: idle waits jump, socket I/O and order stay real."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from bench.virtual_time import run_virtual
from gateway.clock import LoopClock

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
