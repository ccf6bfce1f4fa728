"""The dashboards against the real collector: OTel SDK spans → collector → REST API → Dash pages,
and collector ``/metrics`` → real Prometheus → the Grafana RED panels and the rules' request series."""

from __future__ import annotations

import time
import urllib.parse

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from chokepoint.dashboards import rules
from chokepoint.dashboards.client import ApiClient
from chokepoint.dashboards.grafana import generate
from chokepoint.dashboards.pages import dependencies, messaging, overview, resources, route
from chokepoint.instrument import signals
from devservices import PrometheusService
from tests.dashboards.component_text import texts
from tests.integration.collector_probe import expressions_without_data, promql, wait_for
from tests.integration.test_dashboards_browser import DashServer, assert_healthy_page, browser, show_page  # noqa: F401 - browser is a fixture

ONE_SECOND_BUCKETS = [{"bucket_seconds": 1.0}]


def send_requests(collector) -> None:
    """/checkout: 100 requests of 300–894 ms, 10 failing; /cart: 200 requests of 5–24 ms."""
    provider = TracerProvider(resource=Resource.create({signals.ATTR_SERVICE_NAME: "shop"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{collector.otlp_http}/v1/traces"), max_export_batch_size=128))
    tracer = provider.get_tracer("dashboards-test")
    now_ns = time.time_ns()
    plan = [("/checkout", i, 300 + 6 * i, i < 10) for i in range(100)] + [("/cart", i, 5 + i % 20, False) for i in range(200)]
    for path, i, duration_ms, failed in plan:
        start = now_ns - 2_000_000_000 + i * 1_000_000
        attrs = {signals.ATTR_HTTP_ROUTE: path, signals.ATTR_HTTP_METHOD: "GET", signals.ATTR_HTTP_STATUS: 500 if failed else 200}
        span = tracer.start_span(f"GET {path}", kind=SpanKind.SERVER, attributes=attrs, start_time=start)
        if failed:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=start + duration_ms * 1_000_000)
    assert provider.force_flush(10_000)
    provider.shutdown()


@pytest.mark.parametrize("collector", ONE_SECOND_BUCKETS, indirect=True)
def test_pages_show_the_real_collectors_data(collector):
    send_requests(collector)
    client = ApiClient(collector.api, timeout_s=5)
    assert wait_for(lambda: sum(e["count"] for e in client.endpoints()) == 300), client.endpoints()

    status, _banner, _findings, rows, _options, default = overview.refresh(client)
    assert "2 routes" in texts(status)
    checkout = next(r for r in rows if r["route"].startswith("[/checkout]"))
    assert checkout["error_pct"] == pytest.approx(10.0)
    assert 850 <= checkout["p99_ms"] <= 950 and 300 <= checkout["p50_ms"] <= 700
    assert default == "shop|/checkout"  # highest p99 first

    # the time series appear once the collector closes the 1-s buckets
    heat, lines = wait_for(lambda: (charts := overview.refresh_route_charts(client, default, window_s=600)) and charts[1].data and charts)
    assert [t.name for t in lines.data][:3] == ["p50", "p90", "p99"]
    assert heat.data and heat.data[0].type == "heatmap"

    status, _options, hist, _breakdown, _rows, _traces = route.refresh(client, default)
    assert "error-banner" not in str(status), texts(status)
    assert hist.layout.xaxis.type == "log" and sum(hist.data[0].y) == 100
    for page in (resources, dependencies, messaging):
        page_status = page.refresh(client)[0]
        assert "error-banner" not in str(page_status), (page.NAME, texts(page_status))  # e.g. a 400 for an unknown metric


@pytest.mark.parametrize("collector", ONE_SECOND_BUCKETS, indirect=True)
def test_overview_in_chromium_against_the_real_collector(collector, browser):  # noqa: F811 - fixture
    send_requests(collector)
    with DashServer(collector.api) as server:
        show_page(browser, server.url + "/", [(overview.RED_TABLE, "/checkout"), (overview.RED_TABLE, "/cart")])
        assert_healthy_page(browser)


@pytest.mark.parametrize("collector", ONE_SECOND_BUCKETS, indirect=True)
def test_prometheus_scraping_the_collector_feeds_red_panels_and_rules(collector):
    send_requests(collector)
    target = urllib.parse.urlparse(collector.api).netloc
    with PrometheusService([target], scrape_interval="1s", rule_files=[str(rules.RULES_FILE)]) as prom:
        red = [e for uid, title, e in generate.all_expressions() if uid == "chokepoint-overview" and title != "Time per request by component"]
        red = [e.replace("$service", ".*").replace("$route", ".*").replace("$__rate_interval", "10s") for e in red]
        recorded = [
            "chokepoint:requests:rate1m",
            "chokepoint:request_error_ratio:rate5m",
            "chokepoint:request_slow_ratio:rate5m",
            "chokepoint:request_duration_seconds:p99_5m",
        ]
        pending = expressions_without_data(prom.url, red + recorded, timeout_s=30)
        assert not pending, f"no data from the real collector for: {pending}"
        routes = {r["metric"].get("route") for r in promql(prom.url, "chokepoint:requests:rate1m")}
        assert routes == {"/checkout", "/cart"}
