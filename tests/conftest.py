"""Settings for every test: Hypothesis judges inputs, not the machine's speed.

The tests run beside each other in worker processes (pytest-xdist) and often beside a
loaded machine; Hypothesis's wall-clock checks (a per-example deadline, "input generation
is slow") would then fail a property that holds. Behaviour is asserted; speed is
measured in ``bench/``.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile("smx", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("smx")
