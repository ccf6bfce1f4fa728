"""chokepoint's own integrations: one module per library, each a ``BaseInstrumentor``.

Usage::

    from chokepoint.instrument.integrations import OWN_INTEGRATIONS
    for integration in OWN_INTEGRATIONS:            # classes, in install order
        if agent.plan.own(integration.library): ...

Each is registered as an ``opentelemetry_instrumentor`` entry point named
``chokepoint_<library>`` (``instrument/pyproject.toml``), so ``opentelemetry-instrument``
with another distro still loads them, and
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=chokepoint_httpx`` turns one off (the plan then
gives that library the upstream instrumentor).  Under chokepoint's distro the agent
installs them itself, from the plan (:mod:`chokepoint.instrument.plan`), with its own
tracer provider, instruments and config, and owns their undo: ``Agent.shutdown()`` calls
``uninstrument()`` on each.

- :mod:`.asgi` — FastAPI / Starlette server spans (``CHOKEPOINT_ASGI``)
- :mod:`.httpx` — httpx client spans (``CHOKEPOINT_HTTPX``)
- :mod:`.requests` — requests client spans (``CHOKEPOINT_REQUESTS``)
- :mod:`.urllib3` — urllib3 client spans (``CHOKEPOINT_URLLIB3``)
- :mod:`.sqlalchemy` — statement spans from the engine dialect (``CHOKEPOINT_SQLALCHEMY``)
"""

from __future__ import annotations

from chokepoint.instrument.integrations.asgi import AsgiIntegration
from chokepoint.instrument.integrations.base import Integration
from chokepoint.instrument.integrations.httpx import HttpxIntegration
from chokepoint.instrument.integrations.requests import RequestsIntegration
from chokepoint.instrument.integrations.sqlalchemy import SqlalchemyIntegration
from chokepoint.instrument.integrations.urllib3 import Urllib3Integration

OWN_INTEGRATIONS: tuple[type[Integration], ...] = (AsgiIntegration, SqlalchemyIntegration, HttpxIntegration, RequestsIntegration, Urllib3Integration)

__all__ = ["OWN_INTEGRATIONS", "AsgiIntegration", "HttpxIntegration", "Integration", "RequestsIntegration", "SqlalchemyIntegration", "Urllib3Integration"]
