"""One rule per finding kind: ``rule(snapshot) -> Iterable[Candidate]``, pure.

``RULES`` maps each kind of ``catalog.FINDING_KINDS`` to its rule; a rule reads only the
``WindowSnapshot`` it is given (no store, no clock) and yields candidates for the ranking.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from chokepoint.collector.analysis.candidate import Candidate
from chokepoint.collector.analysis.rules import (
    cacheable_reads,
    circuit_open,
    connection_held_during_external_call,
    consumer_lag,
    cpu_saturation,
    db_pool_saturation,
    event_loop_blocked,
    external_dependency_slow,
    hot_endpoint,
    http_pool_saturation,
    memory_pressure,
    missing_timeout,
    n_plus_one,
    retry_storm,
    slow_query,
    uncompressed_response,
    worker_pool_saturation,
)
from chokepoint.collector.analysis.snapshot import WindowSnapshot
from chokepoint.collector.catalog import Kind

Rule = Callable[[WindowSnapshot], Iterable[Candidate]]

RULES: dict[str, Rule] = {
    Kind.WORKER_POOL_SATURATION: worker_pool_saturation.rule,
    Kind.CPU_SATURATION: cpu_saturation.rule,
    Kind.EVENT_LOOP_BLOCKED: event_loop_blocked.rule,
    Kind.DB_POOL_SATURATION: db_pool_saturation.rule,
    Kind.HTTP_POOL_SATURATION: http_pool_saturation.rule,
    Kind.SLOW_QUERY: slow_query.rule,
    Kind.N_PLUS_ONE: n_plus_one.rule,
    Kind.CONNECTION_HELD_DURING_EXTERNAL_CALL: connection_held_during_external_call.rule,
    Kind.EXTERNAL_DEPENDENCY_SLOW: external_dependency_slow.rule,
    Kind.CIRCUIT_OPEN: circuit_open.rule,
    Kind.RETRY_STORM: retry_storm.rule,
    Kind.MISSING_TIMEOUT: missing_timeout.rule,
    Kind.CONSUMER_LAG: consumer_lag.rule,
    Kind.HOT_ENDPOINT: hot_endpoint.rule,
    Kind.MEMORY_PRESSURE: memory_pressure.rule,
    Kind.UNCOMPRESSED_RESPONSE: uncompressed_response.rule,
    Kind.CACHEABLE_READS: cacheable_reads.rule,
}
