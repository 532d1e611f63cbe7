"""``make bench``: the line budget of every protocol, measured side by side in one run.

Every row runs the real stack (simulated meter paced at the line's baud rate, socket://
transport, protocol cores, session, poller) and reports what the line carried:

1. the 1-second cycle over IEC 62056-21 (one R5 per value) and over DLMS/COSEM (the
   standard 18-value set in one GET-WITH-LIST / SN multi-read), real time;
2. one day of load profile 1 against the pure wire time of the bytes exchanged;
3. one simulated hour of DLMS polling with the load-profile and event-log readouts
   interleaved, in virtual time (``tests/support/virtual_time.py``): every cycle must carry the
   whole 1-second set;
4. history (``bench/history.py``): a year of one load-profile channel read over OPC UA
   from the SMX archive and from asyncua's HistorySQLite, and the archive's write CPU;
5. web (``bench/web.py``): the gateway's CPU with 0, 1 and 10 live page feeds open, and
   REST GET latencies;
6. security (``bench/security.py``): OPC UA None against Basic256Sha256,
   Aes128_Sha256_RsaOaep and Aes256_Sha256_RsaPss in SignAndEncrypt: connection time, read
   latency and the server's CPU for one subscription, and the cost of a password check;
7. startup (``bench/startup.py``): from ``smx-gateway run`` to the first Good value over
   OPC UA, first start (certificate created) and later ones, and the RSS then;
8. uplink (``bench/uplink.py``): the MQTT uplink's bytes and messages per writer at live
   intervals of 1, 15 and 60 s and the default, the bytes per meter and month (payload and
   an estimate on the wire), the gateway's CPU with the uplink off and on, and the replay of
   a 24-hour outage at the default limits (plain and gzip) (``--uplink-minutes``);
9. fuzz (``bench/fuzz.py``): every protocol core in both roles fed mutated real and own
   frames for ``--seconds`` per core (``python -m bench.fuzz --inputs 1000000`` for the
   long run): inputs/s and exceptions escaped (must be 0);
10. headend (``bench/headend.py``): 10,000 simulated sites publishing through one mosquitto
   into head-end processes: messages/s one instance takes, its CPU per 1,000 messages/s,
   lag publish -> commit (p50/p99), two instances of one shared-subscription group,
   PostgreSQL beside SQLite, RSS (``--headend-seconds``, ``--headend-sites``, ``--quick``,
   ``--profile``);
12. multidrop (``bench/multidrop.py``): one DLMS meter alone against two on one RS485 line
   (HDLC addresses 17 and 18) at 9600 and 19200 Bd: each meter's share of the line, its
   core values per cycle, the 1-second set's and the registers' refresh periods;
13. box (``bench/box.py``): the whole gateway in a cgroup at a fraction of one core and
   192 MiB: the smallest CPU quota with 0 late and 0 skipped cycles, without and with 5
   OPC UA clients and a live page, confirmed over an hour (``--box-confirm-minutes``), and
   the archive's writes to the SD card per day (``--box-sd-minutes``); needs root.
11. portfolio (``bench/portfolio.py``): 10,000 simulated sites at 1-s and 10-s live into one
   and two ``smx-headend run`` instances aggregating five portfolios: the aggregation
   latency (the newest member message to the aggregate readable) p50/p99, the CPU per
   portfolio update, the live values taken (``--portfolio-seconds``, ``--portfolio-sites``).

Results are printed as tables and written to bench/results/latest.json
(``python -m bench history`` runs only part 4 and writes bench/results/history.json).

    python -m bench [all | history | web | security | startup | uplink | fuzz | headend | portfolio
                     | multidrop | box]
                    [--seconds 10] [--hour-minutes 60] [--uplink-minutes 3] [--headend-seconds 60] [--quick]
                    [--profile] [--portfolio-seconds 60] [--portfolio-sites N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.box import measure_box, print_box
from bench.clients import measure_clients, print_clients
from bench.fuzz import measure_fuzz, print_fuzz
from bench.headend import measure_headend, print_headend
from bench.history import READS, measure_history
from bench.load import measure_load, print_load
from bench.multidrop import measure_multidrop, print_multidrop
from bench.portfolio import measure_portfolio, print_portfolio
from bench.security import measure_security
from bench.soak import measure_soak, print_soak
from bench.startup import measure_startup, print_startup
from bench.summary import print_summary, summary
from bench.tables import table
from bench.uplink import measure_uplink, print_uplink
from bench.web import measure_web
from gateway.app import Gateway, dlms_settings, link_factory
from gateway.clock import Clock, LoopClock, ManualClock
from gateway.config import MeterConfig, SimulatorConfig, demo_config
from gateway.meter.dlms import DlmsMeter, DlmsSession
from gateway.meter.iec21 import Iec21Meter, Iec21Session
from gateway.meter.model import EventRecord, ProfileData, Snapshot
from gateway.meter.poller import MeterLink, Poller
from gateway.obis import CATALOGUE, Refresh
from gateway.simulator.physics import HouseholdModel, MeterPhysics
from gateway.simulator.server import SimulatedMeter, simulator_from_config
from gateway.streams import PROFILES, StreamId
from gateway.transport import Framing, open_serial
from tests.support.virtual_time import run_virtual

LP1 = PROFILES[0]
RESULTS = Path(__file__).parent / "results"

#: The standard three-phase set of issue 3: 3 x U, 3 x I, P+, P-, Q+, Q-, P+ and P- per
#: phase, PF, f (18 values; catalogue priorities 1-12 and 20-25).
STANDARD_SET = tuple(
    i.obis
    for i in sorted(CATALOGUE, key=lambda i: i.priority)
    if i.refresh is Refresh.SECOND and (i.priority <= 12 or 20 <= i.priority <= 25)
)
assert len(STANDARD_SET) == 18

#: (label, meter overrides) of the protocols compared.
PROTOCOLS: dict[str, dict[str, Any]] = {
    "IEC 62056-21": {"protocol": "iec62056-21"},
    "DLMS LN": {"protocol": "dlms", "referencing": "ln"},
    "DLMS SN": {"protocol": "dlms", "referencing": "sn"},
    "DLMS LN mode E": {"protocol": "dlms-mode-e", "referencing": "ln"},
}


def meter_config(label: str, baud: int, reaction: float, **overrides: Any) -> MeterConfig:
    meter = demo_config().meters[0]
    assert meter.simulator is not None
    sim = replace(
        meter.simulator, reaction_time_s=reaction, max_baudrate=baud, hdlc_baudrate=baud, history_days=1.0
    )
    return replace(meter, baudrate=baud, simulator=sim, **PROTOCOLS[label], **overrides)


async def cycle_row(
    label: str, baud: int, reaction: float, seconds: float, **overrides: Any
) -> dict[str, Any]:
    """Run the gateway against a meter of the given speed; measure steady cycles."""
    base = demo_config()
    meter = meter_config(label, baud, reaction, **overrides)
    config = replace(
        base, meters=(meter,), opcua=replace(base.opcua, port=0), web=replace(base.web, enabled=False)
    )
    gateway = Gateway(config)
    started = time.perf_counter()
    task = asyncio.create_task(gateway.run())
    await gateway.ready.wait()
    poller = gateway.pollers["meter1"]
    snapshot = await poller.wait_snapshot()
    while not any(r.value is not None for r in snapshot.readings.values()):
        snapshot = await poller.wait_snapshot()
    first_value_s = time.perf_counter() - started
    durations, sizes, core_s, core_bytes, core_values = [], [], [], [], []
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        snapshot = await poller.wait_snapshot()
        durations.append(snapshot.diagnostics.cycle_duration_s)
        sizes.append(snapshot.diagnostics.bytes_per_cycle)
        if poller.core_read is not None:
            core_s.append(poller.core_read.seconds)
            core_bytes.append(poller.core_read.bytes)
            core_values.append(poller.core_read.values)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    fast = [r for r in snapshot.readings.values() if r.refresh_s is not None and r.refresh_s < 1.5]
    second_set = sum(1 for r in snapshot.readings.values() if r.obis.d == 7)
    per_value = [r.refresh_s for r in snapshot.readings.values() if r.refresh_s is not None]
    diag = snapshot.diagnostics
    return {
        "protocol": label,
        "line": f"{baud} Bd, tr {reaction * 1000:.0f} ms",
        "cycle_median_s": statistics.median(durations),
        "bytes_per_cycle_median": statistics.median(sizes),
        "line_capacity_bytes_s": baud // 10,
        "values_every_second": f"{sum(1 for r in fast if r.obis.d == 7)}/{second_set}",
        "set_values_median": statistics.median(core_values),
        "set_read_median_s": statistics.median(core_s),
        "set_bytes_median": statistics.median(core_bytes),
        "set_share_of_second": statistics.median(core_s) / meter.cycle_s,
        "set_wire_s": statistics.median(core_bytes) * 10 / baud,
        "slowest_refresh_s": max(per_value) if per_value else None,
        "not_yet_read": sum(1 for r in snapshot.readings.values() if r.value is None),
        "late_cycles": diag.late_cycles,
        "skipped_cycles": diag.skipped_cycles,
        "cycles": diag.cycles,
        "first_value_s": first_value_s,
        "readouts_pending": poller.readouts_pending,  # first day of profiles still being read
    }


async def profile_row(label: str, baud: int, reaction: float) -> dict[str, Any]:
    """One day of load profile 1 (96 periods, 4 channels + status) against pure wire time."""
    day = datetime(2026, 6, 21, tzinfo=UTC)
    clock = ManualClock(day)
    physics = MeterPhysics(HouseholdModel(seed=3), day, history_days=2.0)
    sim = SimulatedMeter(physics, clock, max_baudrate=baud, hdlc_baudrate=baud, reaction_time_s=reaction)
    await sim.start()
    meter_cfg = replace(meter_config(label, baud, reaction), url=sim.url, response_timeout_s=5.0)
    meter: Iec21Meter | DlmsMeter
    if meter_cfg.protocol == "iec62056-21":
        transport = await open_serial(sim.url, baudrate=300, framing=Framing.SEVEN_E_ONE, timeout=5)
        meter = Iec21Meter(Iec21Session(transport, max_baudrate=baud, response_timeout=5.0))
    else:
        transport = await open_serial(sim.url, baudrate=baud, framing=Framing.EIGHT_N_ONE, timeout=5)
        meter = DlmsMeter(DlmsSession(transport, dlms_settings(meter_cfg)))
    await meter.open()
    clock.advance(86400)
    # The profile's structure (capture objects, scalers) is read once per association.
    await meter.read_profile(LP1, day, day + timedelta(minutes=15))
    sent0, recv0 = meter.stats.bytes_sent, meter.stats.bytes_received
    t0 = time.perf_counter()
    blocks = await meter.read_profile(LP1, day, day + timedelta(days=1))
    elapsed = time.perf_counter() - t0
    nbytes = meter.stats.bytes_sent - sent0 + meter.stats.bytes_received - recv0
    await meter.close()
    await transport.close()
    await sim.stop()
    wire = nbytes * 10 / baud
    return {
        "protocol": label,
        "line": f"{baud} Bd, tr {reaction * 1000:.0f} ms",
        "entries": sum(len(b.entries) for b in blocks),
        "bytes": nbytes,
        "read_s": elapsed,
        "wire_s": wire,
        "ratio": elapsed / wire,
    }


class _HourListener:
    """Counts, per cycle, whether every 1-second value was read in it."""

    def __init__(self) -> None:
        self.cycles = 0
        self.incomplete = 0
        self.profiles: dict[StreamId, int] = {}
        self.events = 0
        self._last: dict[Any, Any] = {}

    async def on_snapshot(self, snapshot: Snapshot) -> None:
        fresh = 0
        for obis in STANDARD_SET:
            reading = snapshot.readings[obis]
            if reading.source_time is not None and reading.source_time != self._last.get(obis):
                fresh += 1
            self._last[obis] = reading.source_time
        if snapshot.diagnostics.cycles > 2:  # the first cycles discover the meter
            self.cycles += 1
            self.incomplete += fresh < len(STANDARD_SET)

    async def on_profile(self, meter_id: str, profile: ProfileData) -> None:
        self.profiles[profile.stream] = self.profiles.get(profile.stream, 0) + len(profile.entries)

    async def on_events(self, meter_id: str, events: Sequence[EventRecord]) -> None:
        self.events += len(events)


async def _hour(label: str, baud: int, reaction: float, minutes: float) -> dict[str, Any]:
    clock: Clock = LoopClock(datetime(2026, 6, 21, 6, 0, tzinfo=UTC))
    meter = meter_config(label, baud, reaction, values=STANDARD_SET)
    assert meter.simulator is not None
    sim_cfg: SimulatorConfig = replace(meter.simulator, history_days=2.0)
    sim = simulator_from_config(sim_cfg, clock)
    await sim.start()
    start = clock.now()
    listener = _HourListener()
    connect = link_factory(replace(meter, url=sim.url))

    async def link() -> MeterLink:
        return await connect()

    poller = Poller(replace(meter, url=sim.url), link, clock, [listener])
    cpu0 = time.process_time()
    task = asyncio.create_task(poller.run())
    await clock.sleep(minutes * 60)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await sim.stop()
    snapshot = poller.snapshot
    assert snapshot is not None
    diag = snapshot.diagnostics
    return {
        "protocol": label,
        "line": f"{baud} Bd, tr {reaction * 1000:.0f} ms",
        "simulated_min": (clock.now() - start).total_seconds() / 60,
        "cpu_s": time.process_time() - cpu0,
        "cycles": listener.cycles,
        "cycles_missing_values": listener.incomplete,
        "late_cycles": diag.late_cycles,
        "skipped_cycles": diag.skipped_cycles,
        "lp1_entries": listener.profiles.get(StreamId.LOAD_PROFILE_1, 0),
        "lp2_entries": listener.profiles.get(StreamId.LOAD_PROFILE_2, 0),
        "events": listener.events,
        "readouts_pending": poller.readouts_pending,
        "cycle_s_last": diag.cycle_duration_s,
    }


def hour_row(label: str, baud: int, reaction: float, minutes: float) -> dict[str, Any]:
    """One simulated hour of polling with profile / event readouts interleaved (virtual time)."""
    return run_virtual(_hour(label, baud, reaction, minutes))


async def measure(seconds: float) -> dict[str, list[dict[str, Any]]]:
    cycles = [
        await cycle_row("IEC 62056-21", baud, tr, seconds)
        for baud, tr in ((19200, 0.02), (9600, 0.02), (9600, 0.2))
    ]
    cycles += [
        await cycle_row(label, 9600, 0.02, seconds, values=STANDARD_SET)
        for label in ("DLMS LN", "DLMS SN", "DLMS LN mode E")
    ]
    cycles += [await cycle_row(label, 9600, 0.02, seconds) for label in ("DLMS LN", "DLMS SN")]
    profiles = [await profile_row("IEC 62056-21", baud, tr) for baud, tr in ((19200, 0.02), (9600, 0.02))]
    profiles += [await profile_row(label, 9600, 0.02) for label in ("DLMS LN", "DLMS SN")]
    return {"cycles": cycles, "profiles": profiles}


def print_history(results: dict[str, list[dict[str, Any]]]) -> None:
    title = f"History read: 1 year of LP1 channel 1 over OPC UA ({READS} reads each)"
    print(table(title, results["history_reads"]))
    print()
    print(table("Archive write cost (minute records of the 1-second set)", results["history_writes"]))
    print()
    print(table("History stores filled (notes, not compared)", results["history_fills"]))


def print_web(results: dict[str, Any]) -> None:
    print(table("Live page feeds: the gateway's CPU with 0, 1 and 10 open (demo, DLMS LN 9600 Bd)",
                results["web_feeds"]))  # fmt: skip
    print()
    print(table("REST GETs, sequential, from another process", results["web_requests"]))


def print_security(results: dict[str, Any]) -> None:
    print(table("OPC UA security: one client process per policy (medians of 3 rounds)",
                results["security_policies"]))  # fmt: skip
    print()
    print(table("Logins", results["security_login"]))


#: The parts run alone by name: how to measure (given the command line) and how to print.
PARTS: dict[
    str, tuple[Callable[[argparse.Namespace], Awaitable[dict[str, Any]]], Callable[[dict[str, Any]], None]]
] = {
    "history": (lambda _args: measure_history(), print_history),
    "web": (lambda args: measure_web(args.seconds), print_web),
    "security": (lambda args: measure_security(args.seconds), print_security),
    "startup": (lambda args: measure_startup(args.seconds), print_startup),
    "fuzz": (lambda args: measure_fuzz(args.seconds), print_fuzz),
    "clients": (lambda args: measure_clients(args.seconds), print_clients),
    "load": (lambda args: measure_load(args.seconds, args.load_minutes), print_load),
    "soak": (lambda args: measure_soak(args.soak_days), print_soak),
    "uplink": (lambda args: measure_uplink(args.uplink_minutes), print_uplink),
    "headend": (
        lambda args: measure_headend(args.headend_seconds, args.quick, args.profile, args.headend_sites),
        print_headend,
    ),
    "portfolio": (
        lambda args: measure_portfolio(args.portfolio_seconds, args.portfolio_sites or 10_000),
        print_portfolio,
    ),
    "multidrop": (lambda args: measure_multidrop(args.seconds), print_multidrop),
    "box": (
        lambda args: measure_box(
            args.seconds,
            args.box_confirm_minutes,
            args.box_sd_minutes,
            tuple(int(n) for n in args.box_series.split(",") if n.isdigit()),
            args.box_quota or None,
        ),
        print_box,
    ),
}


def main(args: argparse.Namespace) -> None:
    seconds, hour_minutes, part = args.seconds, args.hour_minutes, args.part
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    RESULTS.mkdir(exist_ok=True)
    if part != "all":
        measure_part, show = PARTS[part]
        found = asyncio.run(measure_part(args))
        show(found)
        out = RESULTS / f"{part}{args.results_suffix}.json"
        out.write_text(json.dumps(found, indent=2))
        print(f"\nwritten to {out}")
        return
    results = asyncio.run(measure(seconds))
    results["hours"] = [hour_row(label, 9600, 0.02, hour_minutes) for label in ("DLMS LN", "DLMS SN")]
    for measure_part, _show in PARTS.values():
        results.update(asyncio.run(measure_part(args)))
    print(table("1-second cycle (IEC: one R5 per value; DLMS: one request for the set)", results["cycles"]))
    print()
    print(table("One day of load profile 1 (96 periods, 4 channels + status)", results["profiles"]))
    print()
    print(table("Simulated hour, profile and event readouts interleaved (18-value set)", results["hours"]))
    for _measure, show in PARTS.values():
        print()
        show(results)
    results["summary"] = summary(results)
    print()
    print_summary(results)
    out = RESULTS / "latest.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "part",
        nargs="?",
        choices=("all", *PARTS),
        default="all",
        help="run everything, or only one part",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="steady-state seconds per row")
    parser.add_argument("--hour-minutes", type=float, default=60.0, help="simulated minutes of the hour rows")
    parser.add_argument("--load-minutes", type=float, default=10.0, help="minutes of the load part")
    parser.add_argument(
        "--soak-days", type=float, default=1.0, help="simulated days of the soak part (7: the week)"
    )
    parser.add_argument(
        "--uplink-minutes", type=float, default=3.0, help="minutes of the uplink's steady-state window"
    )
    parser.add_argument(
        "--headend-seconds", type=float, default=60.0, help="seconds of each head-end load scenario"
    )
    parser.add_argument(
        "--portfolio-seconds", type=float, default=60.0, help="seconds of each portfolio load scenario"
    )
    parser.add_argument("--portfolio-sites", type=int, default=0, help="portfolio: sites (default 10,000)")
    parser.add_argument("--headend-sites", type=int, default=0, help="simulated sites (default 10,000)")
    parser.add_argument(
        "--box-confirm-minutes", type=float, default=60.0, help="box: minutes at the quota found (an hour)"
    )
    parser.add_argument(
        "--box-sd-minutes", type=float, default=15.0, help="box: minutes of the SD-card window"
    )
    parser.add_argument(
        "--box-series", default="0,5", help="box: OPC UA clients of each series, e.g. 0,5 or 5 or none"
    )
    parser.add_argument(
        "--box-quota", type=float, default=0.0, help="box: no search, hold the hour at this % of a core"
    )
    parser.add_argument("--results-suffix", default="", help="one part: written to <part><suffix>.json")
    parser.add_argument("--quick", action="store_true", help="head-end: 1,000 sites, 10 s a scenario")
    parser.add_argument("--profile", action="store_true", help="head-end: one run under cProfile too")
    main(parser.parse_args())
