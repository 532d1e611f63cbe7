"""The gateway with rows added to the OBIS catalogue, as a developer adds them to
``gateway/obis.py``, without touching the file::

    python -m tests.support.extra_catalogue run --config smx.toml --port 0 --web-port 0

Many modules copy ``CATALOGUE`` into tables of their own when they are imported, so the
rows are added in a fresh process before any of them is: only ``gateway.obis`` (and what
it needs) may be loaded by then, which :func:`extend_catalogue` checks. Then this is
``smx-gateway`` (:func:`gateway.cli.main`) with the given arguments.

The module imports nothing but ``gateway.obis`` at the top, so a test may import
:data:`EXTRA_ROWS` from it to know what to look for.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from gateway import obis
from gateway.obis import Kind, Obis, ObisInfo, Refresh

#: Neutral current: an instantaneous value the simulated meter does not model.
NEUTRAL_CURRENT = ObisInfo(
    Obis.parse("1-0:91.7.0"),
    "Current N",
    "Neutral current, RMS",
    "A",
    Kind.INSTANTANEOUS,
    Refresh.SECOND,
    13,
    0.0,
    100.0,
)
EXTRA_ROWS: tuple[ObisInfo, ...] = (NEUTRAL_CURRENT,)

#: What importing gateway.obis loads; anything else would have read the old catalogue.
_LOADED_WITH_OBIS = frozenset({"gateway", "gateway.obis", "gateway.errors"})


def extended(catalogue: Iterable[ObisInfo], rows: Iterable[ObisInfo] = EXTRA_ROWS) -> tuple[ObisInfo, ...]:
    """``catalogue`` and those of ``rows`` it does not have yet: a developer may already have
    added one to ``gateway/obis.py``, and the same object twice would be two OPC UA nodes."""
    catalogue = tuple(catalogue)
    have = {i.obis.key for i in catalogue}
    return (*catalogue, *(i for i in rows if i.obis.key not in have))


def extend_catalogue(rows: Iterable[ObisInfo]) -> None:
    """Append ``rows`` to ``gateway.obis.CATALOGUE`` (those it lacks) before anything else reads it."""
    early = sorted(m for m in sys.modules if m.startswith("gateway.") and m not in _LOADED_WITH_OBIS)
    if early:
        raise RuntimeError(f"too late to extend the catalogue: {early} already imported it")
    stock = obis.CATALOGUE
    obis.CATALOGUE = extended(stock, rows)
    added = obis.CATALOGUE[len(stock) :]
    # lookup() answers from a table obis.py derives from the catalogue when it is loaded.
    obis._BY_KEY.update({(i.obis.a, i.obis.c, i.obis.d, i.obis.e, i.obis.f): i for i in added})
    if any(obis.lookup(i.obis) is not i for i in added):
        raise RuntimeError("gateway.obis.lookup() does not find the added rows")


def main(argv: list[str]) -> int:
    extend_catalogue(EXTRA_ROWS)
    from gateway.cli import main as smx_gateway  # only now: it imports the catalogue's users

    return smx_gateway(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
