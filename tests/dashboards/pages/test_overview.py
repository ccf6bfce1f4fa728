"""Overview page: bottleneck banner, ranked findings, RED table, latency charts."""

from __future__ import annotations

from chokepoint.dashboards.components import NO_DATA
from chokepoint.dashboards.pages import overview


def test_banner_names_the_top_finding_with_evidence_and_fix(api, texts):
    status, banner, findings, _rows, _options, _default = overview.refresh(api)
    text = texts(banner)
    assert "DB connection pool exhausted" in text  # catalog title of db_pool_saturation
    assert "sqlalchemy:postgresql" in text
    assert "wait_p99_ms: 410" in text
    assert "Raise the pool size" in text
    assert "Circuit breaker open" in texts(findings)
    assert "12 routes, 3 findings" in texts(status)


def test_red_rows_are_sorted_by_p99_and_link_to_route_detail(api):
    _, _, _, rows, options, default = overview.refresh(api)
    assert len(rows) == 12
    assert rows[0]["route"] == "[/checkout](/route?service=shop&route=%2Fcheckout)"
    assert rows[0]["error_pct"] == 4.0 and rows[0]["p999_ms"] > rows[0]["p99_ms"] > rows[0]["p90_ms"] > rows[0]["p50_ms"]
    assert [r["p99_ms"] for r in rows] == sorted((r["p99_ms"] for r in rows), reverse=True)
    assert default == "shop|/checkout" == options[0]["value"]


def test_route_charts_show_heatmap_and_four_percentiles(api):
    heat, lines = overview.refresh_route_charts(api, "shop|/checkout", window_s=600)
    assert heat.data[0].type == "heatmap"
    assert len(heat.data[0].x) == 60 and len(heat.data[0].z) == len(heat.data[0].y)
    assert [t.name for t in lines.data] == ["p50", "p90", "p99", "p99.9"]
    assert max(lines.data[2].y) > max(lines.data[0].y)


def test_empty_collector_says_no_data_yet(empty, texts):
    status, banner, _findings, rows, _options, default = overview.refresh(empty)
    assert NO_DATA in texts(status)
    assert "No bottleneck found" in texts(banner)
    assert rows == [] and default is None
    heat, _lines = overview.refresh_route_charts(empty, default)
    assert heat.layout.annotations[0].text == NO_DATA


def test_unreachable_collector_shows_error_banner(unreachable, texts):
    status, *_ = overview.refresh(unreachable)
    assert "collector unreachable" in texts(status)
    heat, _ = overview.refresh_route_charts(unreachable, "shop|/checkout")
    assert "collector unreachable" in heat.layout.annotations[0].text
