"""What a running gateway may take from a changed configuration file (``SIGHUP``, DESIGN §13).

One table says which settings apply while running: the market's refusal rules
(``allow_past``, ``limit_kw``), how an external value is pulled and judged (its source,
period, fields, freshness and bounds) and the log level. Everything else shapes the
address space, the archive, a meter's line or a listening socket, and needs a restart.

A reload is all or nothing: if anything in the file needs a restart, nothing is applied
and the gateway says what (the running configuration is always one file's, never half of
two). A file that does not load (a syntax error, a bad value) leaves the running one as it
is. The users file and the trust list need no reload: they are read when they change
(:class:`~gateway.security.auth.UserDirectory`, :meth:`~gateway.security.pki.Pki.validate`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from gateway.config import ExternalConfig, GatewayConfig

#: Settings a reload applies while running: (section, field).
LIVE = frozenset(
    {
        ("market", "allow_past"),
        ("market", "limit_kw"),
        ("", "log_level"),
        *(("external", f) for f in ("fresh_s", "source", "pull_s", "field", "time_field", "low", "high")),
    }
)
#: Not compared: where the configuration came from.
IGNORED = frozenset({"source"})


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """The differences between the running configuration and the file's, by setting name
    (``market.limit_kw``, ``external.spot_price.source``, ``meters[meter1].baudrate``)."""

    live: tuple[str, ...] = ()
    restart: tuple[str, ...] = ()

    @property
    def applies(self) -> bool:
        """Whether the reload is carried out: changes, and none that needs a restart."""
        return bool(self.live) and not self.restart


def plan(running: GatewayConfig, loaded: GatewayConfig) -> ReloadPlan:
    """What changes from ``running`` to ``loaded``, split by :data:`LIVE`."""
    live: list[str] = []
    restart: list[str] = []

    def note(section: str, name: str, key: str) -> None:
        (live if (section, key) in LIVE else restart).append(name)

    for f in dataclasses.fields(GatewayConfig):
        if f.name in IGNORED:
            continue
        old, new = getattr(running, f.name), getattr(loaded, f.name)
        if old == new:
            continue
        if f.name == "external":
            _externals(old, new, note)
        elif f.name == "meters":
            _meters(old, new, restart)
        elif dataclasses.is_dataclass(old):
            for key, _ in _differences(old, new):
                note(f.name, f"{f.name}.{key}", key)
        else:
            note("", f.name, f.name)
    return ReloadPlan(tuple(live), tuple(restart))


def _differences(old: Any, new: Any) -> list[tuple[str, Any]]:
    """The fields of two dataclass instances that differ, by name."""
    return [
        (f.name, getattr(new, f.name))
        for f in dataclasses.fields(old)
        if getattr(old, f.name) != getattr(new, f.name)
    ]


def _externals(old: tuple[ExternalConfig, ...], new: tuple[ExternalConfig, ...], note: Any) -> None:
    before, after = {c.name: c for c in old}, {c.name: c for c in new}
    # A value added or removed is a node added or removed in the address space.
    for name in sorted(before.keys() ^ after.keys()):
        note("external", f"external.{name} ({'added' if name in after else 'removed'})", "")
    for name in sorted(before.keys() & after.keys()):
        for key, _ in _differences(before[name], after[name]):
            note("external", f"external.{name}.{key}", key)


def _meters(old: tuple[Any, ...], new: tuple[Any, ...], restart: list[str]) -> None:
    before, after = {m.id: m for m in old}, {m.id: m for m in new}
    for mid in sorted(before.keys() ^ after.keys()):
        restart.append(f"meters[{mid}] ({'added' if mid in after else 'removed'})")
    for mid in sorted(before.keys() & after.keys()):
        restart += [f"meters[{mid}].{key}" for key, _ in _differences(before[mid], after[mid])]
