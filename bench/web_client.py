"""The browser side of the web bench, in its own process (as in a plant: the page runs on
the operator's machine, the gateway's one core only serves).

``python -m bench.web_client URL CLIENTS SECONDS REQUESTS OUT`` keeps CLIENTS live feeds
(``/api/live``) open for SECONDS, counting events and bytes, then times REQUESTS
sequential GETs of the snapshot and of the advice, and writes one JSON object to OUT.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp


async def feed(session: aiohttp.ClientSession, url: str, seconds: float) -> tuple[int, int]:
    events = size = 0
    deadline = time.monotonic() + seconds
    async with session.get(f"{url}api/live") as response:
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = await asyncio.wait_for(response.content.readline(), left)
            except TimeoutError:
                break
            size += len(line)
            events += line.startswith(b"event: ")
    return events, size


async def timed(session: aiohttp.ClientSession, url: str, n: int) -> list[float]:
    durations = []
    for _ in range(n):
        t0 = time.perf_counter()
        async with session.get(url) as response:
            await response.read()
            if response.status != 200:
                raise SystemExit(f"{url}: HTTP {response.status}")
        durations.append(time.perf_counter() - t0)
    return durations


async def run(url: str, clients: int, seconds: float, requests: int) -> dict[str, object]:
    # No total timeout: aiohttp's default (5 minutes) would end a live feed held for an hour.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        feeds = await asyncio.gather(*(feed(session, url, seconds) for _ in range(clients)))
        snapshot = await timed(session, f"{url}api/meters/meter1/snapshot", requests)
        advice = await timed(session, f"{url}api/meters/meter1/advice", requests)
    return {"feeds": feeds, "snapshot": snapshot, "advice": advice}


def main() -> None:
    url, clients, seconds, requests, out = sys.argv[1:6]
    result = asyncio.run(run(url, int(clients), float(seconds), int(requests)))
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
