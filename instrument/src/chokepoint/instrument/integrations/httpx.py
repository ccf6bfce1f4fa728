"""httpx: chokepoint's client spans from one transport wrapper (:mod:`chokepoint.instrument.httpx_lean`).

Plan row ``httpx``; switch ``CHOKEPOINT_HTTPX`` (``lean`` / ``upstream``); entry point
``chokepoint_httpx``.  With the agent's instruments it also counts calls made without a
timeout.
"""

from __future__ import annotations

from chokepoint.instrument.httpx_lean import install_lean_httpx
from chokepoint.instrument.integrations.base import Integration


class HttpxIntegration(Integration):
    library = "httpx"
    _instruments = ("httpx >= 0.18",)

    def install(self, tracer_provider, instruments, config):
        return install_lean_httpx(instruments, tracer_provider, config=config)
