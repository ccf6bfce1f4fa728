"""Messaging page: consumer lag per partition with status, lag over time."""

from __future__ import annotations

from chokepoint.dashboards.components import STATUS_COLOURS
from chokepoint.dashboards.pages import messaging


def test_worst_partition_first_with_status(api, texts):
    status, rows, lag, time_lag = messaging.refresh(api, window_s=600)
    assert [r["status"] for r in rows] == ["STOP", "WARN", "OK"]  # partition 0 never commits, 1 falls behind
    assert rows[0]["lag"] == 1000 * 59 + 3 and rows[0]["log_end_offset"] - rows[0]["committed_offset"] == rows[0]["lag"]
    assert "worst: order-workers/orders/0 STOP" in texts(status)
    assert [t.name for t in lag.data] == ["order-workers orders 0", "order-workers orders 1", "order-workers orders 2"]
    assert lag.data[0].y[-1] > lag.data[0].y[0]  # growing lag
    assert time_lag.data


def test_status_colours_cover_every_status():
    conditions = {c["condition"]: c["style"]["backgroundColor"] for c in messaging.STATUS_STYLE["styleConditions"]}
    assert conditions == {f'params.value === "{s}"': STATUS_COLOURS[s] for s in ("OK", "WARN", "STALL", "STOP", "ERR")}
    grid = messaging.layout()[messaging.LAG_TABLE]
    status = next(c for c in grid.columnDefs if c["field"] == "status")
    assert status["cellStyle"] is messaging.STATUS_STYLE


def test_empty_and_unreachable(empty, unreachable, texts):
    status, rows, *_ = messaging.refresh(empty)
    assert "No consumer groups reported" in texts(status) and rows == []
    status, *_ = messaging.refresh(unreachable)
    assert "collector unreachable" in texts(status)
