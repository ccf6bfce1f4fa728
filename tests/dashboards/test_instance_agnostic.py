"""The generated rules and Grafana panels read the union of N collectors' ``/metrics``.

With several collectors behind one Prometheus (sharded by service, docs/SCALING.md), a raw
``chokepoint_*`` series exists once per scraped collector (``instance`` label) and, during a
failover, a service's series exist on two.  Every ``chokepoint_*`` selector of every rule and
panel must therefore sit inside an aggregation ``by (...)`` that does not keep ``instance``,
so a panel draws one line and an alert fires once per service/target whatever the number of
collectors.
"""

from __future__ import annotations

import re

import pytest
import yaml

from chokepoint.dashboards import rules
from chokepoint.dashboards.grafana import generate

AGGREGATION = re.compile(r"\b(sum|max|min|avg|count|topk|bottomk|quantile)\s+by\s*\(([^)]*)\)\s*\(")
SELECTOR = re.compile(r"\bchokepoint_\w+")  # recording rules (chokepoint:...) are aggregated already


def expressions() -> list[tuple[str, str]]:
    doc = yaml.safe_load(rules.rules_yaml())
    out = [(r.get("record") or r.get("alert"), r["expr"]) for g in doc["groups"] for r in g["rules"]]
    out += [(f"{uid}: {title}", expr) for uid, title, expr in generate.all_expressions()]
    return out


def aggregated_spans(expr: str) -> list[tuple[int, int, list[str]]]:
    """(start, end, by-labels) of every ``agg by (...) (...)`` in ``expr``."""
    spans = []
    for m in AGGREGATION.finditer(expr):
        depth = 0
        for i in range(m.end() - 1, len(expr)):
            depth += {"(": 1, ")": -1}.get(expr[i], 0)
            if depth == 0:
                spans.append((m.end() - 1, i, [label.strip() for label in m.group(2).split(",")]))
                break
    return spans


def test_the_check_sees_an_unaggregated_selector():
    assert aggregated_spans("sum by (service) (rate(chokepoint_requests_total[1m]))")[0][2] == ["service"]
    expr = "deriv(chokepoint_consumer_lag[5m])"
    assert not any(a < m.start() < b for m in SELECTOR.finditer(expr) for a, b, _ in aggregated_spans(expr))


@pytest.mark.parametrize(("name", "expr"), expressions())
def test_every_selector_is_aggregated_without_instance(name, expr):
    spans = aggregated_spans(expr)
    for m in SELECTOR.finditer(expr):
        assert any(a < m.start() < b for a, b, _ in spans), f"{name}: {m.group(0)} is not aggregated: one series per collector in {expr!r}"
    for _a, _b, labels in spans:
        assert "instance" not in labels and "job" not in labels, f"{name}: aggregates by instance: {expr!r}"
