"""The one table of ``make bench``: every headline figure beside its peer and its goal.

Built from the parts' results (the detailed tables are printed above it); the README
carries this table. A goal not met says FAIL here and is explained in the README.
"""

from __future__ import annotations

from typing import Any

from bench.clients import RSS_GOAL_MIB
from bench.tables import table
from bench.uplink import BUDGET_BYTES, CPU_GOAL_PERCENT


def _row(
    measure: str, smx: str, peer: str = "", ratio: str = "", goal: str = "", verdict: str = ""
) -> dict[str, str]:
    return {"measure": measure, "SMX": smx, "peer": peer, "ratio": ratio, "goal": goal, "verdict": verdict}


def _pass(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def summary(r: dict[str, Any]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for c in r.get("cycles", []):
        if not c["line"].startswith("9600") or c["line"].endswith("200 ms"):
            continue
        rows.append(
            _row(
                f"1-s cycle, {c['protocol']} 9600 Bd: wire bytes/cycle",
                f"{c['bytes_per_cycle_median']:.0f} B in {c['cycle_median_s']:.2f} s",
                f"line: {c['line_capacity_bytes_s']} B/s",
                f"{100 * c['bytes_per_cycle_median'] / c['line_capacity_bytes_s']:.0f} % of line",
                f"{c['values_every_second']} values every s",
            )
        )
    for p in r.get("profiles", []):
        if p["line"].startswith("9600"):
            rows.append(
                _row(
                    f"1 day LP1, {p['protocol']} 9600 Bd",
                    f"{p['read_s']:.2f} s read",
                    f"{p['wire_s']:.2f} s pure wire",
                    f"{p['ratio']:.2f} x wire",
                )
            )
    clients = {(x["server"].split()[0], x["clients"]): x for x in r.get("clients", [])}
    for n in (0, 1, 5, 20):
        smx, bare = clients.get(("SMX", n)), clients.get(("bare", n))
        if smx is None or bare is None:
            continue
        ratio = smx["CPU %"] / bare["CPU %"] if bare["CPU %"] else float("nan")
        rows.append(
            _row(
                f"CPU, {n} clients x every value at 1 s",
                f"{smx['CPU %']:.1f} % of a core",
                f"bare asyncua+SQLite {bare['CPU %']:.1f} %",
                f"{ratio:.2f}",
                "<= bare",
                _pass(ratio <= 1),
            )
        )
        rows.append(
            _row(
                f"RSS, {n} clients",
                f"{smx['RSS MiB']:.0f} MiB",
                f"bare {bare['RSS MiB']:.0f} MiB",
                f"{smx['RSS MiB'] / bare['RSS MiB']:.2f}",
                f"<= 100 MB ({RSS_GOAL_MIB:.1f} MiB)",
                _pass(smx["RSS MiB"] <= RSS_GOAL_MIB),
            )
        )
    for h in r.get("history_reads", []):
        if h["measure"].endswith("SMX archive"):
            sql = next(x for x in r["history_reads"] if "HistorySQLite" in x["measure"])
            rows.append(
                _row(
                    "HistoryRead 1 year LP (35,040 values)",
                    f"{h['wall_median_s']:.2f} s",
                    f"HistorySQLite {sql['wall_median_s']:.2f} s",
                    f"{h['sqlite/x wall']:.1f} x faster",
                    ">= 5 x",
                    _pass(h["sqlite/x wall"] >= 5),
                )
            )
    for s in r.get("startup", []):
        if s["start"].startswith("later"):
            rows.append(
                _row(
                    "start to first Good value over OPC UA",
                    f"{s['first Good value s']:.1f} s",
                    f"listening after {s['listening s']:.1f} s",
                    "",
                    f"RSS {s['RSS MiB']:.0f} MiB (demo)",
                )
            )
    for x in r.get("load", []):
        rows.append(
            _row(
                f"load {x['minutes']:.0f} min: 50 sessions x 30 items + connect loop",
                f"{x['errors']} errors, {x['late cycles']} late cycles",
                f"{x['connects in loop']} connects",
                f"RSS +{x['RSS growth %']:.1f} %",
                "0, 0, <= 5 %",
                x["verdict"],
            )
        )
    for x in r.get("soak", []):
        rows.append(
            _row(
                f"soak {x['simulated days']:.0f} simulated day(s), {x['faults']} faults",
                f"LP1 {x['LP1 periods']}, {x['late']} late",
                f"{x['CPU s']:.0f} s CPU",
                x[next(k for k in x if k.startswith("blocks"))].split("(")[-1].rstrip(")"),
                "complete, no growth",
                x["verdict"],
            )
        )
    fuzz = r.get("fuzz", [])
    if fuzz:
        inputs, escaped = sum(f["inputs"] for f in fuzz), sum(f["escaped"] for f in fuzz)
        rows.append(
            _row(
                "fuzz, every protocol core, both roles",
                f"{inputs} inputs",
                f"{escaped} escaped",
                "",
                "0 escaped",
                _pass(escaped == 0),
            )
        )
    for s in r.get("security_policies", []):
        if s["policy (SignAndEncrypt)"] != "None":
            none = r["security_policies"][0]
            rows.append(
                _row(
                    f"connect {s['policy (SignAndEncrypt)']}",
                    f"{s['connect median ms']:.0f} ms",
                    f"None {none['connect median ms']:.1f} ms",
                    "",
                    "password check in it",
                )
            )
            break
    rows += _uplink(r)
    return rows


def _uplink(r: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for x in r.get("uplink_cpu_goal", []):
        rows.append(
            _row(
                "uplink CPU added, live 1 s (medians, 2 rounds)",
                f"+{x['added % of a core']:.2f} % of a core",
                f"off {x['CPU % off (median)']:.1f} %, on {x['CPU % on (median)']:.1f} %",
                f"{x['on / off']:.2f}",
                f"<= {CPU_GOAL_PERCENT} %",
                x["verdict"],
            )
        )
    for v in r.get("uplink_volume", []):
        if v["default"]:
            wire = v["wire MB/month (TLS, TCP/IP, ACKs)"]
            rows.append(
                _row(
                    f"uplink bytes per meter and month, defaults (live {v['live s']} s)",
                    f"{wire:.0f} MB on the wire",
                    f"payload {v['payload MB/month']:.0f} MB",
                    f"{v['of 1 GB']} of 1 GB",
                    f"<= {BUDGET_BYTES / 1e9:.0f} GB (385 B/s)",
                    _pass(wire * 1e6 <= BUDGET_BYTES),
                )
            )
    replay = r.get("uplink_replay", [])
    if len(replay) == 2:
        plain, gzip = replay
        rows.append(
            _row(
                "uplink replay of a 24-h outage, default limits",
                f"{plain['drain s']:.0f} s, {plain['replay MB']:.1f} MB",
                f"gzip {gzip['drain s']:.0f} s, {gzip['replay MB']:.1f} MB",
                f"gzip {gzip['replay MB / plain']:.2f} x bytes",
                f"live gap max {max(plain['live gap max s'], gzip['live gap max s']):.1f} s",
                _pass(plain["complete"] == gzip["complete"] == "yes"),
            )
        )
    return rows


def print_summary(results: dict[str, Any]) -> None:
    print(table("SUMMARY (make bench): SMX beside its peer, goals of issue 7", results["summary"]))
