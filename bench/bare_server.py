"""The peer of ``python -m bench clients``: a bare asyncua server and nothing else.

It has the gateway's values as plain Double variables (numeric NodeIds 1..N; HistorySQLite
refuses string identifiers) and writes all of them once a second, each historized by
asyncua's own HistorySQLite (one row per change) — what an OPC UA server for a meter is
when somebody else reads the meter. It reads no meter, keeps no archive files, has no
security, users, market or web: the least an OPC UA server with history does.

    python -m bench.bare_server [--values 31] [--db history.sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import time
from datetime import UTC, datetime

from asyncua import Server, ua
from asyncua.server.history_sql import HistorySQLite

NAMESPACE = "urn:smx:bench:bare"


async def main(values: int, db: str) -> None:
    server = Server()
    await server.init()
    server.set_endpoint("opc.tcp://127.0.0.1:0/bare")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    ns = await server.register_namespace(NAMESPACE)
    storage = HistorySQLite(db)
    await storage.init()
    server.iserver.history_manager.set_storage(storage)
    folder = await server.nodes.objects.add_folder(ua.NodeId("Meter", ns), "Meter")
    nodes = []
    for n in range(1, values + 1):
        var = await folder.add_variable(ua.NodeId(n, ns), f"Value{n}", 0.0, ua.VariantType.Double)
        nodes.append(var)
    async with server:
        for var in nodes:
            await server.historize_node_data_change(var, period=None, count=0)
        print(f"bare asyncua server at opc.tcp://127.0.0.1:{server.bserver.port}/bare", flush=True)
        tick = time.monotonic()
        while True:
            now = datetime.now(UTC)
            phase = now.timestamp() / 60
            for n, var in enumerate(nodes):
                value = 230.0 + 5 * math.sin(phase + n) + (now.second % 7) / 10
                dv = ua.DataValue(
                    ua.Variant(value, ua.VariantType.Double), SourceTimestamp=now, ServerTimestamp=now
                )
                await server.write_attribute_value(var.nodeid, dv)
            tick += 1.0
            await asyncio.sleep(max(tick - time.monotonic(), 0.0))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--values", type=int, default=31)
    parser.add_argument("--db", default="history.sqlite")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    asyncio.run(main(args.values, args.db))
