"""chokepoint.dashboards.client: one call per endpoint, timeouts, one clear error type."""

from __future__ import annotations

import pytest

from chokepoint.collector.catalog import TIMESERIES_METRICS
from chokepoint.dashboards.client import ApiClient, CollectorUnavailable
from chokepoint.dashboards.pages import dependencies, messaging, overview, resources


def test_contract_endpoints_return_their_lists(api):
    assert {e["route"] for e in api.endpoints()} >= {"/checkout", "/cart"}
    assert api.services()[0]["name"] == "shop"
    assert {d["kind"] for d in api.dependencies()} == {"db", "http", "kafka"}
    assert {p["kind"] for p in api.pools()} == {"db", "worker"}
    assert {b["state"] for b in api.breakers()} == {"open", "closed"}
    assert {r["status"] for r in api.consumer_lag()} == {"OK", "WARN", "STOP"}
    assert api.bottlenecks()[0]["kind"] == "db_pool_saturation"
    assert api.health()["status"] == "ok"


def test_extensions_pass_their_parameters(api):
    series = api.timeseries("latency_p99_ms", service="shop", target="/checkout", window_s=600)
    assert [s["labels"]["route"] for s in series] == ["/checkout"]
    assert len(series[0]["points"]) == 60  # 600 s in 10 s buckets
    assert api.histogram("shop", "/checkout")[0]["le_ms"] > 0
    assert set(api.breakdown("shop", "/checkout")["slow"]) >= {"pool_wait", "db"}
    assert len(api.heatmap("shop", "/checkout", window_s=600)["times"]) == 60
    assert all(t["route"] == "/cart" for t in api.traces(route="/cart"))


def test_unreachable_collector_raises_one_clear_error(unreachable):
    with pytest.raises(CollectorUnavailable, match=r"collector unreachable at http://127\.0\.0\.1:"):
        unreachable.endpoints()


def test_bad_parameter_error_message_is_passed_on(api):
    with pytest.raises(CollectorUnavailable, match=r"400.*unknown metric 'nope'"):
        api.timeseries("nope")


def test_bearer_token_is_sent(real_collector):
    assert ApiClient(real_collector.url, token="s3cret").health()["status"] == "ok"
    with pytest.raises(CollectorUnavailable, match="401"):
        ApiClient(real_collector.url, token="wrong").health()


def test_token_from_environment(real_collector, monkeypatch):
    monkeypatch.setenv("CHOKEPOINT_TOKEN", "s3cret")
    assert ApiClient(real_collector.url).health()["status"] == "ok"
    monkeypatch.setenv("CHOKEPOINT_TOKEN", "from-env")
    with pytest.raises(CollectorUnavailable, match="401"):
        ApiClient(real_collector.url).health()


def test_pages_ask_only_for_catalog_time_series(api):
    """The synthetic API, like the collector, answers 400 for a metric outside catalog.TIMESERIES_METRICS."""
    asked = []
    original = api.timeseries

    def recording(metric, **kwargs):
        asked.append(metric)
        return original(metric, **kwargs)

    api.timeseries = recording
    overview.refresh_route_charts(api, "shop|/checkout")
    for page in (resources, dependencies, messaging):
        page.refresh(api)
    assert asked and set(asked) <= set(TIMESERIES_METRICS)
