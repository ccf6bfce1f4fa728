"""The collector's REST API (``/api/v1``): its endpoints and the shape of each answer.

The collector's API (``chokepoint.collector.api``) wraps each list under the key named here
and the dashboards' client (``chokepoint.dashboards.client``) reads it from there; the row
types are ``TypedDict``s (plain dicts at run time, checked by type checkers and by
``tests/dashboards/test_rest_shapes.py``, which asks a real collector through the client).
The reference, with examples, is ``docs/API.md``.

Usage::

    from chokepoint.semconv.rest import RESOURCES, Endpoint
    RESOURCES["consumer-lag"].key                        # "consumer_lag"
    rows: list[Endpoint] = payload[RESOURCES["endpoints"].key]
    RESOURCES["endpoints"].wrap(rows)                    # {"endpoints": rows}

A key may be ``None`` in a row where the collector has no value yet (a percentile over no
requests, a lag without a timestamp); rows may carry more keys than listed (additions are
not a contract change, removals are).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

API_PREFIX = "/api/v1"


# a library an agent reports in use whose integration produced nothing (reported within 180 s);
# "try" is the switch to try (a keyword, hence the functional form)
BlindSpot = TypedDict("BlindSpot", {"service": str, "library": str, "version": str, "what": str, "try": str})


class Health(TypedDict):
    status: str  # "ok"
    services: int
    spans_total: int
    metric_points_total: int
    rejected_total: int
    dropped_total: int
    buckets_in_memory: int
    kept_traces: int
    uptime_s: float
    blind_spots: list[BlindSpot]


class Service(TypedDict):
    name: str
    endpoints: int
    rps: float
    error_rate: float


class Endpoint(TypedDict):
    service: str
    route: str  # the http.route template, with a leading slash
    rps: float
    error_rate: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    p999_ms: float | None
    count: int


class Dependency(TypedDict):
    service: str
    kind: str  # catalog.DEPENDENCY_KINDS: db | http | kafka
    target: str
    rps: float
    error_rate: float
    p50_ms: float | None
    p99_ms: float | None
    count: int


class Pool(TypedDict):
    service: str
    kind: str  # catalog.POOL_KINDS: db | worker | http | redis
    name: str
    used: float | None
    max: float | None
    pending: float | None
    wait_p99_ms: float | None
    timeouts: float


class BreakerCalls(TypedDict):
    success: float
    failure: float
    rejected: float


class Breaker(TypedDict):
    service: str
    name: str
    state: str  # signals.BREAKER_STATES: closed | half_open | open
    transitions: float
    rejected: float
    calls: BreakerCalls
    error_rate: float


class ConsumerLag(TypedDict):
    group: str
    topic: str
    partition: int | str
    lag: float | None
    time_lag_s: float | None
    status: str  # catalog.LAG_STATUSES: OK | WARN | STALL | STOP | ERR
    committed_offset: float | None
    log_end_offset: float | None
    source: str  # "push" (an agent's gauges) | "pull" (the collector polled the cluster)
    updated: float


class Finding(TypedDict):
    kind: str  # catalog.Kind
    service: str
    target: str
    score: float  # 0..1
    severity: str  # catalog.SEVERITIES: info | warning | critical
    since: float | None
    summary: str
    evidence: dict[str, Any]
    recommendation: str


class TraceSpan(TypedDict):
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    start_offset_ms: float
    duration_ms: float
    attributes: dict[str, Any]
    status: str


class Trace(TypedDict):
    trace_id: str
    service: str
    route: str
    duration_ms: float
    error: bool
    keep_reason: str  # slow | error | random
    start: float
    spans: list[TraceSpan]


class Series(TypedDict):
    labels: dict[str, str]
    points: list[list[float]]  # [[unix seconds, value], ...], oldest first


class Timeseries(TypedDict):
    metric: str  # one of catalog.TIMESERIES_METRICS
    series: list[Series]


class HistogramBucket(TypedDict):
    le_ms: float
    count: int


class Heatmap(TypedDict):
    times: list[float]
    le_ms: list[float]
    counts: list[list[int]]


class Breakdown(TypedDict):
    all: dict[str, float]  # component -> mean ms per request
    slow: dict[str, float]
    requests: int
    slow_requests: int


@dataclass(frozen=True)
class Resource:
    """One ``GET /api/v1/<path>``: the answer is ``{key: [row, ...]}``, or the object itself when ``key`` is None."""

    path: str
    key: str | None
    row: type

    @property
    def url_path(self) -> str:
        return f"{API_PREFIX}/{self.path}"

    def wrap(self, rows):
        """The JSON answer for ``rows`` (``{key: rows}``; ``rows`` itself for an object answer)."""
        return rows if self.key is None else {self.key: rows}


RESOURCES: dict[str, Resource] = {
    r.path: r
    for r in (
        Resource("health", None, Health),
        Resource("services", "services", Service),
        Resource("endpoints", "endpoints", Endpoint),
        Resource("dependencies", "dependencies", Dependency),
        Resource("pools", "pools", Pool),
        Resource("breakers", "breakers", Breaker),
        Resource("consumer-lag", "consumer_lag", ConsumerLag),
        Resource("bottlenecks", "findings", Finding),
        Resource("traces", "traces", Trace),
        Resource("timeseries", None, Timeseries),
        Resource("histogram", "buckets", HistogramBucket),
        Resource("heatmap", None, Heatmap),
        Resource("breakdown", None, Breakdown),
    )
}


def shape_keys(row: type) -> tuple[str, ...]:
    """The JSON keys a row type declares, in declaration order."""
    return tuple(row.__annotations__)
