"""requests: chokepoint's client spans around ``Session.send`` (:mod:`chokepoint.instrument.requests_lean`).

Plan row ``requests``; switch ``CHOKEPOINT_REQUESTS`` (``lean`` / ``upstream``); entry
point ``chokepoint_requests``.
"""

from __future__ import annotations

from chokepoint.instrument.integrations.base import Integration
from chokepoint.instrument.requests_lean import install_lean_requests


class RequestsIntegration(Integration):
    library = "requests"
    _instruments = ("requests ~= 2.0",)

    def install(self, tracer_provider, instruments, config):
        return install_lean_requests(tracer_provider, config=config)
