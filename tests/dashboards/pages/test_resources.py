"""Resources page: pool saturation over time and runtime charts."""

from __future__ import annotations

from chokepoint.dashboards.components import NO_DATA
from chokepoint.dashboards.pages import resources


def test_pool_rows_and_used_vs_max(api):
    _status, rows, used, pending, wait, cpu, rss, gc, lag = resources.refresh(api, window_s=600)
    db = next(r for r in rows if r["kind"] == "db")
    assert db["saturation_pct"] == 100.0 and db["pending"] == 14 and db["wait_p99_ms"] == 410.0
    names = [t.name for t in used.data]
    assert "shop db sqlalchemy:postgresql used" in names and "shop db sqlalchemy:postgresql max" in names
    assert max(next(t for t in used.data if t.name.endswith("postgresql max")).y) == 10
    for fig in (pending, wait, cpu, rss, gc, lag):
        assert fig.data and len(fig.data[0].x) == 60
    assert [t.name for t in cpu.data] == ["shop used", "shop waiting for a CPU"]
    assert cpu.data[1].line.dash == "dot" and max(cpu.data[1].y) > 0


def test_empty_and_unreachable(empty, unreachable, texts):
    status, rows, used, *_ = resources.refresh(empty)
    assert NO_DATA in texts(status) and rows == []
    assert used.layout.annotations[0].text == NO_DATA
    status, *_ = resources.refresh(unreachable)
    assert "collector unreachable" in texts(status)
