"""The plan: which integration each library gets — chokepoint's own, the upstream one, or none.

Usage::

    from chokepoint.instrument.config import AgentConfig
    from chokepoint.instrument.plan import make_plan
    plan = make_plan(AgentConfig.from_env())
    plan.path("httpx")            # "chokepoint", "upstream" or "off"
    print(plan.render())          # one line per library: library, version, path, why

    chokepoint-instrument --plan python app.py     # prints the plan and exits

One table, :data:`LIBRARIES`, says per library what chokepoint can own and which
upstream instrumentors its own integration replaces ("X replaces Y" is data: a row's
``replaces``).  :func:`make_plan` reads only the :class:`~chokepoint.instrument.config.AgentConfig`
and what is installed (distribution metadata; nothing is imported), and decides:

- ``chokepoint``: the row has an own integration, its switch (``CHOKEPOINT_ASGI``,
  ``CHOKEPOINT_HTTPX``, ``CHOKEPOINT_REQUESTS``, ``CHOKEPOINT_URLLIB3``,
  ``CHOKEPOINT_SQLALCHEMY``) is ``lean``, and — for the HTTP clients — HTTP semconv is the
  stable ``http`` (``OTEL_SEMCONV_STABILITY_OPT_IN``); the upstream instrumentors it
  replaces are not run.  SQLAlchemy's own path runs over the upstream instrumentor (its
  statement spans from the engine dialect, ``CHOKEPOINT_SQLALCHEMY_SPANS``), so it needs it;
- ``upstream``: the upstream ``opentelemetry-instrumentation-*`` instrumentor is installed
  and chokepoint adds only its fix-ups (named in ``why``).  A row's fix-ups are one
  integration (its ``fixup``: ``chokepoint_django``, ``chokepoint_sqlite3``,
  ``chokepoint_sqlalchemy_dedupe``, ``chokepoint_confluent_kafka``, ``chokepoint_kafka``,
  ``chokepoint_aiokafka``) that runs right after the upstream instrumentor, on the own
  SQLAlchemy path too (:meth:`Plan.fixes`); ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=chokepoint_<fixup>``
  leaves the upstream instrumentor as it is;
- ``off``: disabled (``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``), covered by a probe
  (``system_metrics``), or the library is installed with no instrumentation for it — then
  ``why`` names the extra to install (``pip install 'chokepoint-instrument[flask]'``, or
  ``chokepoint-instrument bootstrap``): the agent cannot see that library.

Libraries that are not installed are not in the plan.  The agent logs the plan once at
start-up (``chokepoint.instrument`` logger, info level).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, entry_points, version

from chokepoint.instrument.config import AgentConfig

_log = logging.getLogger("chokepoint.instrument")

OWN = "chokepoint"
UPSTREAM = "upstream"
OFF = "off"


@dataclass(frozen=True)
class Library:
    """One row of the plan's table.

    ``name``: the upstream instrumentor's entry-point name; ``distributions``: the PyPI
    names that provide the library (the first installed one gives the version);
    ``instrumentation``: the upstream package (``opentelemetry-instrumentation-<x>``), also
    the ``chokepoint-instrument[<extra>]`` that brings it; ``own``: the
    :class:`AgentConfig` field that switches chokepoint's own integration (``None``: none);
    ``own_what``: what that integration is; ``replaces``: upstream entry points the own
    integration stands in for; ``own_needs_upstream``: the own path patches the upstream
    instrumentor; ``http_client``: the own path is for stable HTTP semconv only;
    ``fixups``: what chokepoint adds over upstream; ``fixup``: the fix-up integration that
    adds it (:mod:`chokepoint.instrument.integrations`, entry point ``chokepoint_<fixup>``),
    run right after the upstream instrumentor; ``fixup_runs_upstream``: that fix-up calls the
    upstream instrumentor itself (Django: once the project's settings load);
    ``off_because``: never instrumented.
    """

    name: str
    distributions: tuple[str, ...]
    instrumentation: str
    extra: str
    own: str | None = None
    own_what: str = ""
    replaces: tuple[str, ...] = ()
    own_needs_upstream: bool = False
    http_client: bool = False
    fixups: str = ""
    fixup: str = ""
    fixup_runs_upstream: bool = False
    off_because: str = ""


def _row(name, dists, extra=None, instrumentation=None, **kwargs) -> Library:
    extra = extra or name.replace("_", "-")
    return Library(name, tuple(dists), instrumentation or f"opentelemetry-instrumentation-{extra}", extra, **kwargs)


_ASGI = "chokepoint.instrument.asgi: one lean server span per request"
_CLIENT = "chokepoint's {0} client spans (chokepoint.instrument.{0}_lean)"

LIBRARIES: tuple[Library, ...] = (
    _row("fastapi", ["fastapi"], own="asgi", own_what=_ASGI, replaces=("fastapi", "starlette")),
    _row("starlette", ["starlette"], own="asgi", own_what=_ASGI, replaces=("starlette",)),
    _row("flask", ["flask"]),
    _row("django", ["django"], fixups="instrumented once the project's settings load (django_deferred)", fixup="django", fixup_runs_upstream=True),
    _row("httpx", ["httpx"], own="httpx", own_what=_CLIENT.format("httpx"), replaces=("httpx",), http_client=True),
    _row("requests", ["requests"], own="requests", own_what=_CLIENT.format("requests"), replaces=("requests",), http_client=True),
    _row(
        "urllib3",
        ["urllib3"],
        own="urllib3",
        own_what=_CLIENT.format("urllib3"),
        replaces=("urllib3",),
        http_client=True,
        fixups="server.address/port on the client span",
    ),
    _row("aiohttp-client", ["aiohttp"], extra="aiohttp", instrumentation="opentelemetry-instrumentation-aiohttp-client"),
    _row(
        "sqlalchemy",
        ["sqlalchemy"],
        own="sqlalchemy",
        own_what="statement spans from the engine dialect over the upstream instrumentor (sqlalchemy_lean)",
        own_needs_upstream=True,
        fixups="one span per statement, not SQLAlchemy's and the driver's (db_dedupe, sqlalchemy_async_dedupe)",
        fixup="sqlalchemy_dedupe",
    ),
    _row("psycopg", ["psycopg", "psycopg-binary"]),
    _row("psycopg2", ["psycopg2", "psycopg2-binary"]),
    _row("asyncpg", ["asyncpg"]),
    _row("pymysql", ["pymysql"]),
    _row("redis", ["redis"]),
    _row(
        "confluent_kafka",
        ["confluent-kafka"],
        fixups="consumers in the producer's trace (kafka_context); flush() is Kafka time (kafka_produce_wait)",
        fixup="confluent_kafka",
    ),
    _row(
        "kafka",
        ["kafka-python"],
        extra="kafka-python",
        fixups="process spans in the producer's trace (kafka_process); send().get() is Kafka time",
        fixup="kafka",
    ),
    _row("aiokafka", ["aiokafka"], fixups="process spans in the producer's trace (kafka_process); send_and_wait() is Kafka time", fixup="aiokafka"),
    _row("sqlite3", [], fixups="conn.execute() traced like cursor statements (sqlite_shortcuts)", fixup="sqlite3"),
    _row("urllib", []),
    _row("threading", []),
    _row("logging", []),
    _row("system_metrics", ["psutil"], off_because="the runtime probe reports process CPU, RSS and GC"),
)
"""Every library the plan knows; an empty ``distributions`` is the standard library."""

BY_NAME = {row.name: row for row in LIBRARIES}


@dataclass(frozen=True)
class Choice:
    """What the plan decided for one library."""

    library: str
    version: str
    path: str
    why: str
    fixup: bool = False  # the row's fix-up integration runs after the upstream instrumentor

    def line(self) -> str:
        return f"{self.library:<16} {self.version:<12} {self.path:<10} {self.why}"


@dataclass(frozen=True)
class Plan:
    choices: tuple[Choice, ...]

    def choice(self, library: str) -> Choice | None:
        return next((c for c in self.choices if c.library == library), None)

    def path(self, library: str) -> str:
        """``chokepoint``, ``upstream`` or ``off`` (``off`` for a library not installed)."""
        found = self.choice(library)
        return found.path if found is not None else OFF

    def own(self, library: str) -> bool:
        return self.path(library) == OWN

    def fixes(self, library: str) -> bool:
        """Whether chokepoint's fix-up integration for ``library`` runs after its upstream instrumentor."""
        found = self.choice(library)
        return found is not None and found.fixup

    def runs_upstream(self, entry_point: str) -> bool:
        """Whether the upstream instrumentor ``entry_point`` runs (libraries not in the table: yes)."""
        row = BY_NAME.get(entry_point)
        if row is None:
            return True
        if self.path(entry_point) == OFF:
            return False
        for other in self.choices:
            if other.path == OWN and entry_point in BY_NAME[other.library].replaces:
                return False
        return self.path(entry_point) == UPSTREAM or (self.own(entry_point) and row.own_needs_upstream)

    def render(self) -> str:
        header = f"{'library':<16} {'version':<12} {'path':<10} why"
        return "\n".join([header, *(c.line() for c in self.choices)])


@functools.cache
def installed_version(row: Library) -> str | None:
    """The installed version of ``row``'s library, ``"stdlib"``, or ``None`` if absent."""
    if not row.distributions:
        return "stdlib"
    for distribution in row.distributions:
        try:
            return version(distribution)
        except PackageNotFoundError:
            continue
    return None


@functools.lru_cache(maxsize=1)
def upstream_instrumentors() -> frozenset[str]:
    """Entry-point names of the installed ``opentelemetry_instrumentor``s (read once per process)."""
    return frozenset(ep.name for ep in entry_points(group="opentelemetry_instrumentor"))


def decide(row: Library, config: AgentConfig, available: Iterable[str]) -> tuple[str, str]:
    """``(path, why)`` for one installed library."""
    available = frozenset(available)
    disabled = config.disabled_instrumentations
    if row.name in disabled or "*" in disabled:
        return OFF, "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
    if row.off_because:
        return OFF, row.off_because
    has_upstream = row.name in available
    if row.own is not None:
        switch = f"CHOKEPOINT_{row.own.upper()}"
        if getattr(config, row.own) != "lean":
            reason = f"{switch}=upstream"
        elif f"chokepoint_{row.own}" in disabled or f"chokepoint_{row.name}" in disabled:
            reason = "chokepoint's integration in OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
        elif row.http_client and config.http_semconv != "http":
            reason = f"HTTP semconv {config.http_semconv!r} (chokepoint's spans are for OTEL_SEMCONV_STABILITY_OPT_IN=http)"
        elif row.own_needs_upstream and not has_upstream:
            reason = ""
        else:
            return OWN, f"{row.own_what} ({switch}=lean)"
        if has_upstream:
            return UPSTREAM, _upstream_why(row, reason, disabled)
    elif has_upstream:
        return UPSTREAM, _upstream_why(row, "", disabled)
    return OFF, f"no instrumentation installed: pip install 'chokepoint-instrument[{row.extra}]' (or chokepoint-instrument bootstrap)"


def _upstream_why(row: Library, reason: str, disabled: frozenset[str]) -> str:
    what = row.instrumentation
    if row.fixup and f"chokepoint_{row.fixup}" in disabled:
        what += f" (chokepoint_{row.fixup} disabled: no {row.fixups})"
    elif row.fixups:
        what += f" + {row.fixups}"
    return f"{reason}; {what}" if reason else what


def make_plan(config: AgentConfig, available: Iterable[str] | None = None) -> Plan:
    """The plan for ``config`` and what is installed (``available``: upstream entry-point names)."""
    available = upstream_instrumentors() if available is None else frozenset(available)
    choices = []
    for row in LIBRARIES:
        library_version = installed_version(row)
        if library_version is None:
            continue
        path, why = decide(row, config, available)
        fixup = fixup_runs(row, path, config)
        if path == OWN and row.own == "sqlalchemy":
            why = f"{why}, statement spans: {sqlalchemy_spans_mode()}" + (f" + {row.fixups}" if fixup else "")
        choices.append(Choice(row.name, library_version, path, why, fixup))
    return Plan(tuple(choices))


def fixup_runs(row: Library, path: str, config: AgentConfig) -> bool:
    """Whether ``row``'s fix-up integration runs: its upstream instrumentor runs, and
    ``chokepoint_<fixup>`` is not in ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``."""
    upstream_runs = path == UPSTREAM or (path == OWN and row.own_needs_upstream)
    return bool(row.fixup) and upstream_runs and f"chokepoint_{row.fixup}" not in config.disabled_instrumentations


def sqlalchemy_spans_mode() -> str:
    """``CHOKEPOINT_SQLALCHEMY_SPANS`` as the SQLAlchemy integration reads it."""
    from chokepoint.instrument.sqlalchemy_lean import spans_mode

    return spans_mode()


def log_plan(plan: Plan) -> None:
    """The plan, once, at info level: one line per library."""
    for choice in plan.choices:
        _log.info("chokepoint plan: %s %s -> %s (%s)", choice.library, choice.version, choice.path, choice.why)
