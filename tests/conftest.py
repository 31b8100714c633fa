"""Shared test settings.

Hypothesis: the ``ci`` profile (used when ``CI`` is set) is derandomised so a CI run is
reproducible; locally the ``dev`` profile explores new examples each run. Neither has a deadline:
timing belongs in ``invkit bench``, not in tests.
"""

from __future__ import annotations

import os

# a broken built-in plugin must fail the suite, not just warn (see invkit.plugins)
os.environ.setdefault("INVKIT_STRICT_PLUGINS", "1")

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
