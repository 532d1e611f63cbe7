"""The OPC UA client side of the security bench, in its own process (a SCADA on another box).

``python -m bench.security_client URL POLICY CERT KEY SERVER_CERT USER SECONDS OUT``
(POLICY ``None`` = anonymous on the demo's None endpoint; else SignAndEncrypt as USER with
the password in ``SMX_BENCH_PASSWORD``): times CONNECTS connections (secure channel,
session, activation, close), then one session subscribes to the 1-second set for
SECONDS (the server's CPU is read meanwhile by the bench), then times READS sequential
reads of the set. Writes one JSON object to OUT; says "subscribed" on stdout when the
subscription window starts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from asyncua import Client, ua

from gateway.opcua.ids import SMX_NAMESPACE

CONNECTS = 10
READS = 100


async def client(url: str, policy: str, cert: str, key: str, server_cert: str, user: str) -> Client:
    c = Client(url, timeout=30)
    if policy != "None":
        c.application_uri = "urn:smx:bench-client"
        await c.set_security_string(f"{policy},SignAndEncrypt,{cert},{key},{server_cert}")
        c.set_user(user)
        c.set_password(os.environ["SMX_BENCH_PASSWORD"])
    return c


class Count:
    def __init__(self) -> None:
        self.changes = 0

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.changes += 1


async def main(argv: list[str]) -> None:
    url, policy, cert, key, server_cert, user, seconds, out = argv
    connects = []
    for _ in range(CONNECTS):
        t0 = time.perf_counter()
        c = await client(url, policy, cert, key, server_cert, user)
        await c.connect()
        await c.disconnect()
        connects.append(time.perf_counter() - t0)
    c = await client(url, policy, cert, key, server_cert, user)
    async with c:
        ns = await c.get_namespace_index(SMX_NAMESPACE)
        folder = c.get_node(ua.NodeId("meter1.Instantaneous", ns))
        nodes = [
            n for n in await folder.get_children() if (await n.read_node_class()) == ua.NodeClass.Variable
        ]
        counter = Count()
        subscription = await c.create_subscription(1000, counter)
        await subscription.subscribe_data_change(nodes)
        print("subscribed", flush=True)
        await asyncio.sleep(float(seconds))  # the measured window (the bench's own timing)
        changes = counter.changes
        await subscription.delete()
        reads = []
        for _ in range(READS):
            t0 = time.perf_counter()
            await c.read_values(nodes)
            reads.append(time.perf_counter() - t0)
    result = {"connects": connects, "reads": reads, "values": len(nodes), "changes": changes}
    Path(out).write_text(json.dumps(result), encoding="utf-8")  # noqa: ASYNC240  # after the measurement


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)  # asyncua's warnings per connection are not results
    asyncio.run(main(sys.argv[1:]))
