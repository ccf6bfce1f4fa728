"""REST API: routes, envelopes, parameter validation, auth and /metrics, against a fake store."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from starlette.testclient import TestClient

from chokepoint.collector.api import MAX_WINDOW_S, create_api_app
from chokepoint.collector.auth import BearerAuth
from chokepoint.collector.store import TIMESERIES_METRICS, Store


class FakeStore:
    """Returns recognisable payloads and records the arguments it was called with."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def _record(self, name, *args, **kwargs):
        self.calls.append((name, args, kwargs))

    def health(self):
        return {"status": "ok", "services": 1, "spans_total": 3}

    def services(self, window_s=60):
        self._record("services", window_s=window_s)
        return [{"name": "shop", "endpoints": 2, "rps": 1.5, "error_rate": 0.0}]

    def endpoints(self, service, window_s=60):
        self._record("endpoints", service, window_s=window_s)
        return [{"service": "shop", "route": "GET /x", "count": 3}]

    def dependencies(self, window_s=60):
        self._record("dependencies", window_s=window_s)
        return []

    def pools(self):
        return [{"service": "shop", "kind": "db", "name": "main", "used": 10, "max": 10}]

    def breakers(self):
        return [{"service": "shop", "name": "pay", "state": "open"}]

    def consumer_lag(self):
        return [{"group": "g", "topic": "t", "partition": 0, "lag": 5, "status": "WARN"}]

    def traces(self, route=None, slow_only=False, limit=50):
        self._record("traces", route=route, slow_only=slow_only, limit=limit)
        return [{"trace_id": "ab"}]

    def timeseries(self, metric, service=None, target=None, window_s=3600):
        self._record("timeseries", metric, service=service, target=target, window_s=window_s)
        return [{"labels": {"service": "shop"}, "points": [[1.0, 2.0]]}]

    def histogram(self, service, route, window_s=60):
        self._record("histogram", service, route, window_s=window_s)
        return [{"le_ms": 1.0, "count": 2}]

    def heatmap(self, service, route, window_s=3600):
        self._record("heatmap", service, route, window_s=window_s)
        return {"times": [1], "le_ms": [1.0], "counts": [[2]]}

    def breakdown(self, service, route, window_s=60):
        if route == "/boom":
            raise RuntimeError("bug in the store")
        self._record("breakdown", service, route, window_s=window_s)
        return {"all": {"db": 1.0}, "slow": {}, "requests": 2, "slow_requests": 0}


class OneCounter:
    def collect(self):
        family = CounterMetricFamily("chokepoint_ingest_spans", "Spans accepted", labels=["protocol"])
        family.add_metric(["http"], 42)
        yield family


@pytest.fixture
def store():
    return FakeStore()


@pytest.fixture
def client(store):
    registry = CollectorRegistry()
    registry.register(OneCounter())
    return TestClient(create_api_app(store, registry, findings=lambda w: [{"kind": "db_pool_saturation", "window": w}]))


def test_contract_envelopes(client):
    assert client.get("/api/v1/health").json()["status"] == "ok"
    assert client.get("/api/v1/services").json()["services"][0]["name"] == "shop"
    assert client.get("/api/v1/endpoints").json()["endpoints"][0]["route"] == "GET /x"
    assert client.get("/api/v1/dependencies").json() == {"dependencies": []}
    assert client.get("/api/v1/pools").json()["pools"][0]["max"] == 10
    assert client.get("/api/v1/breakers").json()["breakers"][0]["state"] == "open"
    assert client.get("/api/v1/consumer-lag").json()["consumer_lag"][0]["status"] == "WARN"
    assert client.get("/api/v1/traces").json() == {"traces": [{"trace_id": "ab"}]}
    assert client.get("/api/v1/bottlenecks?window=30").json() == {"findings": [{"kind": "db_pool_saturation", "window": 30.0}]}


def test_extensions(client, store):
    resp = client.get("/api/v1/timeseries", params={"metric": "latency_p99_ms", "service": "shop", "target": "GET /x", "window": "600"})
    assert resp.json() == {"metric": "latency_p99_ms", "series": [{"labels": {"service": "shop"}, "points": [[1.0, 2.0]]}]}
    assert store.calls[-1] == ("timeseries", ("latency_p99_ms",), {"service": "shop", "target": "GET /x", "window_s": 600.0})
    assert client.get("/api/v1/histogram?service=shop&route=GET%20/x").json() == {"buckets": [{"le_ms": 1.0, "count": 2}]}
    assert store.calls[-1] == ("histogram", ("shop", "GET /x"), {"window_s": 60.0})
    assert client.get("/api/v1/heatmap?service=shop&route=r").json()["counts"] == [[2]]
    assert store.calls[-1][2] == {"window_s": 3600.0}
    assert client.get("/api/v1/breakdown?service=shop&route=r&window=5").json()["requests"] == 2


def test_parameters_reach_the_store(client, store):
    client.get("/api/v1/endpoints?service=shop&window=120")
    assert store.calls[-1] == ("endpoints", ("shop",), {"window_s": 120.0})
    client.get("/api/v1/traces?route=GET%20/x&slow=1&limit=5")
    assert store.calls[-1] == ("traces", (), {"route": "GET /x", "slow_only": True, "limit": 5})
    client.get("/api/v1/traces?slow=false")
    assert store.calls[-1] == ("traces", (), {"route": None, "slow_only": False, "limit": 50})


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("/api/v1/endpoints?window=abc", "window must be a number"),
        ("/api/v1/endpoints?window=-1", "window must be > 0"),
        ("/api/v1/endpoints?window=nan", "window must be > 0"),
        (f"/api/v1/services?window={MAX_WINDOW_S * 2}", "window must be > 0"),
        ("/api/v1/endpoints?servce=shop", "unknown parameter 'servce'"),
        ("/api/v1/pools?window=60", "unknown parameter 'window'"),
        ("/api/v1/traces?limit=0", "limit must be 1..1000"),
        ("/api/v1/traces?limit=ten", "limit must be an integer"),
        ("/api/v1/traces?slow=maybe", "slow must be 0/1/true/false"),
        ("/api/v1/timeseries", "parameter 'metric' is required"),
        ("/api/v1/timeseries?metric=bogus", "unknown metric 'bogus'"),
        ("/api/v1/histogram?service=shop", "parameter 'route' is required"),
        ("/api/v1/heatmap?route=r", "parameter 'service' is required"),
        ("/api/v1/breakdown?service=" + "x" * 600 + "&route=r", "longer than 512"),
    ],
)
def test_bad_parameters_are_400_with_a_message(client, url, fragment):
    resp = client.get(url)
    assert resp.status_code == 400
    assert fragment in resp.json()["error"]


def test_every_timeseries_metric_of_the_store_is_accepted(client):
    for metric in TIMESERIES_METRICS:
        assert client.get(f"/api/v1/timeseries?metric={metric}").status_code == 200


def test_store_failure_is_500_json_not_a_crash(client):
    resp = client.get("/api/v1/breakdown?service=shop&route=/boom")
    assert resp.status_code == 500 and "internal error" in resp.json()["error"]
    assert client.get("/api/v1/health").status_code == 200


def test_unknown_endpoint_404_and_post_405(client):
    assert client.get("/api/v1/nope").status_code == 404
    assert "error" in client.get("/api/v1/nope").json()
    assert client.post("/api/v1/health").status_code == 405


def test_bottlenecks_without_analyzer_is_empty(store):
    client = TestClient(create_api_app(store))
    assert client.get("/api/v1/bottlenecks").json() == {"findings": []}


def test_metrics_exposition_text_and_openmetrics(client):
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    assert 'chokepoint_ingest_spans_total{protocol="http"} 42.0' in resp.text
    resp = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert resp.headers["content-type"].startswith("application/openmetrics-text")
    assert resp.text.rstrip().endswith("# EOF")


def test_token_guards_api_and_metrics(store):
    client = TestClient(create_api_app(store, CollectorRegistry(), auth=BearerAuth("t0k")))
    for url in ("/api/v1/health", "/api/v1/services", "/metrics"):
        resp = client.get(url)
        assert resp.status_code == 401
        assert "bearer token" in resp.json()["error"]
        assert client.get(url, headers={"Authorization": "Bearer t0k"}).status_code == 200
    assert client.get("/api/v1/health", headers={"Authorization": "bearer t0k"}).status_code == 200
    assert client.get("/api/v1/health", headers={"Authorization": "Bearer t0kX"}).status_code == 401


def test_health_lists_the_blind_spots_of_a_real_store():
    real = Store()
    real.set_coverage("shop", "SQLAlchemy", "statement spans", 0, version="2.0.23", try_="CHOKEPOINT_SQLALCHEMY_SPANS=listeners", instance="w1")
    body = TestClient(create_api_app(real, CollectorRegistry())).get("/api/v1/health").json()
    assert body["status"] == "ok"
    assert body["blind_spots"] == [
        {"service": "shop", "library": "SQLAlchemy", "version": "2.0.23", "what": "statement spans", "try": "CHOKEPOINT_SQLALCHEMY_SPANS=listeners"}
    ]


def test_pools_lists_http_and_redis_pools_that_came_through_ingest():
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.metrics.v1 import metrics_pb2

    from chokepoint.collector.ingest import Ingestor
    from chokepoint.instrument import signals as sig

    def gauge(name, value, attrs):
        m = metrics_pb2.Metric(name=name)
        p = m.gauge.data_points.add(as_double=value)
        for k, v in attrs.items():
            p.attributes.add(key=k, value=common_pb2.AnyValue(string_value=v))
        return m

    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.add(key="service.name", value=common_pb2.AnyValue(string_value="shop"))
    rm.scope_metrics.add().metrics.extend(
        [
            gauge(sig.DB_POOL_CONNECTION_MAX, 4, {sig.ATTR_POOL_NAME: "api.example:443", sig.ATTR_POOL_KIND: "http"}),
            gauge(sig.DB_POOL_PENDING_REQUESTS, 3, {sig.ATTR_POOL_NAME: "api.example:443", sig.ATTR_POOL_KIND: "http"}),
            gauge(sig.DB_POOL_CONNECTION_MAX, 10, {sig.ATTR_DB_POOL_NAME: "redis://cache:6379/0", sig.ATTR_POOL_KIND: "redis"}),
        ]
    )
    real = Store()
    Ingestor(real).consume_metrics(req)
    registry = CollectorRegistry()
    from chokepoint.collector.exposition import StoreCollector

    registry.register(StoreCollector(real))
    client = TestClient(create_api_app(real, registry))
    pools = client.get("/api/v1/pools").json()["pools"]
    assert sorted((p["kind"], p["name"], p["max"], p["pending"]) for p in pools) == [
        ("http", "api.example:443", 4, 3),
        ("redis", "redis://cache:6379/0", 10, None),
    ]
    lines = [ln for ln in client.get("/metrics").text.splitlines() if ln.startswith("chokepoint_pool_max")]
    assert lines == [
        'chokepoint_pool_max{kind="http",pool="api.example:443",service="shop"} 4.0',
        'chokepoint_pool_max{kind="redis",pool="redis://cache:6379/0",service="shop"} 10.0',
    ]
