"""What a developer sees after adding one row to the OBIS catalogue (``gateway/obis.py``)
for an object the simulated meter does not model: the gateway starts, publishes the new
object as the meter reports it - not there: OPC UA BadConfigurationError, REST quality
"unsupported" - and every other value Good, over IEC 62056-21 and DLMS LN and SN.

The row is added by :mod:`tests.support.extra_catalogue` in the gateway's own process
before anything reads the catalogue (modules copy it into tables at import), and the
gateway is reached as a user reaches it: an asyncua client and HTTP.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from asyncua import Client, ua

from gateway.obis import CATALOGUE, Obis
from gateway.opcua.ids import SMX_NAMESPACE
from tests.support.extra_catalogue import NEUTRAL_CURRENT, extended
from tests.support.harness import Collector, shared_pki
from tests.support.processes import ROOT, child
from tests.support.simulated_meter import expected_quality, modelled

METER = "meter1"
#: Every row of the gateway's catalogue: the stock rows and the one added (unless
#: gateway/obis.py has it already: then that row is the one the gateway serves).
ROWS = extended(CATALOGUE)
ADDED = next(row for row in ROWS if row.obis.matches(NEUTRAL_CURRENT.obis))
NEUTRAL = str(ADDED.obis)
#: The meter's [[meters]] keys per way of reaching it (the simulator serves all of them).
PROTOCOLS = {
    "iec": 'protocol = "iec62056-21"\nbaudrate = 19200\n',
    "ln": 'protocol = "dlms"\nreferencing = "ln"\nbaudrate = 9600\n',
    "sn": 'protocol = "dlms"\nreferencing = "sn"\nbaudrate = 9600\n',
}
#: Generous for a busy 2-core box: start, sign-on and a full rotation of the values.
TIMEOUT_S = 120


def write_config(work: Path, mode: str) -> Path:
    """The demo profile (anonymous reading) on ports the OS picks, no archive, and one
    simulated meter reached in ``mode``."""
    text = (
        'log_level = "WARNING"\n'
        f'[opcua]\nhost = "127.0.0.1"\nnode_cache = "{shared_pki() / "node-cache"}"\n'
        '[security]\nprofile = "demo"\nanonymous = true\n'
        f'pki = "{work / "certs"}"\nusers = "{work / "certs" / "users"}"\n'
        '[archive]\npath = ""\n'
        '[web]\nhost = "127.0.0.1"\n'
        f'[[meters]]\nid = "{METER}"\nurl = "socket://127.0.0.1:0"\n{PROTOCOLS[mode]}'
        "[meters.simulator]\nhdlc_baudrate = 9600\nhistory_days = 1\n"
    )
    path = work / "smx.toml"
    path.write_text(text)
    return path


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as resp:
        assert resp.status == 200, (url, resp.status, await resp.text())
        return await resp.json()


async def next_live_event(resp: aiohttp.ClientResponse) -> None:
    """Wait for the next Server-Sent Event of ``/api/live`` (a new snapshot)."""
    seen_data = False
    while True:
        line = await resp.content.readline()
        assert line, "the live feed ended"
        if line.startswith(b"data:"):
            seen_data = True
        elif not line.strip() and seen_data:
            return


@pytest.mark.parametrize("mode", list(PROTOCOLS))
async def test_added_object_the_meter_lacks_is_unsupported_and_the_rest_good(
    tmp_path: Path, mode: str
) -> None:
    assert not modelled(ADDED.obis), "the test needs an object the simulated meter lacks"
    config = write_config(tmp_path, mode)
    async with child(
        "-m", "tests.support.extra_catalogue",
        "run", "--config", str(config), "--port", "0", "--web-port", "0",
        cwd=tmp_path, announce="  web page and REST API: ", timeout=TIMEOUT_S,
    ) as gateway_process, aiohttp.ClientSession() as http:  # fmt: skip
        found = re.search(r"REST API: (http://\S+/) ", gateway_process.announced)
        assert found, gateway_process.announced
        web = found[1]
        endpoint = (await get_json(http, f"{web}api"))["opcua"]

        async with Client(endpoint, timeout=10) as client:
            ns = await client.get_namespace_index(SMX_NAMESPACE)
            # The new object has its node where its kind puts it, named from the catalogue.
            path = ["SMX", "Meters", METER, "Instantaneous", ADDED.browse_name]
            node = await client.nodes.objects.get_child([f"{ns}:{p}" for p in path])
            assert node.nodeid == ua.NodeId(f"{METER}.{NEUTRAL}", ns)
            assert (await node.read_display_name()).Text == ADDED.name
            assert await (await node.get_child(f"{ns}:ObisCode")).read_value() == NEUTRAL

            ids = [f"{METER}.{row.obis}" for row in ROWS]
            collector = Collector()
            subscription = await client.create_subscription(200, collector)
            await subscription.subscribe_data_change([client.get_node(ua.NodeId(i, ns)) for i in ids])
            wanted = {
                f"{METER}.{row.obis}": ua.StatusCodes.Good
                if modelled(row.obis)
                else ua.StatusCodes.BadConfigurationError
                for row in ROWS
            }

            def statuses() -> dict[str, int | None]:
                latest = {i: collector.changes.get(i, [])[-1:] for i in ids}
                return {i: v[0].StatusCode.value if v else None for i, v in latest.items()}

            try:
                await collector.wait_for(lambda: statuses() == wanted, timeout=TIMEOUT_S)
            except TimeoutError:
                wrong = {i: s for i, s in statuses().items() if s != wanted[i]}
                raise AssertionError(f"OPC UA statuses not as wanted after {TIMEOUT_S} s: {wrong}") from None

        # REST: every value's own resource, checked again at each new snapshot until they
        # agree (a value may still be waiting for its first read).
        rest: dict[str, Any] = {}
        async with http.get(f"{web}api/live") as live:
            assert live.status == 200
            try:
                async with asyncio.timeout(TIMEOUT_S):
                    while True:
                        rest = {
                            str(row.obis): await get_json(http, f"{web}api/meters/{METER}/values/{row.obis}")
                            for row in ROWS
                        }
                        if all(
                            r["quality"] == expected_quality(Obis.parse(o)).value for o, r in rest.items()
                        ):
                            break
                        await next_live_event(live)
            except TimeoutError:
                shown = {o: r["quality"] for o, r in rest.items()}
                raise AssertionError(f"REST qualities not as wanted: {json.dumps(shown)}") from None
        neutral = rest[NEUTRAL]
        assert neutral == {
            "obis": NEUTRAL,
            "name": ADDED.name,
            "value": None,
            "unit": ADDED.unit,
            "quality": "unsupported",
            "time": None,
        }
        assert all(r["value"] is not None for o, r in rest.items() if modelled(Obis.parse(o)))


async def test_gateway_without_a_simulated_meter_does_not_load_the_simulator() -> None:
    """The simulator is test equipment: a gateway reading a real meter never imports it."""
    probe = (
        "import sys, gateway.app, gateway.cli; "
        "print(sorted(m for m in sys.modules if m.startswith('gateway.simulator')))"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", probe, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), TIMEOUT_S)
    assert process.returncode == 0, err.decode()
    assert out.decode().strip() == "[]"
