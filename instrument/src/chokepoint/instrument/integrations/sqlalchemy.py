"""SQLAlchemy: statement spans from the engine dialect over the upstream instrumentor
(:mod:`chokepoint.instrument.sqlalchemy_lean`).

Plan row ``sqlalchemy``; switches ``CHOKEPOINT_SQLALCHEMY`` (``lean`` / ``upstream``) and
``CHOKEPOINT_SQLALCHEMY_SPANS`` (``dialect`` / ``listeners``); entry point
``chokepoint_sqlalchemy``.  Needs ``opentelemetry-instrumentation-sqlalchemy``
(``chokepoint-instrument[sqlalchemy]``).
"""

from __future__ import annotations

from chokepoint.instrument.integrations.base import Integration


class SqlalchemyIntegration(Integration):
    library = "sqlalchemy"
    _instruments = ("sqlalchemy >= 1.4",)

    def install(self, tracer_provider, instruments, config):
        from chokepoint.instrument.sqlalchemy_lean import install_lean_sqlalchemy

        return install_lean_sqlalchemy()
