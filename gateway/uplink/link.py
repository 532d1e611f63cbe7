"""The uplink's link discipline for slow, flaky links (3G): pacing, backoff, TLS.

Pure policy objects on the injected clock, and the one place that builds the broker
connection's TLS context. The connection itself is owned by the uplink service
(:mod:`gateway.uplink.service`); aiomqtt does not reconnect by itself, so that loop is ours.
"""

from __future__ import annotations

import random
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from gateway.clock import Clock
from gateway.errors import ConfigError


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        parts = urlsplit(url)
        tls = parts.scheme == "mqtts"
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ConfigError(f"[upstream] broker: expected mqtts://host:port, got {url!r}")
        return cls(parts.hostname, parts.port or (8883 if tls else 1883), tls)

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


class Backoff:
    """Reconnect delays with "full jitter": the n-th retry waits a random time in
    ``[floor, min(maximum, first * 2**n)]``.

    After a broker restart a thousand boxes lose the link in the same second; with a
    fixed delay they would all come back in the same second too. Spreading every retry
    over its whole window keeps the broker's connect rate near ``boxes / window`` (with
    the default 30-s first window: about 35 a second for a thousand boxes).
    """

    #: No retry comes sooner than this, whatever the draw.
    FLOOR_S = 1.0

    def __init__(self, first: float, maximum: float, rng: random.Random | None = None) -> None:
        self.first = first
        self.maximum = maximum
        self.rng = rng or random.Random()
        self.attempt = 0

    def next_delay(self) -> float:
        window = min(self.maximum, self.first * 2.0**self.attempt)
        self.attempt = min(self.attempt + 1, 62)
        return self.rng.uniform(min(self.FLOOR_S, window), window)

    def reset(self) -> None:
        """A connection that held: the next outage starts from the first window."""
        self.attempt = 0


class TokenBucket:
    """A rate limit on the injected clock: ``rate`` tokens a second, at most ``burst`` saved."""

    def __init__(self, rate: float, burst: float, clock: Clock) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._tokens = burst
        self._at = clock.monotonic()

    def _refill(self) -> None:
        now = self.clock.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def delay(self, amount: float) -> float:
        """Seconds until ``amount`` tokens are there (0: now). More than the burst waits
        until the bucket is full, then goes into debt: a large message is never refused."""
        self._refill()
        need = min(amount, self.burst)
        return 0.0 if self._tokens >= need else (need - self._tokens) / self.rate

    def take(self, amount: float) -> None:
        self._refill()
        self._tokens -= amount

    async def wait(self, amount: float) -> None:
        while (delay := self.delay(amount)) > 0:
            await self.clock.sleep(delay)
        self.take(amount)


def tls_context(ca: str, certificate: Path, key: Path) -> ssl.SSLContext:
    """A TLS >= 1.2 client context that verifies the broker against ``ca`` (and its host
    name) and presents ``certificate``; ConfigError naming the file that is wrong."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_verify_locations(cafile=ca)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"[upstream] ca: cannot load {ca}: {err}") from err
    try:
        context.load_cert_chain(certificate, key)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"[upstream] certificate/key: cannot load {certificate} / {key}: {err}") from err
    return context
