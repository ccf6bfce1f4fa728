"""The analyzer over fixture data: each bottleneck's signature ranks its kind first.

Every case writes the numbers an instrumented service would send under that bottleneck
(through the store's own write methods, on a fake clock), next to healthy background
traffic, and asserts the top finding's kind and target; the healthy case asserts that
nothing rises above ``info``.
"""

from __future__ import annotations

import random

import pytest

from chokepoint.collector.analysis import Analyzer, AnalyzerConfig, severity_of
from chokepoint.collector.catalog import FINDING_KINDS
from chokepoint.collector.store import Store, StoreConfig
from chokepoint.instrument import signals as sig
from tests.collector.analysis.otlp import ingest_response_sizes

SVC = "shop"


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _lognormal(rng: random.Random, median_s: float, n: int, sigma: float = 0.3) -> list[float]:
    import math

    return [median_s * math.exp(rng.gauss(0.0, sigma)) for _ in range(n)]


def healthy_tick(store: Store, rng: random.Random, routes=("GET /products", "GET /orders", "POST /orders")) -> None:
    """One second of a healthy service: fast routes, fast queries, idle pools, low CPU."""
    for route in routes:
        durations = _lognormal(rng, 0.008, 10)
        store.add_requests(SVC, route, durations)
        store.add_breakdown(SVC, route, {"self": sum(durations) * 0.6, "db": sum(durations) * 0.4}, slow=False, requests=10)
        store.add_counter(SVC, sig.REQUEST_DB_QUERIES + ".sum", route, 20)
        store.add_counter(SVC, sig.REQUEST_DB_QUERIES + ".count", route, 10)
    store.add_dependency_calls(SVC, "db", "SELECT products", _lognormal(rng, 0.002, 20))
    store.add_dependency_calls(SVC, "http", "payment:8001", _lognormal(rng, 0.010, 5))
    store.set_pool(SVC, "db", "sqlalchemy:postgresql", used=2, max=10, pending=0)
    store.add_pool_waits(SVC, "db", "sqlalchemy:postgresql", [0.0001] * 30)
    store.set_pool(SVC, "worker", "anyio", used=3, max=40, pending=0)
    store.set_runtime(SVC, cpu=0.2, rss=120e6, threads=45)
    store.set_breaker_state(SVC, "payment", "closed")
    store.add_breaker_calls(SVC, "payment", "success", 5)


def run(feed, seconds: int = 90, baseline_seconds: int = 240) -> list:
    clock = Clock()
    store = Store(StoreConfig(bucket_seconds=5), clock=clock)
    rng = random.Random(7)
    for i in range(baseline_seconds + seconds):
        clock.t += 1
        healthy_tick(store, rng)
        if i >= baseline_seconds:
            feed(store, rng, i - baseline_seconds)
        store.flush_due()
    return Analyzer(store, AnalyzerConfig(window_s=60, baseline_window_s=180)).analyze()


def test_healthy_service_has_nothing_above_info():
    findings = run(lambda store, rng, i: None)
    assert [f for f in findings if f.severity != "info"] == []


def slow_pool(store, rng, i):
    durations = _lognormal(rng, 0.4, 20)
    store.add_requests(SVC, "GET /orders", durations)
    store.add_breakdown(SVC, "GET /orders", {"pool_wait": 0.38 * 20, "db": 0.004 * 20, "self": 0.016 * 20}, slow=True, requests=20)
    store.set_pool(SVC, "db", "sqlalchemy:postgresql", used=10, max=10, pending=12)
    store.add_pool_waits(SVC, "db", "sqlalchemy:postgresql", _lognormal(rng, 0.38, 20))


def cpu_bound(store, rng, i):
    durations = _lognormal(rng, 0.3, 10)
    store.add_requests(SVC, "GET /report", durations)
    store.add_breakdown(SVC, "GET /report", {"self": sum(durations)}, slow=True, requests=10)
    store.set_runtime(SVC, cpu=0.98)
    store.set_pool(SVC, "worker", "anyio", used=40, max=40, pending=5)
    store.add_pool_waits(SVC, "worker", "anyio", _lognormal(rng, 0.1, 10))


def worker_pool(store, rng, i):
    durations = _lognormal(rng, 0.5, 10)
    store.add_requests(SVC, "GET /products", durations)
    store.add_breakdown(SVC, "GET /products", {"queue": 0.4 * 10, "self": 0.1 * 10}, slow=True, requests=10)
    store.set_pool(SVC, "worker", "anyio", used=4, max=4, pending=30)
    store.add_pool_waits(SVC, "worker", "anyio", _lognormal(rng, 0.4, 10))


def blocked_loop(store, rng, i):
    from chokepoint.collector.sketch import Sketch

    store.add_requests(SVC, "GET /async", _lognormal(rng, 0.25, 10))
    lag = Sketch()
    lag.add_many(_lognormal(rng, 0.2, 5))
    store.merge_runtime_sketch(SVC, "loop_lag", lag)


def slow_query(store, rng, i):
    durations = _lognormal(rng, 0.9, 5)
    store.add_requests(SVC, "GET /search", durations)
    store.add_breakdown(SVC, "GET /search", {"db": sum(durations) * 0.95, "self": sum(durations) * 0.05}, slow=True, requests=5)
    store.add_dependency_calls(SVC, "db", "SELECT products WHERE lower(name) LIKE ?", _lognormal(rng, 0.85, 5))


def n_plus_one(store, rng, i):
    durations = _lognormal(rng, 0.15, 10)
    store.add_requests(SVC, "GET /orders", durations)
    store.add_breakdown(SVC, "GET /orders", {"db": sum(durations) * 0.8, "self": sum(durations) * 0.2}, slow=True, requests=10)
    store.add_counter(SVC, sig.REQUEST_DB_QUERIES + ".sum", "GET /orders", 10 * 51)
    store.add_counter(SVC, sig.REQUEST_DB_QUERIES + ".count", "GET /orders", 10)
    store.add_dependency_calls(SVC, "db", "SELECT products WHERE id = ?", _lognormal(rng, 0.002, 500))


def held_connection(store, rng, i):
    durations = _lognormal(rng, 0.6, 10)
    store.add_requests(SVC, "POST /orders", durations)
    store.add_breakdown(
        SVC, "POST /orders", {"pool_wait": 0.3 * 10, "http:payment:8001": 0.28 * 10, "db": 0.01 * 10, "self": 0.01 * 10}, slow=True, requests=10
    )
    store.add_dependency_calls(SVC, "http", "payment:8001", _lognormal(rng, 0.28, 10))
    store.add_counter(SVC, sig.HTTP_CLIENT_CALLS_IN_TRANSACTION, "payment:8001", 10)
    store.set_pool(SVC, "db", "sqlalchemy:postgresql", used=10, max=10, pending=8)
    store.add_pool_waits(SVC, "db", "sqlalchemy:postgresql", _lognormal(rng, 0.3, 10))


def slow_dependency(store, rng, i):
    durations = _lognormal(rng, 0.35, 10)
    store.add_requests(SVC, "POST /orders", durations)
    store.add_breakdown(SVC, "POST /orders", {"http:payment:8001": 0.32 * 10, "db": 0.01 * 10, "self": 0.02 * 10}, slow=True, requests=10)
    store.add_dependency_calls(SVC, "http", "payment:8001", _lognormal(rng, 0.32, 10))


def open_breaker(store, rng, i):
    store.add_requests(SVC, "POST /orders", _lognormal(rng, 0.01, 10), errors=10)
    store.set_breaker_state(SVC, "payment", "open")
    store.add_breaker_calls(SVC, "payment", "rejected", 10)


def retries(store, rng, i):
    slow_dependency(store, rng, i)
    store.add_dependency_calls(SVC, "http", "payment:8001", _lognormal(rng, 0.3, 30), errors=20)
    store.add_counter(SVC, sig.HTTP_CLIENT_RETRIES, "payment:8001", 30)


def no_timeout(store, rng, i):
    slow_dependency(store, rng, i)
    store.add_counter(SVC, sig.HTTP_CLIENT_CALLS_WITHOUT_TIMEOUT, "payment:8001", 10)


def lagging_consumer(store, rng, i):
    store.record_consumer_offsets("fulfilment", "orders", 0, committed_offset=100 + i * 2, log_end_offset=100 + i * 12, timestamp_s=store.clock())


def hot_route(store, rng, i):
    store.add_requests(SVC, "GET /search", _lognormal(rng, 0.4, 40))
    store.set_pool(SVC, "worker", "anyio", used=40, max=40, pending=6)  # searches hold every worker
    for route in ("GET /products", "GET /orders"):
        store.add_requests(SVC, route, _lognormal(rng, 0.12, 10))


def leaking(store, rng, i):
    store.set_runtime(SVC, rss=200e6 + i * 2e6)


def big_responses(store, rng, i):
    ingest_response_sizes(store, SVC, "GET /export", 450_000, 10, compressed=False)
    ingest_response_sizes(store, SVC, "GET /report.pdf", 900_000, 10, compressed=True)  # large but gzip'd: not this finding


def repeated_reads(store, rng, i):
    store.add_dependency_calls(SVC, "db", "SELECT settings WHERE key = ?", _lognormal(rng, 0.002, 20))
    store.add_counter(SVC, sig.DB_REPEATED_READS, "SELECT settings WHERE key = ?", 19)


def http_pool(store, rng, i):
    durations = _lognormal(rng, 0.3, 10)
    store.add_requests(SVC, "GET /products/{id}", durations)
    store.add_breakdown(SVC, "GET /products/{id}", {"pool_wait": 0.27 * 10, "http:payment:8001": 0.02 * 10, "self": 0.01 * 10}, slow=True, requests=10)
    store.add_dependency_calls(SVC, "http", "payment:8001", _lognormal(rng, 0.004, 50))
    store.set_pool(SVC, "http", "payment:8001", used=1, max=1, pending=8)
    store.add_pool_waits(SVC, "http", "payment:8001", _lognormal(rng, 0.27, 50))


CASES = [
    ("db_pool_saturation", "sqlalchemy:postgresql", slow_pool),
    ("cpu_saturation", "process", cpu_bound),
    ("worker_pool_saturation", "anyio", worker_pool),
    ("event_loop_blocked", "event_loop", blocked_loop),
    ("slow_query", "SELECT products WHERE lower(name) LIKE ?", slow_query),
    ("n_plus_one", "GET /orders", n_plus_one),
    ("connection_held_during_external_call", "payment:8001", held_connection),
    ("external_dependency_slow", "payment:8001", slow_dependency),
    ("circuit_open", "payment", open_breaker),
    ("retry_storm", "payment:8001", retries),
    ("missing_timeout", "payment:8001", no_timeout),
    ("consumer_lag", "fulfilment/orders", lagging_consumer),
    ("hot_endpoint", "GET /search", hot_route),
    ("memory_pressure", "process", leaking),
    ("uncompressed_response", "GET /export", big_responses),
    ("cacheable_reads", "SELECT settings WHERE key = ?", repeated_reads),
    ("http_pool_saturation", "payment:8001", http_pool),
]


def test_every_kind_has_a_case():
    assert {k for k, _, _ in CASES} == {k.kind for k in FINDING_KINDS}


@pytest.mark.parametrize(("kind", "target", "feed"), CASES, ids=[c[0] for c in CASES])
def test_bottleneck_ranks_first(kind, target, feed):
    findings = run(feed)
    assert findings, "no finding"
    top = findings[0]
    assert (top.kind, top.target) == (kind, target), [(f.kind, f.target, f.score) for f in findings[:4]]
    assert top.summary and top.recommendation and top.evidence
    assert top.since.endswith("Z")


def test_a_few_slow_checkouts_of_a_quiet_pool_are_not_saturation():
    """A consumer's small pool: a handful of checkouts, each opening a new connection."""

    def warming_pool(store, rng, i):
        store.set_pool("fulfilment", "db", "fulfilment", used=1, max=2, pending=0)
        if i % 30 == 0:
            store.add_pool_waits("fulfilment", "db", "fulfilment", [0.06])

    assert [(f.kind, f.target) for f in run(warming_pool) if f.kind == "db_pool_saturation"] == []


def test_finding_dict_has_the_contract_shape():
    top = run(slow_pool)[0].to_dict()
    assert set(top) == {"kind", "service", "target", "score", "severity", "since", "summary", "evidence", "recommendation"}
    assert top["evidence"]["pool_max"] == 10
    assert top["evidence"]["wait_p99_ms"] > top["evidence"]["query_p99_ms"]
    assert 0.0 <= top["score"] <= 1.0


@pytest.mark.parametrize(("score", "severity"), [(0.9, "critical"), (0.7, "critical"), (0.5, "warning"), (0.39, "info")])
def test_severity_bands(score, severity):
    assert severity_of(score) == severity


# ---------------------------------------------------------------- what real services showed (tests/scenarios)


def one_off_slow_statement(store, rng, i):
    if i == 0:  # a seed/schema statement at start-up: slow, once, outside any request
        store.add_dependency_calls(SVC, "db", "INSERT INTO products SELECT ... FROM generate_series(?, ?)", [8.0])


def worker_wait_with_idle_workers(store, rng, i):
    # a thread waited to be scheduled (CPU/GIL contention) while most workers were idle
    store.set_pool(SVC, "worker", "anyio", used=2, max=16, pending=0)
    store.add_pool_waits(SVC, "worker", "anyio", [0.3] + [0.0005] * 9)


def warming_up(store, rng, i):
    store.set_runtime(SVC, rss=120e6 + min(i, 50) * 3e6)  # grows 180 MB/min for 50 s, then levels off


@pytest.mark.parametrize("feed", [one_off_slow_statement, worker_wait_with_idle_workers, warming_up], ids=lambda f: f.__name__)
def test_no_false_bottleneck(feed):
    findings = run(feed)
    assert [(f.kind, f.target, f.score) for f in findings if f.severity != "info"] == []


def test_queueing_is_credited_to_what_the_busy_workers_do():
    def slow_query_holding_every_worker(store, rng, i):
        durations = _lognormal(rng, 1.2, 10)
        store.add_requests(SVC, "GET /search", durations)
        store.add_breakdown(SVC, "GET /search", {"queue": 0.7 * 10, "db": 0.45 * 10, "self": 0.05 * 10}, slow=True, requests=10)
        store.add_dependency_calls(SVC, "db", "SELECT products WHERE lower(name) LIKE ?", _lognormal(rng, 0.45, 10))
        store.set_pool(SVC, "worker", "anyio", used=40, max=40, pending=20)
        store.add_pool_waits(SVC, "worker", "anyio", _lognormal(rng, 0.7, 10))

    top = run(slow_query_holding_every_worker)[0]
    assert (top.kind, top.target) == ("slow_query", "SELECT products WHERE lower(name) LIKE ?")


def blocked_loop_with_threadpool_symptoms(store, rng, i):
    """The loop is blocked; the threadpool looks saturated because its results wait for the loop."""
    blocked_loop(store, rng, i)
    worker_pool(store, rng, i)


def test_a_blocked_loop_outranks_the_threadpool_it_starves():
    findings = run(blocked_loop_with_threadpool_symptoms)
    assert (findings[0].kind, findings[0].target) == ("event_loop_blocked", "event_loop"), [(f.kind, f.target, f.score) for f in findings[:4]]
    pool = next(f for f in findings if f.kind == "worker_pool_saturation")
    assert pool.evidence["event_loop_blocked"] is True
    assert pool.score < findings[0].score


def cpu_bound_on_a_shared_host(store, rng, i):
    """A CPU-bound process that gets only ~60% of a core: its own time is mostly computing,
    and the GIL-starved loop lags and the threadpool queues as symptoms."""
    durations = _lognormal(rng, 0.08, 8)
    store.add_requests(SVC, "GET /recommendations", durations)
    store.add_breakdown(SVC, "GET /recommendations", {"self": sum(durations)}, slow=True, requests=8)
    store.set_runtime(SVC, cpu=0.62)
    blocked_loop(store, rng, i)
    store.set_pool(SVC, "worker", "anyio", used=16, max=16, pending=10)
    store.add_pool_waits(SVC, "worker", "anyio", _lognormal(rng, 0.2, 8))


def test_cpu_bound_on_a_shared_host_is_cpu_saturation_not_its_symptoms():
    findings = run(cpu_bound_on_a_shared_host)
    assert (findings[0].kind, findings[0].target) == ("cpu_saturation", "process"), [(f.kind, f.target, f.score) for f in findings[:4]]
    assert findings[0].severity != "info"
    assert findings[0].evidence["cpu_per_self_time"] >= 0.25


def test_sleeping_workers_with_low_cpu_are_not_cpu_saturation():
    findings = run(worker_pool)
    assert "cpu_saturation" not in {f.kind for f in findings}


def gil_bound_on_a_contended_host(store, rng, i):
    """What the demo shop sends with its CPU-heavy route on a busy 2-core host: the process
    gets 0.58 core and waits 0.39 core for a CPU; 16 threads share the GIL, so each request's
    own time is mostly waiting for it (CPU per own time is low); the GIL-starved loop lags and
    the threadpool queues."""
    durations = _lognormal(rng, 0.4, 8)
    store.add_requests(SVC, "GET /recommendations", durations)
    store.add_breakdown(SVC, "GET /recommendations", {"self": sum(durations) * 0.8, "queue": sum(durations) * 0.2}, slow=True, requests=8)
    store.set_runtime(SVC, cpu=0.58, run_queue_wait=0.39)
    blocked_loop(store, rng, i)
    store.set_pool(SVC, "worker", "anyio", used=16, max=16, pending=10)
    store.add_pool_waits(SVC, "worker", "anyio", _lognormal(rng, 0.2, 8))


def test_cpu_demand_names_a_starved_cpu_bound_process():
    findings = run(gil_bound_on_a_contended_host)
    top = findings[0]
    assert (top.kind, top.target, top.severity) == ("cpu_saturation", "process", "critical"), [(f.kind, f.target, f.score) for f in findings[:4]]
    assert (top.evidence["cpu_utilization"], top.evidence["run_queue_wait"], top.evidence["cpu_demand"]) == (0.58, 0.39, 0.97)
    assert top.evidence["cpu_per_self_time"] < 0.25  # the old "mostly computing" test alone would miss it
    assert top.summary.startswith("The process wants 0.97 core (uses 0.58, waits 0.39 for a CPU)")
    assert "processes" in top.recommendation and "threads will not help" in top.recommendation and "GET /recommendations" in top.recommendation
    kinds = [f.kind for f in findings]
    assert "worker_pool_saturation" not in kinds  # more threads would not help
    loop = next(f for f in findings if f.kind == "event_loop_blocked")
    assert loop.evidence["cpu_bound"] is True and loop.score < top.score


def tiny_worker_pool_on_a_contended_host(store, rng, i):
    """Four workers sleeping on I/O; the host is busy, so each wake-up waits a little for a CPU."""
    worker_pool(store, rng, i)
    store.set_runtime(SVC, cpu=0.14, run_queue_wait=0.3)


def blocking_call_on_the_loop_on_a_contended_host(store, rng, i):
    """A blocking sleep/sync call inside async code: the loop lags while the process computes little."""
    blocked_loop(store, rng, i)
    store.set_runtime(SVC, cpu=0.22, run_queue_wait=0.45)
    store.set_pool(SVC, "worker", "anyio", used=40, max=40, pending=8)  # its results wait for the loop
    store.add_pool_waits(SVC, "worker", "anyio", _lognormal(rng, 0.1, 10))


@pytest.mark.parametrize(
    "feed, kind, target",
    [
        (tiny_worker_pool_on_a_contended_host, "worker_pool_saturation", "anyio"),
        (blocking_call_on_the_loop_on_a_contended_host, "event_loop_blocked", "event_loop"),
    ],
)
def test_run_queue_wait_alone_is_no_cpu_saturation(feed, kind, target):
    findings = run(feed)
    assert (findings[0].kind, findings[0].target) == (kind, target), [(f.kind, f.target, f.score) for f in findings[:4]]
    assert findings[0].severity != "info"
    assert "cpu_saturation" not in {f.kind for f in findings}
    if kind == "worker_pool_saturation":
        assert (findings[0].evidence["run_queue_wait"], findings[0].evidence["cpu_demand"]) == (0.3, 0.44)


def test_a_process_that_gets_the_cpu_it_asks_for_is_not_cpu_bound():
    """With the wait signal, 0.62 core used and hardly any wait is a process below one core
    that the host serves in full, however much of its own time is computing."""

    def computing_below_a_core(store, rng, i):
        cpu_bound_on_a_shared_host(store, rng, i)
        store.set_runtime(SVC, cpu=0.62, run_queue_wait=0.03)

    assert "cpu_saturation" not in {f.kind for f in run(computing_below_a_core)}


def test_many_threads_waiting_for_a_cpu_read_as_threads_not_cores():
    """Sixteen GIL waiters on a busy host each wait for a CPU at every wake-up: a wait of
    3.3 is threads waiting on average, and the summary does not claim 3.9 cores of demand."""

    def many_waiters(store, rng, i):
        gil_bound_on_a_contended_host(store, rng, i)
        store.set_runtime(SVC, cpu=0.6, run_queue_wait=3.3)

    top = run(many_waiters)[0]
    assert (top.kind, top.evidence["cpu_demand"]) == ("cpu_saturation", 3.9)
    assert top.summary.startswith("The process wants more than a core (uses 0.60; on average 3.3 of its threads wait for a CPU)")


def test_a_loop_lag_the_requests_do_not_feel_is_no_bottleneck():
    """An idle async service on a busy host: its loop timer fires 50–60 ms late now and
    then (it waits for a CPU), while its requests stay fast — nothing to name."""
    from chokepoint.collector.sketch import Sketch

    def idle_service_on_a_busy_host(store, rng, i):
        store.add_requests("payment", "POST /charge", _lognormal(rng, 0.004, 5))
        lag = Sketch()
        lag.add_many([0.001] * 9 + [0.06])
        store.merge_runtime_sketch("payment", "loop_lag", lag)
        store.set_runtime("payment", cpu=0.01, run_queue_wait=0.05)

    findings = run(idle_service_on_a_busy_host)
    assert "event_loop_blocked" not in {f.kind for f in findings}, [(f.kind, f.service, f.score) for f in findings]


def test_rare_loop_stalls_on_a_busy_host_are_not_event_loop_blocked():
    """A service slowed by a busy host: its requests are slow (degraded) and its loop timer
    is late now and then (8% of ticks, p99 150 ms, as long as the slowest requests) — the
    loop is rarely busy, so the stalls do not explain the slow requests: info at most."""
    from chokepoint.collector.sketch import Sketch

    def starved_service(store, rng, i):
        store.add_requests("payment", "POST /charge", _lognormal(rng, 0.06, 5))
        lag = Sketch()
        lag.add_many([0.001] * 23 + [0.15] * 2)
        store.merge_runtime_sketch("payment", "loop_lag", lag)
        store.set_runtime("payment", cpu=0.02, run_queue_wait=0.1)

    findings = run(starved_service)
    loop = [f for f in findings if f.kind == "event_loop_blocked"]
    assert loop and loop[0].evidence["loop_late_fraction"] == 0.08 and loop[0].severity == "info", [(f.kind, f.score) for f in findings]


def test_a_process_that_became_cpu_bound_recently_is_named():
    """CPU-bound for the last 25 s of a 60 s window after 35 s of light use: the window's mean
    CPU (0.3 core used) trails the change; what the process does now is what counts."""

    def cpu_bound_lately(store, rng, i):
        if i >= 65:
            gil_bound_on_a_contended_host(store, rng, i)
            store.set_runtime(SVC, cpu=0.55, run_queue_wait=0.45)

    findings = run(cpu_bound_lately)
    top = findings[0]
    assert (top.kind, top.target) == ("cpu_saturation", "process"), [(f.kind, f.target, f.score) for f in findings[:4]]
    assert top.evidence["cpu_utilization"] == 0.55 and top.evidence["cpu_demand"] == 1.0
