"""Market services (DESIGN §6), pure logic that the OPC UA, REST and web adapters call.

:mod:`~gateway.market.periods` lays settlement periods on market days (DST days
included), :mod:`~gateway.market.profiles` validates notified profiles, and
:mod:`~gateway.market.advice` computes the imbalance advice for the running period.
:mod:`~gateway.market.external` keeps the external energy data. Nothing here does I/O
or reads a clock (callers pass the time and the register values), except
:mod:`~gateway.market.desk`, the async front that stores profiles in worker threads, and
:mod:`~gateway.market.store`, the synchronous file code it runs there.
"""
