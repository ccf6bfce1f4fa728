"""Route detail page: log-axis histogram, fast-vs-slow breakdown, kept traces and waterfall."""

from __future__ import annotations

from chokepoint.dashboards.components import NO_DATA
from chokepoint.dashboards.pages import route


def test_histogram_has_log_axis_and_breakdown_compares_slow(api, texts):
    status, options, hist, breakdown, rows, _trace_options = route.refresh(api, "shop|/checkout")
    assert hist.layout.xaxis.type == "log"
    assert sum(hist.data[0].y) > 0
    pool_wait = next(t for t in breakdown.data if t.name == "pool_wait")
    assert list(pool_wait.y) == ["all requests", "slow requests"]
    assert pool_wait.x[1] > pool_wait.x[0] * 5  # slow requests wait far longer for a connection
    assert len(rows) == 6 and rows[0]["error"] == "yes"
    assert "kept traces" in texts(status)
    assert {"label": "shop /checkout", "value": "shop|/checkout"} in options


def test_waterfall_bars_start_at_span_offsets(api):
    trace_id = route.refresh(api, "shop|/checkout")[5][1]["value"]
    fig = route.refresh_waterfall(api, "shop|/checkout", trace_id)
    bar = fig.data[0]
    assert bar.orientation == "h" and len(bar.y) == 4
    assert bar.base[0] == 0.0 and bar.base[2] > bar.base[1]  # the query starts after the pool wait
    assert "pool wait" in bar.y[1]


def test_no_route_selected_and_empty_collector(api, empty, texts):
    status, options, *_ = route.refresh(api, None)
    assert "Pick a route" in texts(status) and len(options) == 12
    status, options, hist, *_ = route.refresh(empty, "shop|/checkout")
    assert NO_DATA in texts(status)
    assert hist.layout.annotations[0].text == NO_DATA
    assert route.refresh_waterfall(api, "shop|/checkout", None).layout.annotations[0].text == "Pick a kept trace"


def test_layout_preselects_the_route_from_the_query_string():
    layout = route.layout(service="shop", route="/cart")
    picker = next(c for c in layout.children if getattr(c, "id", None) == route.ROUTE_PICKER)
    assert picker.value == "shop|/cart"
