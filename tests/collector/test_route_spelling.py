"""One route spelling per framework in every API and page; internal pools with no values are not listed (issue 13 item 13)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient

from chokepoint.collector.api import create_api_app
from chokepoint.collector.auth import BearerAuth
from chokepoint.collector.ingest import Ingestor
from chokepoint.collector.semconv import canonical_route, route_name
from chokepoint.collector.store import Store
from chokepoint.instrument import signals as sig
from tests.collector.otlp_builders import SERVER, span, traces_request


@pytest.mark.parametrize(
    ("reported", "key"),
    [
        ("api/articles", "/api/articles"),  # Django path()
        ("api/articles/<int:pk>/", "/api/articles/<int:pk>/"),
        ("^api/articles/$", "/api/articles/"),  # Django re_path()
        ("/api/users/<int:id>", "/api/users/<int:id>"),  # Flask
        ("/items/{item_id}", "/items/{item_id}"),  # FastAPI / Starlette
        ("unknown", "unknown"),
        ("", ""),
    ],
)
def test_canonical_route(reported, key):
    assert canonical_route(reported) == key


def test_route_name_keys_templates_with_a_leading_slash():
    assert route_name("api/articles") == "/api/articles"
    assert route_name(None, "/api/articles/12") == route_name(None, "/api/articles/12")  # paths keep their normalization


def test_a_django_route_is_one_key_in_endpoints_and_breakdown():
    store = Store()
    spans = [
        span("GET api/articles", SERVER, 12.0, {"http.request.method": "GET", sig.ATTR_HTTP_ROUTE: "api/articles", "http.response.status_code": 200})
        for _ in range(5)
    ]
    assert Ingestor(store).consume_traces(traces_request("blog", spans)).rejected == 0
    assert [e["route"] for e in store.endpoints("blog")] == ["/api/articles"]
    client = TestClient(create_api_app(store, CollectorRegistry(), BearerAuth(None)))
    both = [client.get("/api/v1/breakdown", params={"service": "blog", "route": r}).json() for r in ("api/articles", "/api/articles")]
    assert both[0] == both[1] and both[0]["requests"] == 5 and both[0]["all"]["self"] > 0


def test_internal_pools_without_values_are_not_listed():
    store = Store()
    store.set_pool("blog", "worker", "gunicorn", used=2, max=4, pending=0)
    for name in ("ThreadPoolExecutor-2", "other", "anyio-limiter-1"):
        store.set_pool("blog", "worker", name)  # a probe saw the pool, no value came
    assert [p["name"] for p in store.pools()] == ["gunicorn"]
