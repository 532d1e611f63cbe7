"""Portfolios of sites for BRP and VPP services (issue 18; DESIGN §12).

A balance-responsible party or a VPP operator holds a *portfolio* of sites, has notified
its schedule per settlement period and steers it every few seconds. The pure cores:

* :mod:`~headend.portfolio.model` — what a portfolio is (name, settlement period, zone,
  members by site and by tag) and the one gate its definition passes;
* :mod:`~headend.portfolio.member` — one member site as the head-end sees it from its live
  and register messages: latest net power, energy at any instant (the gateway's
  interpolation at the period start), its recent profile;
* :mod:`~headend.portfolio.aggregate` — a bucket's partial aggregate, the portfolio's
  aggregate combined from the buckets' partials, the advice and the flexibility ranking;
* :mod:`~headend.portfolio.partials` — the partials as the instances exchange them.

:mod:`~headend.portfolio.service` is the async part: leases, the broker connection of the
portfolio buckets it owns, the 1-second tick, the history it writes.
"""
