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

Fix-ups (:mod:`.fixup`): what chokepoint adds over an upstream instrumentor, run by the
distro right after it when the plan says so (:meth:`~chokepoint.instrument.plan.Plan.fixes`),
their undo taken by the agent; entry points ``chokepoint_<fixup>``::

    for fixup in fixups_for("sqlite3"):      # classes completing the sqlite3 instrumentor
        fixup().instrument(plan=plan, skip_dep_check=True)

- :mod:`.django` — the Django instrumentor once the project's settings load
- :mod:`.sqlite3` — ``conn.execute()`` traced like cursor statements
- :mod:`.sqlalchemy_dedupe` — one span per statement, not SQLAlchemy's and the driver's
- :mod:`.kafka` — confluent-kafka, kafka-python, aiokafka: consumers in the producer's
  trace, produce waits as Kafka time
"""

from __future__ import annotations

from chokepoint.instrument.integrations.asgi import AsgiIntegration
from chokepoint.instrument.integrations.base import Integration
from chokepoint.instrument.integrations.django import DjangoFixups
from chokepoint.instrument.integrations.fixup import Fixup
from chokepoint.instrument.integrations.httpx import HttpxIntegration
from chokepoint.instrument.integrations.kafka import AiokafkaFixups, ConfluentKafkaFixups, KafkaPythonFixups
from chokepoint.instrument.integrations.requests import RequestsIntegration
from chokepoint.instrument.integrations.sqlalchemy import SqlalchemyIntegration
from chokepoint.instrument.integrations.sqlalchemy_dedupe import SqlalchemyDedupe
from chokepoint.instrument.integrations.sqlite3 import Sqlite3Fixups
from chokepoint.instrument.integrations.urllib3 import Urllib3Integration

OWN_INTEGRATIONS: tuple[type[Integration], ...] = (AsgiIntegration, SqlalchemyIntegration, HttpxIntegration, RequestsIntegration, Urllib3Integration)

FIXUPS: tuple[type[Fixup], ...] = (DjangoFixups, Sqlite3Fixups, SqlalchemyDedupe, ConfluentKafkaFixups, KafkaPythonFixups, AiokafkaFixups)


def fixups_for(library: str) -> tuple[type[Fixup], ...]:
    """The fix-up integrations that complete upstream instrumentor ``library`` (entry-point name)."""
    return tuple(fixup for fixup in FIXUPS if fixup.library == library)


__all__ = [
    "FIXUPS",
    "OWN_INTEGRATIONS",
    "AiokafkaFixups",
    "AsgiIntegration",
    "ConfluentKafkaFixups",
    "DjangoFixups",
    "Fixup",
    "HttpxIntegration",
    "Integration",
    "KafkaPythonFixups",
    "RequestsIntegration",
    "SqlalchemyDedupe",
    "SqlalchemyIntegration",
    "Sqlite3Fixups",
    "Urllib3Integration",
    "fixups_for",
]
