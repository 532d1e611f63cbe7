"""The catalogue objects the simulated meter models, stated once for the tests.

The OBIS catalogue (``gateway/obis.py``) is what the gateway can publish; the simulator
(``gateway/simulator/``) is one meter. It models the objects in :data:`MODELLED` - those its
physics has a value for - and answers every other catalogue object as a meter without it
does: DLMS/COSEM object-undefined, IEC 62056-21 the error message ``(ERROR)``; the gateway
then publishes it as Unsupported (OPC UA BadConfigurationError). Tests that go through the
whole catalogue expect exactly that, so a row added for an object the simulator lacks
(neutral current, :data:`tests.support.extra_catalogue.NEUTRAL_CURRENT`) is expected to be
"not there" instead of turning them red.
"""

from __future__ import annotations

from gateway.meter.model import Quality, Snapshot
from gateway.obis import Obis

#: OBIS C of the instantaneous values the physics gives (D = 7, E = 0).
_INSTANT_C = (
    1, 2, 3, 4, 13, 14,  # totals: P+ P- Q+ Q-, power factor, frequency
    21, 22, 23, 24, 31, 32, 33,  # L1: P+ P- Q+ Q-, current, voltage, power factor
    41, 42, 43, 44, 51, 52, 53,  # L2
    61, 62, 63, 64, 71, 72, 73,  # L3
)  # fmt: skip
#: The catalogue objects the simulated meter answers with a value: the instantaneous values
#: above and the energy registers A+ A- R+ R- (D = 8).
MODELLED: frozenset[Obis] = frozenset(
    [Obis(1, 0, c, 7, 0) for c in _INSTANT_C] + [Obis(1, 0, c, 8, 0) for c in (1, 2, 3, 4)]
)


def modelled(obis: Obis) -> bool:
    """Whether the simulated meter has ``obis`` (group B ignored, as the gateway matches)."""
    return any(obis.matches(m) for m in MODELLED)


def expected_quality(obis: Obis) -> Quality:
    """The quality a gateway reading the simulated meter settles on for ``obis``."""
    return Quality.GOOD if modelled(obis) else Quality.UNSUPPORTED


def as_modelled(snapshot: Snapshot) -> bool:
    """Every value of ``snapshot`` as the simulated meter gives it: Good where it models the
    object, Unsupported (not there) where it does not."""
    return all(r.quality is expected_quality(o) for o, r in snapshot.readings.items())
