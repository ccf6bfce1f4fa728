"""The zoo's expectations: one row per app in ``tests/zoo/apps/``.

Each row says how the app is served (``argv``, run under ``chokepoint-instrument`` from
``tests/zoo/apps``), what it needs (``needs``: ``postgres``, ``mariadb``, ``redis``, ``kafka``; ``dep``:
the stand-in remote API's settings), its load (``paths`` with weights, ``concurrency`` closed-loop
clients, ``think_s``, ``burst``), what a human expert names as its bottleneck (``expected``, ``None``
for a healthy app; ``target`` a regular expression on the finding's target; ``secondary``: a second,
smaller real problem that must not lead), ``real``: a check of the ground truth (the bottleneck
exists and dominates: ``None`` or the reason it does not), and ``evidence``: chokepoint's evidence key
→ the ground-truth number it must be within 25 % of.  The CI subset is :data:`CI_SUBSET`; ``fix``: the dependency's recovery settings, or ``"flag"`` (the app's feature
flag file), applied after detection to time the clear.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from chokepoint.collector.analysis.config import AnalyzerConfig


@dataclass(frozen=True)
class App:
    name: str
    stack: str
    expected: str | None
    argv: tuple[str, ...]
    real: Callable[[dict], str | None]
    target: str = ".*"
    needs: tuple[str, ...] = ()
    dep: dict | None = None
    paths: dict = field(default_factory=lambda: {"/": 1.0})
    concurrency: int = 8
    think_s: float = 0.0
    burst: tuple | None = None
    evidence: dict = field(default_factory=dict)
    secondary: str | None = None
    fix: dict | str | None = None
    exclusive: bool = False
    shared: tuple[str, ...] = ()
    hog: int = 0
    kafka: dict | None = None
    probe_sql: str = ""  # a statement the harness times on the database itself (ground truth for slow_query)
    facts: dict = field(default_factory=dict)  # ground truth the app's configuration fixes (e.g. workers)
    settle_s: float = 0.0  # the app runs idle this long before the load starts (a leak in a process past its warm-up)
    case: str = ""  # the case (diagnosis issue, 1-13) the app has the shape of

    @property
    def ci(self) -> bool:
        return self.name in CI_SUBSET

    @property
    def http(self) -> bool:
        return self.kafka is None


#: memory_pressure ignores a process's first ``AnalyzerConfig.warmup_s`` (its own and the agent's
#: warm-up): a leaking app runs idle past it before its load (and its leak) begins.
SETTLE_PAST_WARMUP_S = AnalyzerConfig().warmup_s + 5.0


def check(condition: bool, reason: str) -> str | None:
    return None if condition else reason


def uvicorn(module: str, *extra: str) -> tuple[str, ...]:
    return ("uvicorn", f"{module}:app", "--host", "127.0.0.1", "--port", "{port}", "--no-access-log", *extra)


def gunicorn(module: str, *extra: str) -> tuple[str, ...]:
    return ("gunicorn", "-b", "127.0.0.1:{port}", "--backlog", "256", "--timeout", "120", *extra, f"{module}:app")


def queueing(t: dict, ratio: float = 3.0) -> str | None:
    """Clients wait several times the handler's own time: requests queue before they are handled."""
    return check((t.get("queueing_ratio") or 0) >= ratio, f"client p50 only {t.get('queueing_ratio')}x the single-client time")


def healthy(t: dict) -> str | None:
    """Light load, no errors, clients wait about what one request alone takes."""
    return check(
        t.get("errors", 1) == 0 and (t.get("queueing_ratio") or 99) < 2.5, f"not healthy: errors {t.get('errors')}, queueing {t.get('queueing_ratio')}x"
    )


def loop_blocked(t: dict) -> str | None:
    """Clients queue on the loop, and throughput is capped near 1/stall: the loop is busy most of the time."""
    return queueing(t) or check(t["loop_busy_share"] >= 0.7, f"the loop is busy only {t['loop_busy_share']} of the time")


def pool_of(n: int):
    """Clients queue while the database sees no more connections than the pool's ``n``."""
    return lambda t: queueing(t) or check(t["pg_conns_max"] <= n + 1, f"{t['pg_conns_max']} connections: not the pool of {n}")


def statement_dominates(t: dict) -> str | None:
    """The statement, timed on the database itself, is most of what one request takes."""
    return check(t["stmt_ms"] >= 0.5 * t["single_ms"], f"the statement ({t['stmt_ms']} ms) is not most of a request ({t['single_ms']} ms)")


def breaker_rejects(t: dict) -> str | None:
    """Most requests are answered without reaching the failing dependency."""
    return check(t["dep_calls_per_request"] < 0.5, f"{t['dep_calls_per_request']} dependency calls per request: the breaker does not reject")


def retries(t: dict) -> str | None:
    """The dependency sees several calls per request."""
    return check(t["dep_calls_per_request"] >= 2.5, f"{t['dep_calls_per_request']} calls per request")


def hangs(t: dict) -> str | None:
    """The dependency's own p99 is seconds: calls without a timeout wait that long."""
    return check(t["dep_p99_ms"] >= 1000, f"the dependency's p99 is {t['dep_p99_ms']} ms: it does not hang")


def lags(t: dict) -> str | None:
    """Kafka's own offsets: the group is thousands behind and falling further."""
    return check(t.get("lag", 0) >= 1000 and t.get("lag_growth_per_s", 0) > 0, f"lag {t.get('lag')}, growth {t.get('lag_growth_per_s')}/s")


def dependency_dominates(t: dict) -> str | None:
    """The dependency's own time is most of what the client waits."""
    return check(t["dep_p50_ms"] >= 0.8 * t["client_p50_ms"], "the dependency is not most of the request")


def accept_queue(t: dict) -> str | None:
    """Clients queue, and the listening socket's accept backlog holds the waiting connections."""
    return queueing(t) or check(t["backlog_mean"] >= 4, f"accept backlog only {t['backlog_mean']}")


def uses_cpu(t: dict) -> str | None:
    return check(t["cpu_cores"] >= 0.6, f"the app uses {t['cpu_cores']} cores")


def grows(t: dict) -> str | None:
    return check(t["rss_growth_mb_per_min"] >= 30, f"RSS grows {t['rss_growth_mb_per_min']} MB/min")


def uncompressed(t: dict) -> str | None:
    return check(t["bytes_avg"] >= 100_000 and t["encoded_fraction"] == 0, f"{t['bytes_avg']} B, {t['encoded_fraction']} encoded")


def client_pool(t: dict) -> str | None:
    """Clients queue while the dependency itself answers fast."""
    return queueing(t) or check(t["dep_p50_ms"] < 0.3 * t["client_p50_ms"], "the dependency itself is most of the wait")


APPS: tuple[App, ...] = (
    App(
        "fastapi_blocking_sleep",
        "FastAPI + uvicorn (async def route, blocking call)",
        "event_loop_blocked",
        uvicorn("fastapi_blocking_sleep"),
        target="event_loop",
        paths={"/invoice/{n}": 1.0},
        concurrency=8,
        # throughput capped at 1/stall (50 ms → ≤ 20 rps) and clients queueing on the loop
        real=loop_blocked,
        evidence={"event_loop_lag_p99_ms": "client_wait_p99_ms"},
        case="1",
    ),
    App(
        "flask_gunicorn_sync_io",
        "Flask + gunicorn sync ×2 + requests",
        "worker_pool_saturation",
        gunicorn("flask_gunicorn_sync_io", "-w", "2"),
        needs=("dep",),
        dep={"delay_ms": 100},
        paths={"/quote/{n}": 1.0},
        concurrency=12,
        real=accept_queue,
        facts={"workers": 2},
        evidence={"workers_max": "workers", "queued": "backlog_mean"},
        case="2",
    ),
    App(
        "flask_slow_partner_api",
        "Flask + gunicorn gthread 1×16 + requests",
        "external_dependency_slow",
        gunicorn("flask_slow_partner_api", "-w", "1", "-k", "gthread", "--threads", "16"),
        target="127.0.0.1",
        needs=("dep",),
        dep={"delay_ms": 300},
        fix={"delay_ms": 5},
        paths={"/shipping/{n}": 1.0},
        concurrency=6,
        real=dependency_dominates,
        evidence={"dependency_p99_ms": "dep_p99_ms"},
    ),
    App(
        "flask_pg_healthy_bursty",
        "Flask + gunicorn gthread + psycopg_pool, PostgreSQL",
        None,
        gunicorn("flask_pg_healthy_bursty", "-w", "1", "-k", "gthread", "--threads", "8"),
        needs=("postgres",),
        paths={"/users/{n}": 1.0},
        concurrency=3,
        think_s=0.1,
        burst=(3.0, 4.0),
        real=healthy,
        case="9",
    ),
    App(
        "starlette_asyncpg_pool",
        "Starlette + uvicorn + asyncpg pool of 2, PostgreSQL",
        "db_pool_saturation",
        uvicorn("starlette_asyncpg_pool"),
        needs=("postgres",),
        paths={"/stock/{n}": 1.0},
        concurrency=16,
        facts={"pool_max": 2},
        real=pool_of(2),
        evidence={"pool_max": "pool_max"},
        case="3",
    ),
    App(
        "flask_pg_seqscan",
        "Flask + gunicorn gthread + psycopg, PostgreSQL (no index)",
        "slow_query",
        gunicorn("flask_pg_seqscan", "-w", "1", "-k", "gthread", "--threads", "8"),
        target="customers",
        needs=("postgres",),
        paths={"/customer/{n}": 1.0},
        concurrency=4,
        probe_sql="SELECT id, name FROM customers WHERE email = 'c4850@example.com'",
        real=statement_dominates,
        evidence={"query_p50_ms": "stmt_ms"},
    ),
    App(
        "flask_sqlalchemy_lazy",
        "Flask + gunicorn gthread + SQLAlchemy ORM (lazy loads), PostgreSQL",
        "n_plus_one",
        gunicorn("flask_sqlalchemy_lazy", "-w", "1", "-k", "gthread", "--threads", "8"),
        target="/orders",
        needs=("postgres",),
        paths={"/orders/{n}": 1.0},
        concurrency=4,
        real=lambda t: check(t["pg_scans_per_request"] >= 10, f"only {t['pg_scans_per_request']} table scans per request"),
        evidence={"queries_per_request": "pg_scans_per_request"},
    ),
    App(
        "flask_sqlalchemy_tx_http",
        "Flask + gunicorn gthread + SQLAlchemy (pool 4) + requests, PostgreSQL",
        "connection_held_during_external_call",
        gunicorn("flask_sqlalchemy_tx_http", "-w", "1", "-k", "gthread", "--threads", "16"),
        target="127.0.0.1",
        needs=("postgres",),
        dep={"delay_ms": 150},
        fix="flag",
        paths={"/checkout/{n}": 1.0},
        concurrency=8,
        secondary="db_pool_saturation",
        real=lambda t: check(t["pg_idle_in_tx_mean"] >= 2, f"only {t['pg_idle_in_tx_mean']} connections idle in transaction"),
        evidence={"dependency_p99_ms": "dep_p99_ms"},
        case="5",
    ),
    App(
        "flask_pybreaker",
        "Flask + gunicorn gthread + pybreaker + requests",
        "circuit_open",
        gunicorn("flask_pybreaker", "-w", "1", "-k", "gthread", "--threads", "8"),
        target="recommendations",
        dep={"fail": 1.0},
        fix={"fail": 0},
        paths={"/home/{n}": 1.0},
        concurrency=4,
        real=breaker_rejects,
    ),
    App(
        "flask_urllib3_retry",
        "Flask + gunicorn gthread + urllib3 Retry(total=5)",
        "retry_storm",
        gunicorn("flask_urllib3_retry", "-w", "1", "-k", "gthread", "--threads", "8"),
        target="127.0.0.1",
        dep={"fail": 0.8, "delay_ms": 5},
        fix={"fail": 0},
        paths={"/inventory/{n}": 1.0},
        concurrency=4,
        real=retries,
        evidence={"retries_per_call": "dep_retries_per_call"},
    ),
    App(
        "flask_requests_no_timeout",
        "Flask + gunicorn gthread + requests (no timeout)",
        "missing_timeout",
        gunicorn("flask_requests_no_timeout", "-w", "1", "-k", "gthread", "--threads", "8"),
        target="127.0.0.1",
        dep={"delay_ms": 20, "hang_ms": 3000, "hang_every": 25},
        paths={"/validate/{n}": 1.0},
        concurrency=6,
        real=hangs,
        evidence={"dependency_p99_ms": "dep_p99_ms"},
    ),
    App(
        "confluent_slow_consumer",
        "confluent-kafka consumer (20 ms per message)",
        "consumer_lag",
        ("python", "confluent_slow_consumer.py"),
        target="events",
        needs=("kafka",),
        kafka={"prefill": 3000, "rate": 80},
        real=lags,
        evidence={"lag": "lag"},
        case="4",
    ),
    App(
        "flask_gthread_hot_search",
        "Flask + gunicorn gthread 1×8 + requests (search backend 800 ms)",
        "hot_endpoint",
        gunicorn("flask_gthread_hot_search", "-w", "1", "-k", "gthread", "--threads", "8"),
        target="/search",
        dep={"delay_ms": 800},
        paths={"/item/{n}": 0.5, "/search": 0.5},
        concurrency=12,
        real=lambda t: check(t["p50_ms /item/{n}"] >= 3 * t["single_ms"], f"/item waits only {t['p50_ms /item/{n}']} ms (alone {t['single_ms']} ms)"),
        evidence={"hot_route_rps": "rps /search"},
    ),
    App(
        "flask_gunicorn_cpu",
        "Flask + gunicorn gthread 1×4 (pure-Python compute)",
        "cpu_saturation",
        gunicorn("flask_gunicorn_cpu", "-w", "1", "-k", "gthread", "--threads", "4"),
        target="process",
        paths={"/prices/{n}": 1.0},
        concurrency=6,
        exclusive=True,
        real=uses_cpu,
        evidence={"cpu_utilization": "cpu_cores"},
    ),
    App(
        "flask_leaky_history",
        "Flask + gunicorn gthread (module-level list grows)",
        "memory_pressure",
        gunicorn("flask_leaky_history", "-w", "1", "-k", "gthread", "--threads", "4"),
        target="process",
        paths={"/product/{n}": 1.0},
        concurrency=2,
        think_s=0.05,
        real=grows,
        settle_s=SETTLE_PAST_WARMUP_S,
        evidence={"rss_growth_mb_per_min": "rss_growth_mb_per_min"},
    ),
    App(
        "flask_big_json_export",
        "Flask + gunicorn gthread (400 KB JSON, no compression)",
        "uncompressed_response",
        gunicorn("flask_big_json_export", "-w", "1", "-k", "gthread", "--threads", "4"),
        target="/export",
        paths={"/export": 1.0},
        concurrency=3,
        real=uncompressed,
        evidence={"avg_response_bytes": "bytes_avg"},
    ),
    App(
        "fastapi_settings_reads",
        "FastAPI + uvicorn + SQLAlchemy (sync def), PostgreSQL",
        "cacheable_reads",
        uvicorn("fastapi_settings_reads"),
        target="settings",
        needs=("postgres",),
        paths={"/price/{n}": 1.0},
        concurrency=4,
        real=lambda t: check(t["pg_scans_per_request"] >= 1.5, f"{t['pg_scans_per_request']} reads per request"),
        evidence={"repeated_per_s": "pg_scans_per_s"},
    ),
    App(
        "flask_requests_small_pool",
        "Flask + gunicorn gthread 1×16 + requests (pool_maxsize=2, block)",
        "http_pool_saturation",
        gunicorn("flask_requests_small_pool", "-w", "1", "-k", "gthread", "--threads", "16"),
        target="127.0.0.1",
        dep={"delay_ms": 50},
        paths={"/rates/{n}": 1.0},
        concurrency=16,
        facts={"pool_max": 2},
        real=client_pool,
        evidence={"pool_max": "pool_max"},
    ),
    App(
        "django_sqlite_healthy",
        "Django + gunicorn gthread, SQLite",
        None,
        gunicorn("django_sqlite_healthy", "-w", "1", "-k", "gthread", "--threads", "4"),
        paths={"/api/articles/{n}": 1.0},
        concurrency=2,
        think_s=0.1,
        real=healthy,
        case="9",
    ),
    App(
        "fastapi_gzip_export",
        "FastAPI + uvicorn + GZipMiddleware (400 KB JSON, gzip'd)",
        None,
        uvicorn("fastapi_gzip_export"),
        paths={"/export": 1.0},
        concurrency=2,
        think_s=0.2,
        real=lambda t: healthy(t) or check(t["encoded_fraction"] == 1, f"only {t['encoded_fraction']} of responses compressed"),
        case="6",
    ),
    App(
        "starlette_sync_requests",
        "Starlette + uvicorn, blocking requests call in async def",
        "event_loop_blocked",
        uvicorn("starlette_sync_requests"),
        target="event_loop",
        dep={"delay_ms": 40},
        paths={"/weather/{n}": 1.0},
        concurrency=8,
        secondary="external_dependency_slow",
        real=loop_blocked,
        evidence={"event_loop_lag_p99_ms": "client_wait_p99_ms"},
        case="1",
    ),
    App(
        "django_gunicorn_sync_io",
        "Django + gunicorn sync ×2 + requests",
        "worker_pool_saturation",
        gunicorn("django_gunicorn_sync_io", "-w", "2"),
        dep={"delay_ms": 150},
        paths={"/profile/{n}": 1.0},
        concurrency=12,
        facts={"workers": 2},
        real=accept_queue,
        evidence={"workers_max": "workers", "queued": "backlog_mean"},
        case="2",
    ),
    App(
        "fastapi_psycopg_pool_small",
        "FastAPI + uvicorn (sync def) + psycopg_pool max 2, PostgreSQL",
        "db_pool_saturation",
        uvicorn("fastapi_psycopg_pool_small"),
        needs=("postgres",),
        paths={"/balance/{n}": 1.0},
        concurrency=16,
        facts={"pool_max": 2},
        real=pool_of(2),
        evidence={"pool_max": "pool_max"},
    ),
    App(
        "fastapi_sqlalchemy_async_pool",
        "FastAPI + uvicorn + SQLAlchemy async (asyncpg, pool 2), PostgreSQL",
        "db_pool_saturation",
        uvicorn("fastapi_sqlalchemy_async_pool"),
        needs=("postgres",),
        paths={"/cart/{n}": 1.0},
        concurrency=16,
        facts={"pool_max": 2},
        real=pool_of(2),
        evidence={"pool_max": "pool_max"},
    ),
    App(
        "fastapi_pymysql_seqscan",
        "FastAPI + uvicorn (sync def) + PyMySQL, MariaDB (no index)",
        "slow_query",
        uvicorn("fastapi_pymysql_seqscan"),
        target="orders",
        needs=("mariadb",),
        shared=("mariadb",),
        paths={"/order/{n}": 1.0},
        concurrency=4,
        probe_sql="SELECT id, total FROM orders WHERE reference = 'ref-4848'",
        real=statement_dominates,
        evidence={"query_p50_ms": "stmt_ms"},
    ),
    App(
        "flask_report_slow_plus_n1",
        "Flask + gunicorn gthread + SQLAlchemy Core, PostgreSQL (unindexed report + 5 lookups)",
        "slow_query",
        gunicorn("flask_report_slow_plus_n1", "-w", "1", "-k", "gthread", "--threads", "8"),
        target="invoices",
        needs=("postgres",),
        paths={"/report/{n}": 1.0},
        concurrency=4,
        secondary="n_plus_one",
        probe_sql="SELECT customer, sum(amount) s FROM invoices WHERE month = 3 AND memo LIKE 'm%' GROUP BY customer ORDER BY s DESC LIMIT 5",
        real=statement_dominates,
        evidence={"query_p50_ms": "stmt_ms"},
    ),
    App(
        "flask_pg_parallel_scan",
        "Flask + gunicorn gthread + psycopg, PostgreSQL parallel scans (CPU-starved host)",
        "slow_query",
        gunicorn("flask_pg_parallel_scan", "-w", "1", "-k", "gthread", "--threads", "8"),
        target="sales",
        needs=("postgres",),
        paths={"/dashboard/{n}": 1.0},
        concurrency=4,
        exclusive=True,
        probe_sql="SELECT sum(amount) FROM sales WHERE region = 7",
        real=statement_dominates,
        evidence={"query_p50_ms": "stmt_ms"},
        case="8",
    ),
    App(
        "django_pg_n_plus_one",
        "Django ORM + gunicorn gthread, PostgreSQL",
        "n_plus_one",
        gunicorn("django_pg_n_plus_one", "-w", "1", "-k", "gthread", "--threads", "4"),
        target="authors",
        needs=("postgres",),
        paths={"/api/authors": 1.0},
        concurrency=3,
        real=lambda t: check(t["pg_scans_per_request"] >= 10, f"only {t['pg_scans_per_request']} table scans per request"),
        evidence={"queries_per_request": "pg_scans_per_request"},
        case="13",
    ),
    App(
        "fastapi_psycopg_tx_httpx",
        "FastAPI + uvicorn (sync def) + psycopg_pool 4 + httpx, PostgreSQL",
        "connection_held_during_external_call",
        uvicorn("fastapi_psycopg_tx_httpx"),
        target="127.0.0.1",
        needs=("postgres",),
        dep={"delay_ms": 150},
        fix="flag",
        paths={"/book/{n}": 1.0},
        concurrency=8,
        secondary="db_pool_saturation",
        real=lambda t: check(t["pg_idle_in_tx_mean"] >= 2, f"only {t['pg_idle_in_tx_mean']} connections idle in transaction"),
        evidence={"dependency_p99_ms": "dep_p99_ms"},
        case="5",
    ),
    App(
        "fastapi_aiohttp_partner",
        "FastAPI + uvicorn + aiohttp client",
        "external_dependency_slow",
        uvicorn("fastapi_aiohttp_partner"),
        target="127.0.0.1",
        dep={"delay_ms": 300},
        fix={"delay_ms": 5},
        paths={"/offers/{n}": 1.0},
        concurrency=6,
        real=dependency_dominates,
        evidence={"dependency_p99_ms": "dep_p99_ms"},
    ),
    App(
        "flask_partner_slow_plus_flags",
        "Flask + gunicorn gthread + requests + redis-py (slow API + repeated flag reads)",
        "external_dependency_slow",
        gunicorn("flask_partner_slow_plus_flags", "-w", "1", "-k", "gthread", "--threads", "8"),
        target="127.0.0.1",
        needs=("redis",),
        shared=("redis",),
        dep={"delay_ms": 400},
        paths={"/points/{n}": 1.0},
        concurrency=6,
        secondary="cacheable_reads",
        real=dependency_dominates,
        evidence={"dependency_p99_ms": "dep_p99_ms"},
    ),
    App(
        "fastapi_aiobreaker",
        "FastAPI + uvicorn + aiobreaker + httpx.AsyncClient",
        "circuit_open",
        uvicorn("fastapi_aiobreaker"),
        target="reviews",
        dep={"fail": 1.0},
        fix={"fail": 0},
        paths={"/product/{n}": 1.0},
        concurrency=4,
        real=breaker_rejects,
    ),
    App(
        "flask_circuitbreaker",
        "Flask + gunicorn gthread + circuitbreaker + urllib3",
        "circuit_open",
        gunicorn("flask_circuitbreaker", "-w", "1", "-k", "gthread", "--threads", "8"),
        target="tax",
        dep={"fail": 1.0},
        fix={"fail": 0},
        paths={"/total/{n}": 1.0},
        concurrency=4,
        real=breaker_rejects,
    ),
    App(
        "fastapi_httpx_manual_retry",
        "FastAPI + uvicorn + httpx (hand-written retry loop)",
        "retry_storm",
        uvicorn("fastapi_httpx_manual_retry"),
        target="127.0.0.1",
        dep={"fail": 0.75, "delay_ms": 5},
        fix={"fail": 0},
        paths={"/price/{n}": 1.0},
        concurrency=4,
        real=retries,
        evidence={"retries_per_call": "dep_retries_per_call"},
    ),
    App(
        "flask_requests_retry_adapter",
        "Flask + gunicorn gthread + requests HTTPAdapter(max_retries=Retry(6))",
        "retry_storm",
        gunicorn("flask_requests_retry_adapter", "-w", "1", "-k", "gthread", "--threads", "8"),
        target="127.0.0.1",
        dep={"fail": 0.8, "delay_ms": 30},
        fix={"fail": 0},
        paths={"/ship/{n}": 1.0},
        concurrency=4,
        secondary="external_dependency_slow",
        real=retries,
        evidence={"retries_per_call": "dep_retries_per_call"},
    ),
    App(
        "starlette_httpx_no_timeout",
        "Starlette + uvicorn + httpx.AsyncClient(timeout=None)",
        "missing_timeout",
        uvicorn("starlette_httpx_no_timeout"),
        target="127.0.0.1",
        dep={"delay_ms": 20, "hang_ms": 3000, "hang_every": 25},
        paths={"/geo/{n}": 1.0},
        concurrency=6,
        real=hangs,
        evidence={"dependency_p99_ms": "dep_p99_ms"},
    ),
    App(
        "aiokafka_slow_consumer",
        "aiokafka consumer (20 ms per message)",
        "consumer_lag",
        ("python", "aiokafka_slow_consumer.py"),
        target="events",
        needs=("kafka",),
        kafka={"prefill": 3000, "rate": 80},
        real=lags,
        evidence={"lag": "lag"},
        case="4",
    ),
    App(
        "kafka_python_slow_consumer",
        "kafka-python consumer (20 ms per message)",
        "consumer_lag",
        ("python", "kafka_python_slow_consumer.py"),
        target="events",
        needs=("kafka",),
        kafka={"prefill": 3000, "rate": 80},
        real=lags,
        evidence={"lag": "lag"},
        case="4",
    ),
    App(
        "django_gthread_hot_report",
        "Django + gunicorn gthread 1×6 + requests (report backend 1 s)",
        "hot_endpoint",
        gunicorn("django_gthread_hot_report", "-w", "1", "-k", "gthread", "--threads", "6"),
        target="report",
        dep={"delay_ms": 1000},
        paths={"/api/status/{n}": 0.5, "/report": 0.5},
        concurrency=10,
        real=lambda t: check(
            t["p50_ms /api/status/{n}"] >= 3 * t["single_ms"], f"/api/status waits only {t['p50_ms /api/status/{n}']} ms (alone {t['single_ms']} ms)"
        ),
        evidence={"hot_route_rps": "rps /report"},
        case="13",
    ),
    App(
        "fastapi_sync_cpu",
        "FastAPI + uvicorn (sync def, pure-Python scoring)",
        "cpu_saturation",
        uvicorn("fastapi_sync_cpu"),
        target="process",
        paths={"/recommend/{n}": 1.0},
        concurrency=6,
        exclusive=True,
        real=uses_cpu,
        evidence={"cpu_utilization": "cpu_cores"},
    ),
    App(
        "fastapi_unbounded_cache",
        "FastAPI + uvicorn (unbounded dict cache, cyclic garbage)",
        "memory_pressure",
        uvicorn("fastapi_unbounded_cache"),
        target="process",
        paths={"/render/{n}": 1.0},
        concurrency=2,
        think_s=0.05,
        real=grows,
        settle_s=SETTLE_PAST_WARMUP_S,
        evidence={"rss_growth_mb_per_min": "rss_growth_mb_per_min"},
    ),
    App(
        "django_big_json",
        "Django + gunicorn gthread (300 KB JsonResponse, no compression)",
        "uncompressed_response",
        gunicorn("django_big_json", "-w", "1", "-k", "gthread", "--threads", "4"),
        target="products",
        paths={"/api/products": 1.0},
        concurrency=3,
        real=uncompressed,
        evidence={"avg_response_bytes": "bytes_avg"},
        case="6",
    ),
    App(
        "flask_redis_flags",
        "Flask + gunicorn gthread + redis-py",
        "cacheable_reads",
        gunicorn("flask_redis_flags", "-w", "1", "-k", "gthread", "--threads", "4"),
        target="flags|GET|redis",
        needs=("redis",),
        shared=("redis",),
        paths={"/page/{n}": 1.0},
        concurrency=4,
        real=lambda t: check(t.get("redis_get_per_request", 0) >= 1.5, f"{t.get('redis_get_per_request')} GETs per request"),
        evidence={"repeated_per_s": "redis_get_per_s"},
    ),
    App(
        "fastapi_httpx_limits",
        "FastAPI + uvicorn + httpx.AsyncClient(Limits(max_connections=2))",
        "http_pool_saturation",
        uvicorn("fastapi_httpx_limits"),
        target="127.0.0.1",
        dep={"delay_ms": 50},
        paths={"/fx/{n}": 1.0},
        concurrency=16,
        facts={"pool_max": 2},
        real=client_pool,
        evidence={"pool_max": "pool_max"},
    ),
    App(
        "aiohttp_asyncpg_healthy",
        "aiohttp web + asyncpg pool, PostgreSQL",
        None,
        ("python", "aiohttp_asyncpg_healthy.py"),
        needs=("postgres",),
        paths={"/city/{n}": 1.0},
        concurrency=2,
        think_s=0.1,
        real=healthy,
        case="9",
    ),
    App(
        "fastapi_redis_uvicorn_worker",
        "FastAPI + gunicorn -k uvicorn.workers.UvicornWorker ×2 + redis.asyncio",
        None,
        gunicorn("fastapi_redis_uvicorn_worker", "-w", "2", "-k", "uvicorn.workers.UvicornWorker"),
        needs=("redis",),
        paths={"/session/{n}": 1.0},
        concurrency=2,
        think_s=0.1,
        real=healthy,
    ),
    App(
        "flask_pg_healthy_cpu_starved",
        "Flask + gunicorn gthread + psycopg_pool, PostgreSQL, two CPU hogs on the host",
        None,
        gunicorn("flask_pg_healthy_cpu_starved", "-w", "1", "-k", "gthread", "--threads", "4"),
        needs=("postgres",),
        paths={"/notes/{n}": 1.0},
        concurrency=2,
        think_s=0.1,
        hog=2,
        exclusive=True,
        # the app's own code is healthy: it uses little CPU and raises no errors; the host is what is slow
        real=lambda t: check(t["errors"] == 0 and t["cpu_cores"] < 0.5, f"errors {t['errors']}, app CPU {t['cpu_cores']} cores"),
        case="8",
    ),
)

APPS_BY_NAME = {a.name: a for a in APPS}

#: The apps the default run (CI) runs: for each finding kind one app chokepoint named right in the last
#: whole-zoo run, and healthy ones (``docs/ACCURACY.md`` lists the misses).
CI_SUBSET = (
    "flask_gunicorn_sync_io",
    "starlette_asyncpg_pool",
    "flask_slow_partner_api",
    "flask_sqlalchemy_lazy",
    "flask_requests_no_timeout",
    "flask_pybreaker",
    "flask_urllib3_retry",
    "flask_big_json_export",
    "aiokafka_slow_consumer",
    "flask_report_slow_plus_n1",
    "django_gthread_hot_report",
    "flask_requests_small_pool",
    "django_sqlite_healthy",
    "aiohttp_asyncpg_healthy",
)
