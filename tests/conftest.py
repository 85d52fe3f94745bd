"""Shared pytest configuration: hypothesis profiles.

``ci`` (the default) runs 500 derandomized examples per property so CI is reproducible; ``dev`` runs
50 for quick local iterations. Select with ``GROWCORE_HYPOTHESIS_PROFILE=dev``.
"""

import os

from hypothesis import HealthCheck, settings

_SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large]

settings.register_profile(
    "ci",
    max_examples=500,
    deadline=None,
    suppress_health_check=_SUPPRESS,
    derandomize=True,
)
settings.register_profile(
    "dev",
    max_examples=50,
    deadline=None,
    suppress_health_check=_SUPPRESS,
)
settings.load_profile(os.environ.get("GROWCORE_HYPOTHESIS_PROFILE", "ci"))
