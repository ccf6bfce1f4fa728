"""The OTLP signal names and attributes that cross from the app to the sidecar.

One catalog: the agent (``chokepoint.instrument``) emits these names and the collector reads
them; neither imports the other for them.  OpenTelemetry semantic-convention names are used
where one exists; the rest are ``chokepoint.*``.  Units follow semconv: seconds for
durations, ``{connection}`` style counts.  Changing a name here is a wire-format change: keep
the old name readable (an alias in :mod:`chokepoint.semconv.aliases`) for a release.

Usage::

    from chokepoint.semconv import signals as sig
    meter.create_histogram(sig.DB_POOL_WAIT_TIME, unit="s")
"""

from __future__ import annotations

# ---------------------------------------------------------------- latency histograms (s)
HTTP_SERVER_DURATION = "http.server.request.duration"
HTTP_CLIENT_DURATION = "http.client.request.duration"
DB_CLIENT_OPERATION_DURATION = "db.client.operation.duration"
MESSAGING_CLIENT_OPERATION_DURATION = "messaging.client.operation.duration"
MESSAGING_PROCESS_DURATION = "messaging.process.duration"
HTTP_SERVER_RESPONSE_BODY_SIZE = "http.server.response.body.size"

# ---------------------------------------------------------------- DB connection pools
DB_POOL_CONNECTION_COUNT = "db.client.connection.count"  # attr DB_POOL_STATE = idle|used
DB_POOL_CONNECTION_MAX = "db.client.connection.max"
DB_POOL_PENDING_REQUESTS = "db.client.connection.pending_requests"
DB_POOL_WAIT_TIME = "db.client.connection.wait_time"  # histogram, s
DB_POOL_USE_TIME = "db.client.connection.use_time"  # histogram, s (hold time)
DB_POOL_TIMEOUTS = "db.client.connection.timeouts"  # counter
DB_POOL_IDLE_MAX = "db.client.connection.idle.max"  # gauge: base pool size (SQLAlchemy pool_size, psycopg min_size)
DB_POOL_OVERFLOW = "chokepoint.db.pool.overflow"  # gauge: SQLAlchemy connections beyond pool_size
# The same db.client.connection.* names serve every connection pool a service waits on; the
# pool's kind is ATTR_POOL_KIND (db | redis | http): asyncpg, psycopg_pool, SQLAlchemy (sync and
# async), redis-py, urllib3/requests HTTPConnectionPool, httpx Limits.

# ---------------------------------------------------------------- worker / thread pools
WORKER_POOL_BUSY = "chokepoint.worker_pool.busy"
WORKER_POOL_MAX = "chokepoint.worker_pool.max"
WORKER_POOL_QUEUED = "chokepoint.worker_pool.queued"
WORKER_POOL_QUEUE_WAIT_TIME = "chokepoint.worker_pool.queue_wait_time"  # histogram, s
WORKER_POOL_PROCESSES = "chokepoint.worker_pool.processes"  # gauge: configured worker processes (gunicorn)

# ---------------------------------------------------------------- waits before the app sees a request
SERVER_ACCEPT_BACKLOG = "chokepoint.server.accept_backlog"  # gauge: connections in the listen queue, all processes together
SERVER_ACCEPT_BACKLOG_MAX = "chokepoint.server.accept_backlog.max"  # gauge: the listen() backlog limit
SERVER_ACCEPT_RATE = "chokepoint.server.accept_rate"  # gauge: connections accepted per second (Little's law with the backlog)
SERVER_QUEUE_WAIT_TIME = "chokepoint.server.queue_wait_time"  # histogram, s: X-Request-Start/X-Queue-Start → server span start
SERVER_QUEUE_START_REJECTED = "chokepoint.server.queue_start_rejected"  # counter, attr ATTR_DROP_REASON: unparsable | negative | too_large
RUNTIME_EVENT_LOOP_BUSY = "chokepoint.runtime.event_loop.busy"  # gauge: fraction of wall time the loop ran callbacks without yielding
RUNTIME_EVENT_LOOP_STALL_MAX = "chokepoint.runtime.event_loop.stall.max"  # gauge, s: longest single stall in the export interval

# ---------------------------------------------------------------- circuit breakers
BREAKER_STATE = "chokepoint.breaker.state"  # gauge: 0 closed, 1 half_open, 2 open
BREAKER_TRANSITIONS = "chokepoint.breaker.transitions"  # counter, attrs from/to state
BREAKER_CALLS = "chokepoint.breaker.calls"  # counter, attr BREAKER_RESULT

# ---------------------------------------------------------------- Kafka consumer lag
KAFKA_CONSUMER_LAG = "chokepoint.kafka.consumer.lag"  # gauge, messages (high watermark - committed)
KAFKA_CONSUMER_TIME_LAG = "chokepoint.kafka.consumer.time_lag"  # gauge, s (now - record timestamp)
KAFKA_CONSUMER_COMMITTED_OFFSET = "chokepoint.kafka.consumer.committed_offset"
KAFKA_CONSUMER_HIGH_WATERMARK = "chokepoint.kafka.consumer.high_watermark"

# ---------------------------------------------------------------- runtime
PROCESS_CPU_UTILIZATION = "process.cpu.utilization"  # gauge, fraction of one core
RUNTIME_CPU_RUN_QUEUE_WAIT = "chokepoint.runtime.cpu.run_queue_wait"  # gauge, fraction of one core runnable but not running
PROCESS_MEMORY_USAGE = "process.memory.usage"  # gauge, bytes RSS
PROCESS_THREAD_COUNT = "process.thread.count"
RUNTIME_GC_PAUSE_TIME = "chokepoint.runtime.gc.pause_time"  # histogram, s per collection (wall clock)
RUNTIME_GC_CPU_TIME = "chokepoint.runtime.gc.cpu_time"  # counter, s: thread CPU time spent in collections
RUNTIME_EVENT_LOOP_LAG = "chokepoint.runtime.event_loop.lag"  # histogram, s

# ---------------------------------------------------------------- per-request breakdown
REQUEST_BREAKDOWN_TIME = "chokepoint.request.breakdown.time"  # counter, s; attrs route, component, slow
REQUEST_DB_QUERIES = "chokepoint.request.db.queries"  # histogram, queries per request
HTTP_CLIENT_CALLS_IN_TRANSACTION = "chokepoint.http.client.calls_in_transaction"  # counter
HTTP_CLIENT_CALLS_WITHOUT_TIMEOUT = "chokepoint.http.client.calls_without_timeout"  # counter
HTTP_CLIENT_RETRIES = "chokepoint.http.client.retries"  # counter
DB_REPEATED_READS = "chokepoint.db.repeated_reads"  # counter: identical read repeated across requests

# ---------------------------------------------------------------- agent self-monitoring
AGENT_DROPPED_SPANS = "chokepoint.agent.dropped_spans"  # counter, attr reason
AGENT_EXPORTED_TRACES = "chokepoint.agent.exported_traces"  # counter, attr ATTR_KEEP_REASON
AGENT_COVERAGE = "chokepoint.agent.coverage"  # gauge per library: 1 seen, 0 blind spot (in use, integration produced nothing)

# ---------------------------------------------------------------- attributes
ATTR_SERVICE_NAME = "service.name"
ATTR_HTTP_ROUTE = "http.route"
ATTR_HTTP_METHOD = "http.request.method"
ATTR_HTTP_STATUS = "http.response.status_code"
ATTR_SERVER_ADDRESS = "server.address"
ATTR_DB_SYSTEM = "db.system.name"
ATTR_DB_QUERY_SUMMARY = "db.query.summary"
ATTR_DB_STATEMENT = "db.query.text"  # normalized: literals replaced by placeholders
ATTR_DB_POOL_NAME = "db.client.connection.pool.name"
ATTR_DB_POOL_STATE = "db.client.connection.state"  # idle | used
ATTR_MESSAGING_SYSTEM = "messaging.system"
ATTR_MESSAGING_DESTINATION = "messaging.destination.name"
ATTR_MESSAGING_PARTITION = "messaging.destination.partition.id"
ATTR_MESSAGING_CONSUMER_GROUP = "messaging.consumer.group.name"
ATTR_ERROR_TYPE = "error.type"
ATTR_GC_GENERATION = "cpython.gc.generation"

ATTR_POOL_NAME = "chokepoint.pool.name"
ATTR_POOL_KIND = "chokepoint.pool.kind"  # db | redis | http (absent: db)
ATTR_COVERAGE_LIBRARY = "chokepoint.coverage.library"  # distribution name, e.g. SQLAlchemy
ATTR_COVERAGE_VERSION = "chokepoint.coverage.version"
ATTR_COVERAGE_WHAT = "chokepoint.coverage.what"  # what is missing, e.g. "statement spans"
ATTR_COVERAGE_TRY = "chokepoint.coverage.try"  # the switch to try, e.g. CHOKEPOINT_SQLALCHEMY_SPANS=listeners
ATTR_WORKER_POOL_KIND = "chokepoint.worker_pool.kind"  # threadpool | anyio | gunicorn | asgi
ATTR_BREAKER_NAME = "chokepoint.breaker.name"
ATTR_BREAKER_RESULT = "chokepoint.breaker.result"  # success | failure | rejected
ATTR_BREAKER_FROM = "chokepoint.breaker.from_state"
ATTR_BREAKER_TO = "chokepoint.breaker.to_state"
ATTR_COMPONENT = "chokepoint.component"  # self | db | pool_wait | http:<host> | kafka | queue
ATTR_SLOW = "chokepoint.slow"  # bool: request above the route's rolling p95 / floor
ATTR_KEEP_REASON = "chokepoint.keep_reason"  # slow | error | random
ATTR_DROP_REASON = "chokepoint.drop_reason"
ATTR_RESPONSE_COMPRESSED = "chokepoint.http.response.compressed"  # bool: Content-Encoding set
ATTR_MESSAGING_OPERATION = "messaging.operation.type"  # send | receive | process

BREAKER_STATES = ("closed", "half_open", "open")  # index == BREAKER_STATE gauge value
BREAKDOWN_COMPONENTS = ("self", "db", "pool_wait", "http", "kafka", "queue")
