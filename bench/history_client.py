"""The SCADA side of the history bench, in its own process (as it is in a plant: the
client decodes on its own machine, the gateway's one core only serves).

``python -m bench.history_client URL NODEID START END READS OUT`` reads the range READS
times with asyncua's ``read_raw_history`` (following continuation points) and writes one
JSON object to the file OUT (not a pipe the server process would spend CPU reading): the
wall time of each read and the (time, value) pairs of the last one.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime

from asyncua import Client, ua


async def read(url: str, node_id: str, start: datetime, end: datetime, reads: int) -> dict[str, object]:
    durations: list[float] = []
    got: list[ua.DataValue] = []
    async with Client(url, timeout=60) as client:
        node = client.get_node(ua.NodeId.from_string(node_id))
        for _ in range(reads):
            t0 = time.perf_counter()
            got = await node.read_raw_history(start, end, numvalues=0, return_bounds=False)
            durations.append(time.perf_counter() - t0)
    pairs = []
    for dv in got:
        t = dv.SourceTimestamp
        if t is None or dv.Value is None or not dv.StatusCode.is_good():
            raise SystemExit(f"{url}: history value without time, value or Good status: {dv}")
        pairs.append(((t if t.tzinfo else t.replace(tzinfo=UTC)).isoformat(), float(dv.Value.Value)))
    return {"durations": durations, "pairs": pairs}


def main() -> None:
    url, node_id, start, end, reads, out = sys.argv[1:7]
    result = asyncio.run(
        read(url, node_id, datetime.fromisoformat(start), datetime.fromisoformat(end), int(reads))
    )
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
