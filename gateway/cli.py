"""Command line: ``smx-gateway run | simulate | check-config | example-config | doctor | certs | users
| vpn`` (DESIGN §2)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway import __version__
from gateway.clock import SystemClock
from gateway.config import BAUDRATES, GatewayConfig, SimulatorConfig, demo_config, load_config
from gateway.errors import ConfigError, GatewayError
from gateway.provision.accounts import add_commands
from gateway.provision.accounts import run as run_admin
from gateway.provision.openvpn import add_command as add_vpn_command
from gateway.provision.openvpn import run as run_vpn
from gateway.systemd import JournalFormatter, Notifier, Watchdog, journal_stream, watchdog_interval

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logging.getLogger("gateway")


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host or "127.0.0.1", int(port)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0..65535, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smx-gateway", description="SMX Smart Meter eXtension gateway")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", default=None, choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the gateway (the built-in simulated meter if no --config)")
    run.add_argument("--config", type=Path, help="TOML configuration file (see smx.example.toml)")
    run.add_argument(
        "--port", type=_port, help="OPC UA port, 0 for any free one (overrides the configuration)"
    )
    run.add_argument(
        "--web-port",
        type=_port,
        help="web page and REST API port, 0 for any free one (overrides the configuration)",
    )

    sim = sub.add_parser(
        "simulate",
        help="run a simulated meter on a TCP port (IEC 62056-21, DLMS/COSEM over HDLC, mode E)",
    )
    sim.add_argument("--listen", type=_host_port, default=("127.0.0.1", 4059), metavar="HOST:PORT")
    d = SimulatorConfig()
    sim.add_argument("--seed", type=int, default=d.seed)
    sim.add_argument("--speed", type=float, default=d.speed, help="meter time per real second")
    sim.add_argument("--drift-ppm", type=float, default=d.drift_ppm, help="meter clock drift")
    sim.add_argument("--history-days", type=float, default=d.history_days)
    sim.add_argument("--reaction-time", type=float, default=d.reaction_time_s, help="seconds (0.02 or 0.2)")
    sim.add_argument(
        "--hdlc-baudrate", type=int, default=d.hdlc_baudrate, choices=BAUDRATES,
        help="speed of a line that starts with HDLC (DLMS without mode E)",
    )  # fmt: skip
    sim.add_argument(
        "--referencing", default=d.referencing, choices=("ln", "sn", "both"),
        help="DLMS application contexts the meter accepts",
    )  # fmt: skip
    sim.add_argument("--password", default=d.password, help="DLMS LLS and IEC 62056-21 password")

    check = sub.add_parser("check-config", help="validate a configuration file and exit")
    check.add_argument("config", type=Path)
    doctor = sub.add_parser(
        "doctor",
        help="the installer's checks (serial device, meter, clocks, disk, certificate, tunnel, broker): "
        "PASS/FAIL and the fix; exit 1 if any fails (stop the service first: it owns the line)",
    )
    doctor.add_argument("--config", type=Path, default=Path("/etc/smx/smx.toml"))
    sub.add_parser(
        "example-config",
        help="print the example configuration (smx.example.toml, every key explained) to start one from",
    )
    add_commands(sub)
    add_vpn_command(sub)
    return parser


async def _run(args: argparse.Namespace) -> None:
    from gateway.app import Gateway

    config = _overridden(load_config(args.config) if args.config else demo_config(), args)
    logging.getLogger().setLevel(args.log_level or config.log_level)
    gateway = Gateway(config)
    task = asyncio.create_task(gateway.run())
    # Under systemd (Type=notify): READY=1 once serving, WATCHDOG=1 while alive, STOPPING=1.
    notifier = Notifier.from_environ()
    stopped = _stop_on_signals(task, notifier.stopping if notifier else None)
    _reload_on_sighup(gateway, args, notifier)
    ready = asyncio.create_task(gateway.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if gateway.ready.is_set():
        print(f"SMX gateway serving OPC UA at {gateway.endpoint}", flush=True)
        for meter in config.meters:
            sim = gateway.simulators.get(meter.id)
            source = f"simulated meter on {sim.url}" if sim else meter.url
            print(f"  meter {meter.id!r}: {source}; browse Objects/SMX/Meters/{meter.id}", flush=True)
        if gateway.web_url:
            print(
                f"  web page and REST API: {gateway.web_url} (OpenAPI: {gateway.web_url}api/openapi.json)",
                flush=True,
            )
        if config.archive.path:
            where = _absolute(config.archive.path)
            print(f"  archive: {where} (day files per meter and stream; OPC UA HistoryRead)", flush=True)
    else:
        ready.cancel()
    watchdog: asyncio.Task[None] | None = None
    if notifier is not None and gateway.ready.is_set():
        notifier.ready(f"serving OPC UA at {gateway.endpoint}")
        interval = watchdog_interval()
        if interval is not None:
            watchdog = asyncio.create_task(Watchdog(notifier, interval, gateway.hung, gateway.clock).run())
    try:
        await task
    except asyncio.CancelledError:
        if not stopped.is_set():
            raise
        log.info("stopped by %s", stopped.signal_name)
    finally:
        if watchdog is not None:
            watchdog.cancel()
        if notifier is not None:
            notifier.close()


def _overridden(config: GatewayConfig, args: argparse.Namespace) -> GatewayConfig:
    """``config`` with the command line's --port and --web-port."""
    if args.port is not None:
        config = replace(config, opcua=replace(config.opcua, port=args.port))
    if args.web_port is not None:
        config = replace(config, web=replace(config.web, port=args.web_port))
    return config


def _reload_on_sighup(gateway: Gateway, args: argparse.Namespace, notifier: Notifier | None) -> None:
    """SIGHUP (``systemctl reload``) reads the configuration file again and applies what
    may change while running, all or nothing (:mod:`gateway.reload`)."""
    running: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        if args.config is None:
            log.warning("SIGHUP: the built-in demo configuration has no file to read again")
            return
        if not gateway.ready.is_set():
            log.warning("SIGHUP: still starting; send it again once serving")
            return
        if notifier is not None:
            notifier.notify(RELOADING="1", MONOTONIC_USEC=str(time.monotonic_ns() // 1000))
        try:
            loaded = _overridden(await asyncio.to_thread(load_config, args.config), args)
        except ConfigError as err:
            log.error("configuration not reloaded, the running one kept: %s", err)
        else:
            if gateway.reload(loaded).applies and args.log_level is None:
                logging.getLogger().setLevel(loaded.log_level)
        finally:
            if notifier is not None:
                notifier.notify(READY="1", STATUS=f"serving OPC UA at {gateway.endpoint}")

    def handle() -> None:
        task = asyncio.create_task(reload())
        running.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(running.discard)

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, handle)


class _Stop(asyncio.Event):
    signal_name = ""


def _stop_on_signals(task: asyncio.Task[Any], on_stop: Callable[[], object] | None = None) -> _Stop:
    """SIGINT (Ctrl-C) and SIGTERM (a service manager) stop ``task`` cleanly: the archive's
    last records written, the clients told, the meter's session ended; ``on_stop`` is
    called as the stop begins (``STOPPING=1``).

    Set on the loop, so they work whoever started the process - a shell that starts
    background jobs with SIGINT ignored, a service manager - and the stop is a normal exit.
    """
    stop = _Stop()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):

        def handle(sig: signal.Signals = sig) -> None:
            if not stop.is_set():
                stop.signal_name = sig.name
                stop.set()
                if on_stop is not None:
                    on_stop()
                task.cancel()

        loop.add_signal_handler(sig, handle)
    return stop


def _absolute(path: str) -> Path:
    """Where a relative archive path lands (a path join with the working directory)."""
    return Path(path).absolute()


async def _simulate(args: argparse.Namespace) -> None:
    from gateway.simulator.server import simulator_from_config

    host, port = args.listen
    config = SimulatorConfig(
        host=host,
        port=port,
        seed=args.seed,
        speed=args.speed,
        drift_ppm=args.drift_ppm,
        history_days=args.history_days,
        reaction_time_s=args.reaction_time,
        hdlc_baudrate=args.hdlc_baudrate,
        referencing=args.referencing,
        password=args.password,
    )
    sim = simulator_from_config(config, SystemClock())
    await sim.start()
    print(f"simulated meter listening on {sim.url}", flush=True)
    waiting = asyncio.create_task(asyncio.Event().wait())
    stopped = _stop_on_signals(waiting)
    try:
        await waiting
    except asyncio.CancelledError:
        if not stopped.is_set():
            raise
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    journal = journal_stream()
    if journal is not None:
        # Run by systemd with the journal: priority prefixes, no time (the journal's own).
        handler = logging.StreamHandler(journal)
        handler.setFormatter(JournalFormatter())
        logging.basicConfig(level=args.log_level or "INFO", handlers=[handler])
    else:
        logging.basicConfig(
            level=args.log_level or "INFO",
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
    # asyncua logs every session at INFO; keep the operator's log about the meter.
    logging.getLogger("asyncua").setLevel(logging.WARNING)
    try:
        if args.command in ("certs", "users"):
            return run_admin(args)
        if args.command == "vpn":
            return run_vpn(args)
        if args.command == "doctor":
            from gateway.doctor import diagnose, report

            checks = asyncio.run(diagnose(load_config(args.config)))
            print(report(checks))
            return 1 if any(not c.ok for c in checks) else 0
        if args.command == "example-config":
            # Package data, so an installed gateway has it too (no checkout on the box).
            print(resources.files("gateway").joinpath("smx.example.toml").read_text(encoding="utf-8"), end="")
            return 0
        if args.command == "check-config":
            config = load_config(args.config)
            print(f"{args.config}: OK, {len(config.meters)} meter(s)")
            return 0
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_run(args) if args.command == "run" else _simulate(args))
    except ConfigError as err:
        print(f"configuration error: {err}", file=sys.stderr)
        return 2
    except GatewayError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
