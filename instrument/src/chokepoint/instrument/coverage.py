"""What the agent cannot see: a library in use whose integration produced nothing.

Usage (the agent does this once its integrations and probes are installed)::

    from chokepoint.instrument.coverage import install_coverage
    undo = install_coverage(agent)   # agent.instruments, agent.probes, agent.meter_provider
    ...
    undo()                           # the gauge reports nothing more

A missing signal reads as "not the cause": DB time with no statement spans is blamed on
the app's own code.  So at every metric collection each check below compares evidence that
a library is *used* (counted independently of the integration being checked) with what
its integration *produced*:

==========================  ==========================================  ==============================================
library / what              used (independent evidence)                 produced
==========================  ==========================================  ==============================================
SQLAlchemy statement spans  connections returned to a SQLAlchemy pool  SQL statement spans (``db.client.operation.duration``
                            (the ``sqlalchemy_pool`` probe's count)     values of any SQL ``db.system.name``)
SQLAlchemy pool metrics     SQL statement spans, and an ``Engine``      pools and checkouts seen by ``sqlalchemy_pool``
                            exists (one ``gc`` scan, only then)
<server> server spans       connections accepted (``accept_backlog``    server spans (``http.server.request.duration``)
                            probe's count of ``socket.accept``)
confluent-kafka / aiokafka  Kafka consumer spans (receive / process)    partitions tracked by the consumer-lag probes
consumer lag                (the first of the two imported names it)
==========================  ==========================================  ==============================================

The server is the first of ``SERVERS`` whose running part is imported (gunicorn, uvicorn,
hypercorn, daphne, waitress, granian, the Werkzeug and Django development servers):
instrumentors and probes import the frameworks and servers they patch, so a library being
imported says nothing about its use.
A check whose library is not imported, or with less use than ``MIN_USES``, says nothing.
A used library is reported as the gauge ``chokepoint.agent.coverage`` (1: seen, 0: blind
spot) with ``chokepoint.coverage.library`` (distribution name), ``.version``, ``.what``
and ``.try`` (the switch to try), every collection; the first blind spot of each
library/what is logged once as a warning (logger ``chokepoint.instrument``; also on stderr
when the only handler is OpenTelemetry's log bridge).  Checks
whose evidence can run ahead of what they compare against (a connection accepted whose
request has not ended) judge only evidence already there at the previous collection.

Cost: nothing on the hot path; the counters the agent and its probes already keep are read
at collection.  A check whose probe is not installed (``CHOKEPOINT_DISABLED_PROBES``, or
``accept_backlog`` off Linux) is not made.  Never raises.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata

from opentelemetry.metrics import CallbackOptions, Observation

from chokepoint.instrument import signals

_log = logging.getLogger("chokepoint.instrument")

METER_NAME = "chokepoint.instrument"
MIN_USES = 5  # below this much use a check says nothing (a health check, a warm-up query)
NOT_SQL = frozenset({"redis", "mongodb", "memcached", "elasticsearch", "cassandra", "dynamodb", "couchbase"})
SERVERS = (  # (module imported once the server runs, distribution): the first one names the server
    ("gunicorn.arbiter", "gunicorn"),  # the gunicorn probe imports gunicorn's workers, not its arbiter
    ("uvicorn.server", "uvicorn"),
    ("hypercorn", "hypercorn"),
    ("daphne.server", "daphne"),
    ("waitress.server", "waitress"),
    ("granian", "granian"),
    ("werkzeug.serving", "Werkzeug"),
    ("django.core.servers.basehttp", "Django"),
)
SERVER_TRY = "chokepoint-instrument --plan CMD (is the web framework's integration on?); chokepoint-instrument bootstrap; create the app after the agent starts"
KAFKA_CONSUMERS = (
    ("confluent_kafka", "confluent-kafka", "confluent_kafka"),
    ("aiokafka", "aiokafka", "aiokafka"),
    ("kafka", "kafka-python", "kafka_python"),
)  # module, distribution, probe


@dataclass
class Check:
    """One library/what pair: ``used()`` and ``produced()`` are cumulative counts read at collection."""

    library: str  # distribution name
    module: str  # import name: the check runs only once it is in sys.modules
    what: str
    try_: Callable[[], str]
    used: Callable[[], int]
    produced: Callable[[], int]
    grace: bool = False  # judge only the use already seen at the previous collection
    _used_before: int = field(default=0, repr=False)
    _version: str | None = field(default=None, repr=False)

    def verdict(self) -> tuple[int, int] | None:
        """``(value, used)``: 1 seen, 0 blind spot; ``None`` while unused or not imported."""
        if self.module not in sys.modules:
            return None
        used = self.used()
        judged, self._used_before = (self._used_before, used) if self.grace else (used, used)
        if judged < MIN_USES:
            return None
        return (1 if self.produced() > 0 else 0), judged

    @property
    def version(self) -> str:
        if self._version is None:
            try:
                self._version = metadata.version(self.library)
            except Exception:
                self._version = getattr(sys.modules.get(self.module), "__version__", "unknown")
        return self._version


class Coverage:
    """The checks, evaluated at each collection into ``chokepoint.agent.coverage`` observations."""

    def __init__(self, checks: list[Check]):
        self.checks = checks
        self.active = True
        self.warned: set[tuple[str, str]] = set()

    def evaluate(self) -> list[tuple[Check, int]]:
        results = []
        for check in self.checks:
            try:
                verdict = check.verdict()
            except Exception:
                _log.debug("chokepoint: coverage check %s/%s failed", check.library, check.what, exc_info=True)
                continue
            if verdict is None:
                continue
            value, used = verdict
            results.append((check, value))
            if value == 0 and (check.library, check.what) not in self.warned:
                self.warned.add((check.library, check.what))
                warn(
                    "chokepoint: blind spot: %s %s is in use (%d) but its integration produced no %s; "
                    "the sidecar cannot see it (a missing signal is not 'not the cause'). Try %s",
                    check.library,
                    check.version,
                    used,
                    check.what,
                    check.try_(),
                )
        return results

    def observe(self, options: CallbackOptions | None = None) -> Iterable[Observation]:
        if not self.active:
            return []
        observations = []
        for check, value in self.evaluate():
            try:
                attributes = {
                    signals.ATTR_COVERAGE_LIBRARY: check.library,
                    signals.ATTR_COVERAGE_VERSION: check.version,
                    signals.ATTR_COVERAGE_WHAT: check.what,
                    signals.ATTR_COVERAGE_TRY: check.try_(),
                }
            except Exception:
                continue
            observations.append(Observation(value, attributes))
        return observations


def warn(message: str, *args) -> None:
    """A warning on ``chokepoint.instrument`` (printed on stderr even when only OpenTelemetry's
    log bridge listens: :mod:`chokepoint.instrument.visible_log`)."""
    _log.warning(message, *args)


# ---------------------------------------------------------------- the checks
def _total(histogram, keep: Callable[[tuple], bool] = lambda values: True) -> int:
    counts = getattr(histogram, "counts", None)
    if counts is None:
        return 0
    return sum(n for values, n in counts().items() if keep(values))


def _sql_statements(instruments) -> int:
    return _total(instruments.db_duration, lambda values: str(values[0]).lower() not in NOT_SQL)


def _probe(probes, name: str):
    return next((p for p in probes if getattr(p, "name", None) == name and getattr(p, "active", True)), None)


def sqlalchemy_try(config) -> str:
    """The next SQLAlchemy statement path to try, from the one running."""
    from chokepoint.instrument.sqlalchemy_lean import spans_mode

    if getattr(config, "sqlalchemy", "lean") != "lean":
        return (
            "pip install opentelemetry-instrumentation-sqlalchemy (chokepoint-instrument bootstrap); OTEL_PYTHON_DISABLED_INSTRUMENTATIONS without sqlalchemy"
        )
    if spans_mode() == "dialect":
        return "CHOKEPOINT_SQLALCHEMY_SPANS=listeners"
    return "CHOKEPOINT_SQLALCHEMY=upstream"


def build_checks(instruments, probes: list, config) -> list[Check]:
    """Every check this agent can make (module table); missing pieces make no check."""
    checks = []
    pool_probe = _probe(probes, "sqlalchemy_pool")
    if pool_probe is not None:
        checks.append(
            Check(
                "SQLAlchemy",
                "sqlalchemy",
                "statement spans",
                lambda: sqlalchemy_try(config),
                used=lambda: pool_probe.returned,
                produced=lambda: _sql_statements(instruments),
            )
        )

    def pool_seen() -> int:
        return (pool_probe.returned + len(pool_probe.pools)) if pool_probe is not None else 0

    engines = EnginesExist()

    def statements_through_sqlalchemy() -> int:
        statements = _sql_statements(instruments)  # the driver's as well: confirmed by an Engine only when it matters
        return statements if statements < MIN_USES or pool_seen() or engines() else 0

    checks.append(
        Check(
            "SQLAlchemy",
            "sqlalchemy",
            "pool metrics",
            lambda: "the sqlalchemy_pool probe on (CHOKEPOINT_PROBES, CHOKEPOINT_DISABLED_PROBES); CHOKEPOINT_SQLALCHEMY_POOL_HOOKS=events",
            used=statements_through_sqlalchemy,
            produced=pool_seen,
        )
    )
    accepts = _probe(probes, "accept_backlog")  # counts this process's accepted connections
    if accepts is not None:
        for module, distribution in SERVERS:
            checks.append(
                Check(
                    distribution,
                    module,
                    "server spans",
                    lambda: SERVER_TRY,
                    used=lambda module=module: accepts.accepted if _first_server() == module else 0,
                    produced=lambda: _total(instruments.server_duration),
                    grace=True,
                )
            )
    lag_probes = [p for p in (_probe(probes, name) for _module, _distribution, name in KAFKA_CONSUMERS) if p is not None]
    for module, distribution, probe_name in KAFKA_CONSUMERS:  # one check: the first client imported names it
        checks.append(
            Check(
                distribution,
                module,
                "consumer lag",
                lambda probe_name=probe_name: (
                    f"the {probe_name} probe on (CHOKEPOINT_PROBES, CHOKEPOINT_DISABLED_PROBES); create consumers after the agent starts (chokepoint-instrument CMD)"
                ),
                used=lambda module=module: _kafka_consumed(instruments) if _first_kafka_client() == module else 0,
                produced=lambda: sum(len(st.partitions) for probe in lag_probes for st in list(probe.consumers.values())),
                grace=True,
            )
        )
    return checks


def _first_kafka_client() -> str | None:
    return next((module for module, _distribution, _probe_name in KAFKA_CONSUMERS if module in sys.modules), None)


class EnginesExist:
    """Whether this process holds a SQLAlchemy ``Engine``: one scan of the garbage collector's
    objects, made the first time it is asked (only when statements were seen and no SQLAlchemy
    pool was: instrumentors and probes import SQLAlchemy whether or not the app uses it)."""

    def __init__(self):
        self.answer: bool | None = None

    def __call__(self) -> bool:
        if self.answer is None:
            engine = getattr(sys.modules.get("sqlalchemy.engine"), "Engine", None)
            # type(), not isinstance(): isinstance asks a lazy proxy for its __class__, which
            # evaluates it (Django's unconfigured settings raise ImproperlyConfigured)
            self.answer = engine is not None and any(issubclass(type(o), engine) for o in gc.get_objects())
        return self.answer


def _first_server() -> str | None:
    return next((module for module, _ in SERVERS if module in sys.modules), None)


def _kafka_consumed(instruments) -> int:
    def kafka_consumer(values: tuple) -> bool:
        return values[0] == "kafka" and values[2] in ("receive", "process")

    return _total(instruments.messaging_process_duration, kafka_consumer) + _total(instruments.messaging_duration, kafka_consumer)


def install_coverage(agent) -> Callable[[], None]:
    """Register the coverage gauge on ``agent.meter_provider``; returns the undo callable.  Never raises."""
    coverage: Coverage | None = None
    try:
        coverage = Coverage(build_checks(agent.instruments, list(agent.probes), agent.config))
        meter = agent.meter_provider.get_meter(METER_NAME)
        meter.create_observable_gauge(
            signals.AGENT_COVERAGE,
            callbacks=[coverage.observe],
            unit="1",
            description="Per library in use: 1 its integration produced signals, 0 blind spot",
        )
        agent.coverage = coverage
    except Exception:
        _log.warning("chokepoint: the coverage check failed to install; blind spots will not be reported", exc_info=True)

    def undo() -> None:
        if coverage is not None:
            coverage.active = False

    return undo
