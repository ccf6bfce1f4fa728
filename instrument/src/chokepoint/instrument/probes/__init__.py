"""Probes: what the upstream OpenTelemetry instrumentors do not measure.

DB connection pools, worker pools, circuit breakers, Kafka consumer lag and the Python
runtime, as OpenTelemetry metrics with the names in :mod:`chokepoint.instrument.signals`.

Usage (the agent core does this; tests do it with an ``InMemoryMetricReader``)::

    from chokepoint.instrument.probes import install_all, wrap_asgi_inflight
    probes = install_all(meter)                      # every probe whose library is importable
    probes = install_all(meter, enabled={"sqlalchemy_pool", "runtime"})   # only these; missing lib → ProbeUnavailable
    probes = install_all(meter, lean=lean_metrics)   # hot-path histograms/counters in the agent's LeanMetrics
    app = wrap_asgi_inflight(app)                    # ASGI requests in flight (probe "asgi")
    for probe in probes: probe.uninstall()           # undoes every patch, listener and callback

Probe names (module): ``sqlalchemy_pool``, ``psycopg_pool`` (:mod:`.db_pool`);
``asyncpg_pool`` (:mod:`.asyncpg_pool`); ``redis_pool``, ``urllib3_pool``, ``httpx_pool``
(:mod:`.client_pools`); ``accept_backlog`` (:mod:`.server_backlog`);
``threadpool``, ``anyio``, ``gunicorn``, ``asgi`` (:mod:`.workers`); ``pybreaker``,
``aiobreaker``, ``circuitbreaker`` (:mod:`.breakers`); ``confluent_kafka``, ``aiokafka``,
``kafka_python`` (:mod:`.kafka_lag`); ``runtime`` (:mod:`.runtime`).

Rules every probe follows: a library that is not installed is a quiet skip when
auto-enabled and a :class:`ProbeUnavailable` error when asked for by name; patches are
tagged (``_chokepoint_probe``, ``__wrapped__``) and undone by ``uninstall()``; wrappers
check at call time whether the probe is active; a probe's own failure is logged (logger
``chokepoint.instrument.probes``) and never raised into user code; gauges are read only
when the meter collects.

Environment: ``CHOKEPOINT_DISABLED_PROBES`` (comma-separated names) is honoured when
``enabled`` is not given; ``CHOKEPOINT_LOOP_LAG_INTERVAL_S`` (runtime) and
``CHOKEPOINT_KAFKA_LAG_REFRESH_S`` (Kafka probes) tune the two periodic reads;
``CHOKEPOINT_GC_MIN_PAUSE_S`` (runtime) the shortest young-generation GC pause recorded;
``CHOKEPOINT_SQLALCHEMY_POOL_HOOKS=events`` makes ``sqlalchemy_pool`` time connection
holds from SQLAlchemy's pool events instead of its default, cheaper method wrappers.

Install after the OpenTelemetry instrumentors: the confluent-kafka one replaces
``confluent_kafka.Consumer`` too, and the probe subclasses whatever is there.
Per-call cost of each hot path: ``bench/probes/run.py``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from opentelemetry.metrics import Meter

from chokepoint.instrument.probes.asyncpg_pool import AsyncpgPoolProbe
from chokepoint.instrument.probes.breakers import AioBreakerProbe, CircuitBreakerPackageProbe, PyBreakerProbe
from chokepoint.instrument.probes.client_pools import HttpxPoolProbe, RedisPoolProbe, Urllib3PoolProbe
from chokepoint.instrument.probes.db_pool import PsycopgPoolProbe, SQLAlchemyPoolProbe
from chokepoint.instrument.probes.kafka_lag import AiokafkaLagProbe, KafkaLagProbe, KafkaPythonLagProbe
from chokepoint.instrument.probes.patching import ProbeUnavailable, instruments_for
from chokepoint.instrument.probes.runtime import RuntimeProbe
from chokepoint.instrument.probes.server_backlog import AcceptBacklogProbe
from chokepoint.instrument.probes.workers import AnyioThreadPoolProbe, AsgiInflightProbe, GunicornProbe, ThreadPoolProbe, inflight, wrap_asgi_inflight

__all__ = ["PROBES", "Probe", "ProbeAlreadyInstalled", "ProbeUnavailable", "inflight", "install", "install_all", "wrap_asgi_inflight"]

log = logging.getLogger("chokepoint.instrument.probes")


@runtime_checkable
class Probe(Protocol):
    name: str

    def uninstall(self) -> None: ...


# name → factory(meter) -> Probe; the order is the install order.
PROBES: dict[str, Callable[[Meter], Probe]] = {
    "runtime": RuntimeProbe,
    "sqlalchemy_pool": SQLAlchemyPoolProbe,
    "psycopg_pool": PsycopgPoolProbe,
    "asyncpg_pool": AsyncpgPoolProbe,
    "redis_pool": RedisPoolProbe,
    "urllib3_pool": Urllib3PoolProbe,
    "httpx_pool": HttpxPoolProbe,
    "threadpool": ThreadPoolProbe,
    "anyio": AnyioThreadPoolProbe,
    "gunicorn": GunicornProbe,
    "asgi": AsgiInflightProbe,
    "accept_backlog": AcceptBacklogProbe,
    "pybreaker": PyBreakerProbe,
    "aiobreaker": AioBreakerProbe,
    "circuitbreaker": CircuitBreakerPackageProbe,
    "confluent_kafka": KafkaLagProbe,
    "aiokafka": AiokafkaLagProbe,
    "kafka_python": KafkaPythonLagProbe,
}


class ProbeAlreadyInstalled(RuntimeError):
    """A probe of that name is installed and active: a second one would count everything twice."""


_installed: dict[str, Probe] = {}


def install(name: str, meter: Meter) -> Probe:
    """Install one probe by name.

    Raises ``ValueError`` for an unknown name, ``ProbeUnavailable`` if its library is
    missing, ``ProbeAlreadyInstalled`` while an earlier one of that name is active.
    """
    try:
        factory = PROBES[name]
    except KeyError:
        raise ValueError(f"unknown probe {name!r}; known: {', '.join(PROBES)}") from None
    earlier = _installed.get(name)
    if earlier is not None and getattr(earlier, "active", False):
        raise ProbeAlreadyInstalled(f"probe {name!r} is already installed; uninstall it first")
    probe = _installed[name] = factory(meter)
    return probe


def install_all(meter: Meter, *, enabled: set[str] | None = None, disabled: set[str] | None = None, lean: Any = None) -> list[Probe]:
    """Install probes and return them (uninstall each to undo).

    ``lean``: optional lean metrics registry (``chokepoint.instrument.lean_metrics.LeanMetrics``
    or anything with its ``histogram`` / ``counter`` methods) for the hot-path histograms
    and counters; gauges always go through ``meter``.

    ``enabled=None``: every probe whose library is importable, minus ``disabled`` and
    ``CHOKEPOINT_DISABLED_PROBES``; missing libraries are skipped quietly and any other
    install failure is logged and skipped.  ``enabled={...}``: exactly those; an unknown
    name raises ``ValueError``, a missing library ``ProbeUnavailable`` (after undoing
    the probes already installed by this call).  Either way a probe that is already
    installed and active is not installed again (logged), so calling this twice does
    not double-count.
    """
    if lean is not None:
        instruments_for(meter).use_lean(lean)
    if enabled is not None:
        unknown = set(enabled) - PROBES.keys()
        if unknown:
            raise ValueError(f"unknown probe(s) {sorted(unknown)}; known: {', '.join(PROBES)}")
        installed: list[Probe] = []
        try:
            for name in PROBES:
                if name in enabled:
                    try:
                        installed.append(install(name, meter))
                    except ProbeAlreadyInstalled:
                        log.warning("probe %s is already installed; not installing it twice", name)
        except BaseException:
            for probe in installed:
                probe.uninstall()
            raise
        return installed

    skip = set(disabled or ())
    skip |= {n.strip() for n in os.environ.get("CHOKEPOINT_DISABLED_PROBES", "").split(",") if n.strip()}
    installed = []
    for name in PROBES:
        if name in skip:
            continue
        try:
            installed.append(install(name, meter))
        except ProbeUnavailable as e:
            log.debug("probe %s skipped: %s", name, e)
        except ProbeAlreadyInstalled:
            log.warning("probe %s is already installed; not installing it twice", name)
        except Exception:
            log.warning("probe %s failed to install; skipped", name, exc_info=True)
    return installed
