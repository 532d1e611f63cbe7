"""What a portfolio is, and the one gate its definition passes (issue 18).

A portfolio has a name, the market's settlement period (15 or 60 minutes) and zone (its
delivery days start at that zone's midnight: 92/96/100 quarter hours), and members: sites
named by their PublisherId and sites whose configuration (``[[sites]] tags``) carries one
of its tags. A site may be in several portfolios at once (a BRP portfolio and a VPP pool).

Portfolios come from the head-end's configuration file (``[[portfolios]]``, changed with
the file) or through REST (stored in the database, changed at run time); the same
:func:`parse_portfolio` checks both, and refuses with :class:`~gateway.errors.MarketInputError`
naming the field, as the gateway's market services do.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from gateway.errors import MarketInputError
from gateway.localtime import meter_zone
from gateway.market.periods import PERIOD_MINUTES, MarketCalendar

#: A portfolio's name: a topic level, a NodeId string part and a URL path segment as it is.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: A tag: the same alphabet.
TAG = NAME
#: Members a portfolio may name one by one (tags scale further).
MAX_SITES = 100_000
ORIGINS = ("config", "rest")


@dataclass(frozen=True)
class Portfolio:
    """A validated portfolio definition."""

    name: str
    period_minutes: int = 15
    timezone: str = "Europe/Vienna"
    #: Members named by PublisherId.
    sites: tuple[str, ...] = ()
    #: Members by a tag their site configuration carries.
    tags: tuple[str, ...] = ()
    description: str = ""
    #: The largest average power (kW, either direction) a schedule may ask for; None: no limit.
    limit_kw: float | None = None
    #: Where it was defined: the configuration file (read-only through REST) or REST.
    origin: str = "rest"

    @cached_property
    def calendar(self) -> MarketCalendar:
        zone = meter_zone(self.timezone)
        assert zone is not None  # parse_portfolio checked it
        return MarketCalendar(zone, self.period_minutes)

    def members(self, tags_of: Mapping[str, Iterable[str]]) -> tuple[str, ...]:
        """The member PublisherIds: those named and those whose tags (``tags_of``: the
        configured sites' tags) meet the portfolio's, sorted, each once."""
        wanted = set(self.tags)
        tagged = (p for p, tags in tags_of.items() if wanted.intersection(tags)) if wanted else ()
        return tuple(sorted({*self.sites, *tagged}))

    def as_json(self) -> dict[str, Any]:
        """The definition as REST shows it and the database keeps it."""
        return {
            "name": self.name,
            "period_minutes": self.period_minutes,
            "timezone": self.timezone,
            "sites": list(self.sites),
            "tags": list(self.tags),
            "description": self.description,
            "limit_kw": self.limit_kw,
            "origin": self.origin,
        }


_KEYS = frozenset(
    {"name", "period_minutes", "timezone", "sites", "tags", "description", "limit_kw", "origin"}
)


def _strings(data: Mapping[str, Any], key: str, pattern: re.Pattern[str], what: str) -> tuple[str, ...]:
    raw = data.get(key, [])
    if not isinstance(raw, list):
        raise MarketInputError(f"{key}: expected a list of {what}s, got {type(raw).__name__}", field=key)
    if len(raw) > MAX_SITES:
        raise MarketInputError(f"{key}: at most {MAX_SITES} entries, got {len(raw)}", field=key)
    out: list[str] = []
    for n, item in enumerate(raw):
        if not isinstance(item, str) or not pattern.match(item):
            raise MarketInputError(
                f"{key}[{n}]: expected a {what} (letters, digits, '_', '.', '-'; at most 64), got {item!r}",
                field=key,
            )
        out.append(item)
    if len(set(out)) != len(out):
        duplicate = next(s for s in out if out.count(s) > 1)
        raise MarketInputError(f"{key}: {duplicate!r} is listed twice", field=key)
    return tuple(out)


def parse_portfolio(data: object, *, origin: str = "rest") -> Portfolio:
    """A :class:`Portfolio` from JSON-like ``data`` (a REST body, a stored definition, a
    configuration table); MarketInputError naming the field otherwise."""
    if not isinstance(data, Mapping):
        raise MarketInputError(f"a portfolio is a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise MarketInputError(f"{unknown[0]}: not a field of a portfolio", field=unknown[0])
    name = data.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise MarketInputError(
            f"name: expected letters, digits, '_', '.', '-' (at most 64, a letter or digit first), "
            f"got {name!r}",
            field="name",
        )
    minutes = data.get("period_minutes", 15)
    if isinstance(minutes, bool) or minutes not in PERIOD_MINUTES:
        raise MarketInputError(
            f"period_minutes: expected one of {', '.join(map(str, PERIOD_MINUTES))}, got {minutes!r}",
            field="period_minutes",
        )
    zone = data.get("timezone", "Europe/Vienna")
    try:
        known = isinstance(zone, str) and meter_zone(zone) is not None
    except ValueError:
        known = False
    if not known:
        raise MarketInputError(f"timezone: expected an IANA time zone like Europe/Vienna, got {zone!r}",
                               field="timezone")  # fmt: skip
    sites = _strings(data, "sites", NAME, "PublisherId")
    tags = _strings(data, "tags", TAG, "tag")
    if not sites and not tags:
        raise MarketInputError("sites, tags: a portfolio needs members (sites, tags or both)", field="sites")
    description = data.get("description", "")
    if not isinstance(description, str) or len(description) > 1000:
        raise MarketInputError("description: expected a text of at most 1000 characters", field="description")
    limit = data.get("limit_kw")
    if limit is not None and (
        isinstance(limit, bool)
        or not isinstance(limit, int | float)
        or not math.isfinite(limit)
        or limit <= 0
    ):
        raise MarketInputError(f"limit_kw: expected a positive number of kW or null, got {limit!r}",
                               field="limit_kw")  # fmt: skip
    given = data.get("origin", origin)
    if given not in ORIGINS:
        raise MarketInputError(f"origin: expected one of {', '.join(ORIGINS)}, got {given!r}", field="origin")
    return Portfolio(
        name, int(minutes), str(zone), sites, tags, description,
        None if limit is None else float(limit), str(given),
    )  # fmt: skip
