"""A rule that raises is logged once, counted per kind, exported on /metrics, and hides no other rule."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry

from chokepoint.collector import catalog
from chokepoint.collector.analysis import rules
from chokepoint.collector.catalog import Kind
from chokepoint.collector.findings import BottleneckFindings
from chokepoint.collector.store import Store, StoreConfig
from tests.collector.test_analyzer import Clock


def test_a_raising_rule_is_logged_once_counted_and_exported(monkeypatch, caplog):
    def broken(snap):
        raise ZeroDivisionError("rule bug")
        yield  # a generator, like the real rules

    monkeypatch.setitem(rules.RULES, Kind.SLOW_QUERY, broken)
    store = Store(StoreConfig(bucket_seconds=1))
    store.set_breaker_state("shop", "payments", "open")
    store.add_breaker_calls("shop", "payments", "rejected", 10)
    findings = BottleneckFindings(store, window_s=60, baseline_s=120)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(findings)

    with caplog.at_level(logging.ERROR, logger="chokepoint.collector.analysis"):
        for _ in range(3):
            out = findings.refresh()
        findings.for_window(30)  # a one-off analyzer counts into the same errors

    assert [f["kind"] for f in out] == [Kind.CIRCUIT_OPEN]  # the other rules still ran
    assert [r for r in caplog.records if "slow_query" in r.getMessage()] and len(caplog.records) == 1
    assert registry.get_sample_value(catalog.ANALYZER_RULE_ERRORS.sample_name, {"kind": Kind.SLOW_QUERY}) == 4
    assert registry.get_sample_value(catalog.ANALYZER_RULE_ERRORS.sample_name, {"kind": Kind.CIRCUIT_OPEN}) is None


def test_another_window_keeps_its_since_across_calls():
    clock = Clock()
    store = Store(StoreConfig(bucket_seconds=1), clock=clock)
    store.set_breaker_state("shop", "payments", "open")
    store.add_breaker_calls("shop", "payments", "rejected", 10)
    findings = BottleneckFindings(store, window_s=12, baseline_s=120)
    first = findings.for_window(60)
    clock.t += 5
    store.add_breaker_calls("shop", "payments", "rejected", 10)
    assert findings.for_window(60)[0]["since"] == first[0]["since"]  # remembered, not "now"
