"""aiomqtt's client with waits that never lose a cancellation.

aiomqtt waits for every acknowledgement (CONNACK, PUBACK, SUBACK, UNSUBACK, the end of a
DISCONNECT) with ``asyncio.wait_for``. On Python 3.11, ``wait_for`` returns the result
instead of raising when its task is cancelled in the loop iteration after the
acknowledgement came (the awaited future is done by then): the cancellation is lost. A
loop around a publish then goes on after a stop, and whoever waits for its task to end
(a TaskGroup, a service being stopped) waits forever. :class:`Client` waits with
``asyncio.timeout`` instead, which always raises a cancellation; a timeout is aiomqtt's
``MqttError("Operation timed out")`` as before.

The uplink (:mod:`gateway.uplink.service`) and the head-end's clients (:mod:`headend.broker`)
use it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable
from typing import TypeVar

import aiomqtt

T = TypeVar("T")


class Client(aiomqtt.Client):
    """:class:`aiomqtt.Client` whose waits pass every cancellation on."""

    async def _wait_for(self, fut: Awaitable[T], timeout: float | None) -> T:
        if timeout is None:
            timeout = self.timeout
        try:
            async with asyncio.timeout(None if timeout == math.inf else timeout):
                return await fut
        except TimeoutError:
            raise aiomqtt.MqttError("Operation timed out") from None
