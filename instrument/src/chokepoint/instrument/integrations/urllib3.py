"""urllib3: chokepoint's client spans around ``HTTPConnectionPool.urlopen`` (:mod:`chokepoint.instrument.urllib3_lean`).

Plan row ``urllib3``; switch ``CHOKEPOINT_URLLIB3`` (``lean`` / ``upstream``); entry point
``chokepoint_urllib3``.
"""

from __future__ import annotations

from chokepoint.instrument.integrations.base import Integration
from chokepoint.instrument.urllib3_lean import install_lean_urllib3


class Urllib3Integration(Integration):
    library = "urllib3"
    _instruments = ("urllib3 >= 1.0.0, < 3.0.0",)

    def install(self, tracer_provider, instruments, config):
        return install_lean_urllib3(tracer_provider, config=config)
