"""The local web: REST API, live page and external data sources (DESIGN §7).

:mod:`~gateway.web.api` serves the API and the page (``static/``) with aiohttp in the
gateway's event loop, :mod:`~gateway.web.openapi` describes it, :mod:`~gateway.web.live`
pushes the live feed, and :mod:`~gateway.market.sources` pulls external energy data.
"""
