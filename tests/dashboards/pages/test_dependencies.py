"""Dependencies page: per-dependency table, breaker cards and state timeline."""

from __future__ import annotations

from chokepoint.dashboards.components import NO_DATA
from chokepoint.dashboards.pages import dependencies


def test_dependencies_and_breakers(api, texts):
    _status, rows, p99, cards, timeline = dependencies.refresh(api, history_s=600)
    assert rows[0]["target"] == "payments.internal" and rows[0]["error_pct"] == 35.0
    text = texts(cards)
    assert "payments" in text and "OPEN" in text and "rejected 14" in text and "error 35.0 %" in text
    assert list(timeline.layout.yaxis.ticktext) == ["closed", "half_open", "open"]
    payments = next(t for t in timeline.data if "payments" in t.name)
    assert set(payments.y) <= {0, 1, 2} and 2 in set(payments.y)
    assert timeline.data[0].line.shape == "hv"
    assert len(p99.data) == 3


def test_empty_and_unreachable(empty, unreachable, texts):
    status, _rows, _p99, cards, _timeline = dependencies.refresh(empty)
    assert NO_DATA in texts(status) and "No circuit breakers" in texts(cards)
    status, *_ = dependencies.refresh(unreachable)
    assert "collector unreachable" in texts(status)
