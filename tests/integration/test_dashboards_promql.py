"""Every PromQL expression of the Grafana panels and the Prometheus rules, run by a real Prometheus.

A prometheus-client endpoint exposes every metric of ``chokepoint.collector.catalog``
with synthetic values of a service in trouble (slow route, 20 % errors, full DB pool,
open breaker, growing consumer lag, every bottleneck kind scored 0.9), updated by a
background thread.  A real Prometheus scrapes it every second with the generated rule
file loaded; then each expression is executed through the HTTP API and must return
samples, and every alert must at least be pending.
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from chokepoint.collector import catalog
from chokepoint.dashboards import rules
from chokepoint.dashboards.grafana import generate
from devservices import PrometheusService, ServiceUnavailable, free_port
from tests.integration.collector_probe import expressions_without_data, promql

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
GRAFANA_VARIABLES = {"$service": ".*", "$route": ".*", "$__rate_interval": "10s", "$__range": "1m"}
TICK_S = 0.1

# label values per label name; "kind" depends on the metric family
LABEL_VALUES = {
    "service": ("shop",),
    "route": ("/checkout", "/cart"),
    "target": ("payments.internal",),
    "pool": ("sqlalchemy:postgresql",),
    "breaker": ("payments",),
    "to_state": ("open", "half_open"),
    "result": ("success", "failure", "rejected"),
    "group": ("order-workers",),
    "topic": ("orders",),
    "partition": ("0",),
    "component": ("self", "db", "pool_wait", "http"),
    "protocol": ("grpc", "http"),
    "reason": ("bad_request",),
}


def _label_sets(metric: catalog.Metric) -> list[dict]:
    kinds = {
        catalog.BOTTLENECK_SCORE.name: tuple(k.kind for k in catalog.FINDING_KINDS),
        catalog.POOL_USED.name: catalog.POOL_KINDS,
    }
    sets = [{}]
    for label in metric.labels:
        if label == "kind":
            values = kinds.get(metric.name) or (catalog.POOL_KINDS if "pool" in metric.labels else catalog.DEPENDENCY_KINDS)
        else:
            values = LABEL_VALUES.get(label, ("x",))
        sets = [{**s, label: v} for s in sets for v in values]
    return sets


class TroubledService:
    """Every catalog metric in a fresh registry, fed by :meth:`tick` with a service in trouble."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.families = {}
        for m in catalog.METRICS:
            cls = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}[m.type]
            kwargs = {"buckets": BUCKETS} if m.type == "histogram" else {}
            self.families[m.name] = (m, cls(m.name, m.help, list(m.labels), registry=self.registry, **kwargs))
        self.started = time.monotonic()

    def _value(self, m: catalog.Metric, labels: dict, age_s: float) -> float:
        """Per-tick increment (counters), level (gauges) or observation (histograms)."""
        c = catalog
        if m is c.REQUESTS:
            return 5.0
        if m is c.REQUEST_ERRORS:
            return 1.0  # 20 % errors
        if m is c.REQUEST_DURATION:
            return 0.8 if labels["route"] == "/checkout" else 0.01
        if m is c.POOL_USED or m is c.POOL_MAX:
            return 10.0
        if m is c.POOL_PENDING:
            return 5.0
        if m is c.POOL_WAIT:
            return 0.4
        if m is c.BREAKER_STATE:
            return float(c.BREAKER_STATES.index("open"))
        if m is c.CONSUMER_LAG:
            return 2000.0 + 500.0 * age_s
        if m is c.CONSUMER_TIME_LAG:
            return 30.0 + age_s
        if m is c.CONSUMER_STATUS:
            return float(c.LAG_STATUSES.index("STALL"))
        if m is c.PROCESS_CPU:
            return 0.97
        if m is c.PROCESS_RSS:
            return 2.5e8 + 1e5 * age_s
        if m is c.THREADS:
            return 44.0
        if m is c.BOTTLENECK_SCORE:
            return 0.9
        if m.type == "histogram":
            return 0.2 + 0.05 * math.sin(age_s)
        return 1.0  # any other counter increments, gauge stays up

    def tick(self) -> None:
        age_s = time.monotonic() - self.started
        for m, family in self.families.values():
            for labels in _label_sets(m):
                child = family.labels(**labels)
                value = self._value(m, labels, age_s)
                if m.type == "counter":
                    child.inc(value)
                elif m.type == "gauge":
                    child.set(value)
                else:
                    child.observe(value)


def _grafana_expr(expr: str) -> str:
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    return expr


@pytest.fixture(scope="module")
def troubled_prometheus():
    service = TroubledService()
    port = free_port()
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=service.registry)
    stop = threading.Event()

    def feed():
        while not stop.is_set():
            service.tick()
            stop.wait(TICK_S)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    prom = PrometheusService([f"127.0.0.1:{port}"], scrape_interval="1s", rule_files=[str(rules.RULES_FILE)])
    try:
        prom.__enter__()
    except ServiceUnavailable as exc:
        pytest.fail(f"prometheus: {exc}", pytrace=False)
    try:
        yield prom
    finally:
        prom.stop()
        stop.set()
        server.shutdown()


def test_every_grafana_panel_query_returns_data(troubled_prometheus):
    queries = {f"{uid} / {title}: {expr}": _grafana_expr(expr) for uid, title, expr in generate.all_expressions()}
    assert len(queries) >= 30
    empty = expressions_without_data(troubled_prometheus.url, list(queries.values()))
    assert not empty, "panel queries without data:\n" + "\n".join(k for k, v in queries.items() if v in empty)
    p99 = promql(troubled_prometheus.url, _grafana_expr(next(e for _, t, e in generate.all_expressions() if t == "Latency p50 / p90 / p99" and "0.99" in e)))
    by_route = {r["metric"]["route"]: float(r["value"][1]) for r in p99}
    assert 0.5 < by_route["/checkout"] <= 1.0 and by_route["/cart"] <= 0.01


def test_every_rule_expression_returns_data_and_alerts_are_active(troubled_prometheus):
    empty = expressions_without_data(troubled_prometheus.url, rules.all_expressions())
    assert not empty, "rule expressions without data:\n" + "\n".join(empty)
    with urllib.request.urlopen(f"{troubled_prometheus.url}/api/v1/rules", timeout=5) as resp:
        groups = json.load(resp)["data"]["groups"]
    loaded = [r for g in groups for r in g["rules"]]
    assert len(loaded) == len(rules.all_expressions())
    assert all(r["health"] == "ok" for r in loaded), [r for r in loaded if r["health"] != "ok"]
    deadline = time.monotonic() + 20
    inactive = ["?"]
    while inactive and time.monotonic() < deadline:
        with urllib.request.urlopen(f"{troubled_prometheus.url}/api/v1/rules?type=alert", timeout=5) as resp:
            alerts = [r for g in json.load(resp)["data"]["groups"] for r in g["rules"]]
        inactive = [a["name"] for a in alerts if a["state"] not in ("pending", "firing")]
        time.sleep(1)
    assert not inactive, f"alerts that a service in this much trouble should trip: {inactive}"
