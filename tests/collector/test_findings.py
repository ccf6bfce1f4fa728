"""The service's analyzer runner: kept findings for /metrics, fresh ones per window for the API."""

from __future__ import annotations

from chokepoint.collector.findings import BottleneckFindings
from chokepoint.collector.store import Store


def open_breaker_store() -> Store:
    store = Store()
    store.set_breaker_state("shop", "payments", "open")
    store.add_breaker_calls("shop", "payments", "rejected", 20)
    return store


def test_refresh_keeps_findings_and_windows_run_on_demand():
    findings = BottleneckFindings(open_breaker_store())
    assert findings.latest() == []
    refreshed = findings.refresh()
    assert [(f["kind"], f["target"]) for f in refreshed] == [("circuit_open", "payments")]
    assert findings.latest() == refreshed
    assert [(f["kind"], f["target"]) for f in findings.for_window(300)] == [("circuit_open", "payments")]
    assert findings.for_window(findings.default_window_s)[0]["since"] == refreshed[0]["since"]


def test_healthy_store_has_no_findings():
    findings = BottleneckFindings(Store())
    assert findings.refresh() == [] and findings.for_window(60) == []
