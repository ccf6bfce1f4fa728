"""The catalog of names the sidecar exposes: Prometheus metrics, finding kinds, statuses.

One source of truth, imported by the collector's ``/metrics`` exporter and REST API, the
analyzer, the Dash dashboard, the Grafana generator and the Prometheus rules, so names
cannot drift; the README's finding-kinds table is checked against :data:`FINDING_KINDS` by
``tests/semconv``.  Names here are part of ../shared/CONTRACT.md: extend freely, rename only
together with the contract.

Usage::

    from chokepoint.semconv.catalog import FINDINGS_BY_KIND, Kind, REQUEST_DURATION
    REQUEST_DURATION.sample_name                     # "chokepoint_request_duration_seconds"
    FINDINGS_BY_KIND[Kind.SLOW_QUERY].recommendation
"""

from __future__ import annotations

from dataclasses import dataclass

from chokepoint.semconv import signals as _signals

PREFIX = "chokepoint_"


@dataclass(frozen=True)
class Metric:
    """One exported Prometheus metric family (``name`` without the ``_total`` suffix for counters)."""

    name: str
    type: str  # counter | gauge | histogram
    help: str
    labels: tuple[str, ...]
    unit: str = ""

    @property
    def sample_name(self) -> str:
        """The name as it appears in PromQL (counters get ``_total``)."""
        return f"{self.name}_total" if self.type == "counter" else self.name


REQUEST_DURATION = Metric("chokepoint_request_duration_seconds", "histogram", "Server request latency", ("service", "route"), "seconds")
REQUESTS = Metric("chokepoint_requests", "counter", "Server requests", ("service", "route"))
REQUEST_ERRORS = Metric("chokepoint_request_errors", "counter", "Server requests that failed (5xx or exception)", ("service", "route"))
DEPENDENCY_DURATION = Metric(
    "chokepoint_dependency_duration_seconds", "histogram", "Outbound call latency per dependency", ("service", "kind", "target"), "seconds"
)
DEPENDENCY_CALLS = Metric("chokepoint_dependency_calls", "counter", "Outbound calls per dependency", ("service", "kind", "target"))
DEPENDENCY_ERRORS = Metric("chokepoint_dependency_errors", "counter", "Outbound calls that failed", ("service", "kind", "target"))
POOL_USED = Metric("chokepoint_pool_used", "gauge", "Pool members in use (DB connections or busy workers)", ("service", "kind", "pool"))
POOL_MAX = Metric("chokepoint_pool_max", "gauge", "Pool capacity", ("service", "kind", "pool"))
POOL_PENDING = Metric("chokepoint_pool_pending", "gauge", "Callers waiting for a pool member", ("service", "kind", "pool"))
POOL_WAIT = Metric("chokepoint_pool_wait_seconds", "histogram", "Time spent waiting for a pool member", ("service", "kind", "pool"), "seconds")
POOL_TIMEOUTS = Metric("chokepoint_pool_timeouts", "counter", "Pool checkouts that timed out", ("service", "kind", "pool"))
BREAKER_STATE = Metric("chokepoint_breaker_state", "gauge", "Circuit breaker state (0 closed, 1 half_open, 2 open)", ("service", "breaker"))
BREAKER_TRANSITIONS = Metric("chokepoint_breaker_transitions", "counter", "Circuit breaker state transitions", ("service", "breaker", "to_state"))
BREAKER_CALLS = Metric("chokepoint_breaker_calls", "counter", "Calls through a breaker by result", ("service", "breaker", "result"))
CONSUMER_LAG = Metric("chokepoint_consumer_lag", "gauge", "Kafka consumer offset lag (messages)", ("group", "topic", "partition"))
CONSUMER_TIME_LAG = Metric("chokepoint_consumer_time_lag_seconds", "gauge", "Kafka consumer time lag", ("group", "topic", "partition"), "seconds")
CONSUMER_STATUS = Metric("chokepoint_consumer_status", "gauge", "Kafka consumer status (0 OK, 1 WARN, 2 STALL, 3 STOP, 4 ERR)", ("group", "topic", "partition"))
PROCESS_CPU = Metric("chokepoint_process_cpu_utilization", "gauge", "Process CPU utilization (1.0 = one core)", ("service",))
PROCESS_CPU_RUN_QUEUE_WAIT = Metric(
    "chokepoint_process_cpu_run_queue_wait",
    "gauge",
    "Time the process was runnable but waiting for a CPU (1.0 = one core); utilization + wait = CPU demand",
    ("service",),
)
PROCESS_RSS = Metric("chokepoint_process_rss_bytes", "gauge", "Process resident memory", ("service",), "bytes")
GC_PAUSE = Metric("chokepoint_gc_pause_seconds", "histogram", "Garbage-collector pause time", ("service",), "seconds")
EVENT_LOOP_LAG = Metric("chokepoint_event_loop_lag_seconds", "histogram", "asyncio event-loop lag", ("service",), "seconds")
THREADS = Metric("chokepoint_threads", "gauge", "Process thread count", ("service",))
BREAKDOWN_TIME = Metric(
    "chokepoint_request_breakdown_seconds", "counter", "Request time by component (self, db, pool_wait, http, kafka, queue)", ("service", "route", "component")
)
BOTTLENECK_SCORE = Metric("chokepoint_bottleneck_score", "gauge", "Analyzer score of a bottleneck finding (0..1)", ("service", "kind", "target"))
INGEST_SPANS = Metric("chokepoint_ingest_spans", "counter", "Spans accepted by the collector", ("protocol",))
INGEST_POINTS = Metric("chokepoint_ingest_metric_points", "counter", "Metric data points accepted by the collector", ("protocol",))
INGEST_REJECTED = Metric("chokepoint_ingest_rejected", "counter", "OTLP requests or items rejected by the collector", ("protocol", "reason"))
INGEST_LOG_RECORDS = Metric("chokepoint_ingest_log_records", "counter", "OTLP log records received (counted, not stored)", ("protocol",))
INGEST_DROPPED = Metric("chokepoint_ingest_dropped", "counter", "Items dropped after acceptance (cardinality folding, queue overflow)", ("reason",))
KAFKA_INGEST_RECORDS = Metric("chokepoint_kafka_ingest_records", "counter", "Kafka records read by the Kafka ingest (receiver_kafka.py)", ("topic",))
KAFKA_INGEST_PARTITIONS = Metric("chokepoint_kafka_ingest_partitions", "gauge", "Kafka partitions of the consumer group assigned to this collector", ("group",))
KAFKA_INGEST_UNCOMMITTED = Metric(
    "chokepoint_kafka_ingest_uncommitted_records", "gauge", "Records read but not committed yet (their bucket is not persisted yet)", ("topic", "partition")
)
ANALYZER_RULE_ERRORS = Metric("chokepoint_analyzer_rule_errors", "counter", "Analyzer rule runs that raised (the rule's findings are missing)", ("kind",))

METRICS: tuple[Metric, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Metric))

# ---------------------------------------------------------------- findings


class Kind:
    """The finding kinds by name: code refers to ``Kind.SLOW_QUERY``, never to the string."""

    WORKER_POOL_SATURATION = "worker_pool_saturation"
    CPU_SATURATION = "cpu_saturation"
    EVENT_LOOP_BLOCKED = "event_loop_blocked"
    DB_POOL_SATURATION = "db_pool_saturation"
    SLOW_QUERY = "slow_query"
    N_PLUS_ONE = "n_plus_one"
    CONNECTION_HELD_DURING_EXTERNAL_CALL = "connection_held_during_external_call"
    EXTERNAL_DEPENDENCY_SLOW = "external_dependency_slow"
    CIRCUIT_OPEN = "circuit_open"
    RETRY_STORM = "retry_storm"
    MISSING_TIMEOUT = "missing_timeout"
    CONSUMER_LAG = "consumer_lag"
    HOT_ENDPOINT = "hot_endpoint"
    MEMORY_PRESSURE = "memory_pressure"
    UNCOMPRESSED_RESPONSE = "uncompressed_response"
    CACHEABLE_READS = "cacheable_reads"
    HTTP_POOL_SATURATION = "http_pool_saturation"


@dataclass(frozen=True)
class FindingKind:
    kind: str
    title: str
    meaning: str
    recommendation: str


FINDING_KINDS: tuple[FindingKind, ...] = (
    FindingKind(
        Kind.WORKER_POOL_SATURATION,
        "Worker pool saturated",
        "All request workers/threads are busy and requests queue, while CPU is not the limit",
        "Add threads/workers (the work is I/O-bound), or cut the time each request holds a worker",
    ),
    FindingKind(
        Kind.CPU_SATURATION,
        "CPU-bound process",
        "The process is CPU-bound (for CPython: one core, the GIL)",
        "Run more processes (threads will not help under the GIL) and profile the hot code",
    ),
    FindingKind(
        Kind.EVENT_LOOP_BLOCKED,
        "asyncio event loop blocked",
        "Blocking calls inside async code delay every coroutine",
        "Move blocking work off the loop (run_in_executor / asyncio.to_thread) or use an async client",
    ),
    FindingKind(
        Kind.DB_POOL_SATURATION,
        "DB connection pool exhausted",
        "Waiting for a DB connection dominates while the queries themselves are fast",
        "Raise the pool size (if DB CPU is low) or shorten connection hold time",
    ),
    FindingKind(Kind.SLOW_QUERY, "Slow query", "Specific statements dominate DB time", "Add an index or rewrite the statement; set a statement timeout"),
    FindingKind(Kind.N_PLUS_ONE, "N+1 queries", "Many near-identical queries per request", "Batch the queries: a join, IN (...) or eager loading"),
    FindingKind(
        Kind.CONNECTION_HELD_DURING_EXTERNAL_CALL,
        "Connection held during an external call",
        "An outbound call runs while a DB connection/transaction is held",
        "Move the outbound call out of the transaction so the connection is released while waiting",
    ),
    FindingKind(
        Kind.EXTERNAL_DEPENDENCY_SLOW,
        "Slow external dependency",
        "An outbound HTTP dependency dominates latency",
        "Set timeouts, add a circuit breaker, call it asynchronously or cache its answers",
    ),
    FindingKind(
        Kind.CIRCUIT_OPEN,
        "Circuit breaker open",
        "A breaker is open or rejecting calls",
        "The dependency is failing: serve a fallback and fix or scale the dependency",
    ),
    FindingKind(
        Kind.RETRY_STORM,
        "Retry storm",
        "Retries multiply outbound calls",
        "Retry at most 1–2 times with exponential backoff and jitter, only idempotent calls (idempotency keys)",
    ),
    FindingKind(
        Kind.MISSING_TIMEOUT,
        "Outbound calls without timeout",
        "Outbound calls are made without a timeout",
        "Set connect (3–5 s) and read (5–30 s) timeouts on every outbound call",
    ),
    FindingKind(
        Kind.CONSUMER_LAG,
        "Kafka consumer falling behind",
        "A consumer group's lag keeps growing",
        "Speed up processing, or add partitions and consumers to the group",
    ),
    FindingKind(
        Kind.HOT_ENDPOINT,
        "Hot endpoint starves others",
        "One endpoint takes most capacity and starves the others",
        "Give the hot feature its own worker pool (bulkhead) or its own service, and scale it out",
    ),
    FindingKind(Kind.MEMORY_PRESSURE, "Memory pressure", "RSS growth or GC pauses dominate", "Fix the leak, tune the GC thresholds, stream large data"),
    FindingKind(
        Kind.UNCOMPRESSED_RESPONSE,
        "Large uncompressed responses",
        "Large responses are sent without compression",
        "Compress responses (gzip/brotli via Accept-Encoding) and cache static ones with Cache-Control",
    ),
    FindingKind(
        Kind.CACHEABLE_READS,
        "Repeated identical reads",
        "The same read is repeated across requests",
        "Cache it: in-process when small or staleness is fine, a shared cache (Redis) when large or must be consistent",
    ),
    FindingKind(
        Kind.HTTP_POOL_SATURATION,
        "HTTP client pool exhausted",
        "Requests wait for an outbound HTTP connection while the dependency itself answers fast",
        "Raise the client pool size (urllib3/requests maxsize, httpx Limits.max_connections) or make fewer calls",
    ),
)
FINDINGS_BY_KIND = {k.kind: k for k in FINDING_KINDS}
assert {k.kind for k in FINDING_KINDS} == {v for n, v in vars(Kind).items() if n.isupper()}, "Kind and FINDING_KINDS disagree"
SEVERITIES = ("info", "warning", "critical")

# ---------------------------------------------------------------- statuses and states
BREAKER_STATES = _signals.BREAKER_STATES  # index == chokepoint_breaker_state value == the wire gauge's value
LAG_STATUSES = ("OK", "WARN", "STALL", "STOP", "ERR")  # index == chokepoint_consumer_status value
DEPENDENCY_KINDS = ("db", "http", "kafka")
POOL_KINDS = ("db", "worker", "http", "redis")

# ---------------------------------------------------------------- REST time series (GET /api/v1/timeseries?metric=)
# The ``metric`` vocabulary of the time-series endpoint, read by the Dash dashboard
# (the store validates /timeseries requests against it).
TIMESERIES_METRICS = (
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "latency_p999_ms",
    "rps",
    "error_rate",
    "dependency_p99_ms",
    "dependency_rps",
    "pool_used",
    "pool_max",
    "pool_pending",
    "pool_wait_p99_ms",
    "cpu_utilization",
    "cpu_run_queue_wait",
    "rss_bytes",
    "gc_pause_p99_ms",
    "event_loop_lag_p99_ms",
    "threads",
    "breaker_state",
    "consumer_lag",
    "consumer_time_lag_s",
)
