"""Overview page: bottleneck banner, ranked findings, RED table, latency charts."""

from __future__ import annotations

from chokepoint.dashboards.client import ApiClient
from chokepoint.dashboards.components import NO_DATA
from chokepoint.dashboards.pages import overview
from tests.synthetic_collector import SyntheticCollector


def test_banner_names_the_top_finding_with_evidence_and_fix(api, texts):
    status, banner, findings, _rows, _options, _default = overview.refresh(api)
    text = texts(banner)
    assert "DB connection pool exhausted" in text  # catalog title of db_pool_saturation
    assert "sqlalchemy:postgresql" in text
    assert "wait p99: 410 ms" in text  # evidence formatted for people
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


def test_blind_spots_are_a_visible_warning_and_nothing_without_any(api, texts, tmp_path):
    spot = {"service": "shop", "library": "SQLAlchemy", "version": "2.0.23", "what": "statement spans", "try": "CHOKEPOINT_SQLALCHEMY_SPANS=listeners"}
    with SyntheticCollector(tmp_path, routes=3, blind_spots=[spot]) as collector:
        banner = overview.refresh_blind_spots(ApiClient(collector.url, timeout_s=2.0))
    text = texts(banner)
    assert "Blind spots" in text and "not ruled out as the cause" in text
    assert "SQLAlchemy 2.0.23  (shop): in use, no statement spans — try  CHOKEPOINT_SQLALCHEMY_SPANS=listeners" in text  # texts() joins components with a space
    assert banner.className == "blind-spots"
    assert texts(overview.refresh_blind_spots(api)) == ""  # the synthetic shop has none


def test_blind_spots_of_an_unreachable_collector_are_left_to_the_status_line(unreachable, texts):
    assert texts(overview.refresh_blind_spots(unreachable)) == ""


def test_an_info_top_finding_is_no_likely_bottleneck(texts):
    info = {"kind": "cacheable_reads", "service": "blog", "target": "t", "score": 0.3, "severity": "info", "summary": "s", "evidence": {"repeated_ratio": 0.95}}
    text = texts(overview.bottleneck_banner([info]))
    assert "Likely bottleneck" not in text and "No bottleneck above info" in text and "repeated ratio: 95%" in text
