"""/metrics: the store collector's samples, asserted exactly with a fresh registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from chokepoint.collector import catalog as cat
from chokepoint.collector.exposition import LATENCY_BUCKETS_S, StoreCollector
from chokepoint.collector.store import Store, StoreConfig


class Clock:
    def __init__(self, t: float = 20_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def registry_for(store, findings=None):
    registry = CollectorRegistry()
    registry.register(StoreCollector(store, findings=findings))
    return registry


def test_request_histogram_counters_and_monotonic_totals():
    clock = Clock()
    store = Store(StoreConfig(bucket_seconds=10), clock=clock)
    store.add_requests("shop", "/a", [0.0005, 0.003, 0.003, 0.04, 0.7], errors=2)
    reg = registry_for(store)
    labels = {"service": "shop", "route": "/a"}
    name = cat.REQUEST_DURATION.name
    expected_cumulative = {0.001: 1, 0.0025: 1, 0.005: 3, 0.01: 3, 0.025: 3, 0.05: 4, 0.1: 4, 0.25: 4, 0.5: 4, 1.0: 5}
    for le, n in expected_cumulative.items():
        assert reg.get_sample_value(f"{name}_bucket", {**labels, "le": repr(le)}) == n
    assert reg.get_sample_value(f"{name}_bucket", {**labels, "le": "+Inf"}) == 5
    assert reg.get_sample_value(f"{name}_count", labels) == 5
    assert abs(reg.get_sample_value(f"{name}_sum", labels) - 0.7465) < 1e-9
    assert reg.get_sample_value(cat.REQUESTS.sample_name, labels) == 5
    assert reg.get_sample_value(cat.REQUEST_ERRORS.sample_name, labels) == 2
    # closing the bucket, then more data: counters keep counting (never reset by flush)
    clock.t += 10
    store.flush_due()
    store.add_requests("shop", "/a", [0.02])
    clock.t += 3600 * 2
    store.flush_due()  # both buckets expire from memory; totals stay
    assert reg.get_sample_value(cat.REQUESTS.sample_name, labels) == 6
    assert len(LATENCY_BUCKETS_S) == 15


def test_gauges_dependencies_pools_breakers_lag_runtime_and_ingest_counters():
    clock = Clock()
    store = Store(StoreConfig(bucket_seconds=10), clock=clock)
    store.add_dependency_calls("shop", "http", "api", [0.2, 0.3], errors=1)
    store.set_pool("shop", "db", "main", used=9, max=10, pending=3)
    store.add_pool_waits("shop", "db", "main", [0.04])
    store.add_pool_timeouts("shop", "db", "main", 2)
    store.set_breaker_state("shop", "payments", "open")
    store.add_breaker_transitions("shop", "payments", "open", 1)
    store.add_breaker_calls("shop", "payments", "rejected", 7)
    store.record_consumer_offsets("g", "orders", 0, 100, 150, clock.t, time_lag_s=12.5)
    store.set_runtime("shop", cpu=0.95, rss=2e8, threads=33, run_queue_wait=0.35)
    store.add_breakdown("shop", "/a", {"db": 1.25}, requests=5)
    store.count_ingested("grpc", spans=100, points=7)
    store.count_rejected("http", "too_large", 2)
    store.count_dropped("cardinality", 4)
    clock.t += 10
    store.set_pool("shop", "db", "main", used=10)  # the newest gauge value wins
    reg = registry_for(store, findings=lambda: [{"service": "shop", "kind": "db_pool_saturation", "target": "main", "score": 0.8}])
    v = reg.get_sample_value
    dep = {"service": "shop", "kind": "http", "target": "api"}
    assert v(cat.DEPENDENCY_CALLS.sample_name, dep) == 2 and v(cat.DEPENDENCY_ERRORS.sample_name, dep) == 1
    assert v(f"{cat.DEPENDENCY_DURATION.name}_bucket", {**dep, "le": "0.25"}) == 1
    pool = {"service": "shop", "kind": "db", "pool": "main"}
    assert (v(cat.POOL_USED.name, pool), v(cat.POOL_MAX.name, pool), v(cat.POOL_PENDING.name, pool)) == (10, 10, 3)
    assert v(cat.POOL_TIMEOUTS.sample_name, pool) == 2
    assert v(f"{cat.POOL_WAIT.name}_bucket", {**pool, "le": "0.05"}) == 1
    assert v(f"{cat.POOL_WAIT.name}_bucket", {**pool, "le": "0.025"}) == 0
    br = {"service": "shop", "breaker": "payments"}
    assert v(cat.BREAKER_STATE.name, br) == 2
    assert v(cat.BREAKER_TRANSITIONS.sample_name, {**br, "to_state": "open"}) == 1
    assert v(cat.BREAKER_CALLS.sample_name, {**br, "result": "rejected"}) == 7
    part = {"group": "g", "topic": "orders", "partition": "0"}
    assert (v(cat.CONSUMER_LAG.name, part), v(cat.CONSUMER_TIME_LAG.name, part), v(cat.CONSUMER_STATUS.name, part)) == (50, 12.5, 0)
    svc = {"service": "shop"}
    assert (v(cat.PROCESS_CPU.name, svc), v(cat.PROCESS_RSS.name, svc), v(cat.THREADS.name, svc)) == (0.95, 2e8, 33)
    assert v(cat.PROCESS_CPU_RUN_QUEUE_WAIT.name, svc) == 0.35
    assert v(cat.BREAKDOWN_TIME.sample_name, {"service": "shop", "route": "/a", "component": "db"}) == 1.25
    assert v(cat.BOTTLENECK_SCORE.name, {"service": "shop", "kind": "db_pool_saturation", "target": "main"}) == 0.8
    assert v(cat.INGEST_SPANS.sample_name, {"protocol": "grpc"}) == 100
    assert v(cat.INGEST_POINTS.sample_name, {"protocol": "grpc"}) == 7
    assert v(cat.INGEST_REJECTED.sample_name, {"protocol": "http", "reason": "too_large"}) == 2
    assert v(cat.INGEST_DROPPED.sample_name, {"reason": "cardinality"}) == 4


def test_exposition_text_uses_only_catalog_names():
    store = Store()
    store.add_requests("shop", "/a", [0.01])
    store.set_runtime("shop", cpu=0.1)
    text = generate_latest(registry_for(store)).decode()
    families = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    catalog_names = {m.name for m in cat.METRICS} | {m.sample_name for m in cat.METRICS}
    assert families and families <= catalog_names
    assert 'chokepoint_requests_total{route="/a",service="shop"} 1.0' in text


def test_a_failing_findings_callable_leaves_the_rest_of_the_scrape_intact():
    store = Store()
    store.add_requests("shop", "/a", [0.01])

    def broken():
        raise RuntimeError("analyzer bug")

    reg = registry_for(store, findings=broken)
    assert reg.get_sample_value(cat.REQUESTS.sample_name, {"service": "shop", "route": "/a"}) == 1
    assert cat.BOTTLENECK_SCORE.name not in generate_latest(reg).decode()
