"""Route detail (``/route?service=&route=``): where one route's time goes.

- latency histogram with a log x axis (``/histogram``);
- time breakdown of an average request vs a slow request, per component
  (self, db, pool_wait, http, kafka, queue; ``/breakdown``);
- the kept slow/errored traces of the route (``/traces?route=``) and a waterfall of the
  selected one.
"""

from __future__ import annotations

import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html

from ..client import ApiClient
from ..components import empty_figure, empty_state, error_banner, keep_choice, live_page, table, tolerant, two_columns
from .overview import route_options, route_value

PATH = "/route"
NAME = "Route detail"

INTERVAL = "route-interval"
STATUS = "route-status"
ROUTE_PICKER = "route-picker"
HISTOGRAM = "route-histogram"
BREAKDOWN = "route-breakdown"
TRACES_TABLE = "route-traces"
TRACE_PICKER = "route-trace-picker"
WATERFALL = "route-waterfall"

TRACE_COLUMNS = [
    ("trace_id", "trace", "text"),
    ("duration_ms", "duration ms", "numeric"),
    ("error", "error", "text"),
    ("keep_reason", "kept because", "text"),
    ("spans", "spans", "numeric"),
]


def histogram_figure(buckets: list[dict], route: str) -> go.Figure:
    title = f"Latency distribution — {route}"
    if not buckets or not any(b.get("count") for b in buckets):
        return empty_figure(title=title)
    # each bar spans its bucket (previous bound .. le), so widths look even on the log axis
    uppers = [b["le_ms"] for b in buckets]
    lowers = [uppers[0] / 1.5, *uppers[:-1]]
    fig = go.Figure(
        go.Bar(
            x=[(lo + hi) / 2 for lo, hi in zip(lowers, uppers, strict=True)],
            width=[hi - lo for lo, hi in zip(lowers, uppers, strict=True)],
            y=[b["count"] for b in buckets],
            customdata=uppers,
            hovertemplate="≤ %{customdata} ms: %{y} requests<extra></extra>",
            name="requests",
            marker_color="#1565c0",
        )
    )
    fig.update_layout(
        title=title, xaxis_title="latency ≤ ms (log)", yaxis_title="requests", height=300, margin={"l": 50, "r": 10, "t": 40, "b": 40}, bargap=0.05
    )
    fig.update_xaxes(type="log")
    return fig


def breakdown_figure(breakdown: dict, route: str) -> go.Figure:
    title = f"Time per request — all vs slow — {route}"
    all_ms, slow_ms = breakdown.get("all") or {}, breakdown.get("slow") or {}
    if not all_ms and not slow_ms:
        return empty_figure(title=title)
    components = list(dict.fromkeys([*all_ms, *slow_ms]))
    fig = go.Figure()
    for component in components:
        fig.add_trace(go.Bar(y=["all requests", "slow requests"], x=[all_ms.get(component, 0.0), slow_ms.get(component, 0.0)], name=component, orientation="h"))
    fig.update_layout(
        title=f"{title} ({breakdown.get('requests', 0)} requests, {breakdown.get('slow_requests', 0)} slow)",
        barmode="stack",
        xaxis_title="ms per request",
        height=300,
        margin={"l": 110, "r": 10, "t": 40, "b": 40},
    )
    return fig


def waterfall_figure(trace: dict | None) -> go.Figure:
    if not trace or not trace.get("spans"):
        return empty_figure("Pick a kept trace", "Trace waterfall")
    spans = sorted(trace["spans"], key=lambda s: s.get("start_offset_ms", 0.0))
    labels = [f"{i:02d} {s.get('name', '')}" for i, s in enumerate(spans)]
    colours = ["#c62828" if s.get("status") == "ERROR" else "#1565c0" for s in spans]
    fig = go.Figure(
        go.Bar(
            y=labels,
            x=[s.get("duration_ms", 0.0) for s in spans],
            base=[s.get("start_offset_ms", 0.0) for s in spans],
            orientation="h",
            marker_color=colours,
            hovertext=[f"{s.get('kind', '')} {s.get('duration_ms', 0)} ms {s.get('attributes', {})}" for s in spans],
        )
    )
    fig.update_layout(
        title=f"Trace {trace.get('trace_id', '')[:16]} — {trace.get('duration_ms', 0)} ms ({trace.get('keep_reason', '')})",
        xaxis_title="ms since request start",
        height=max(220, 40 + 28 * len(spans)),
        margin={"l": 220, "r": 10, "t": 40, "b": 40},
    )
    fig.update_yaxes(autorange="reversed")
    return fig


@tolerant(lambda msg: (error_banner(msg), [], empty_figure(msg), empty_figure(msg), [], []))
def refresh(client: ApiClient, selected: str | None, window_s: float = 60):
    """(status, route options, histogram, breakdown, trace rows, trace options) for ``"service|route"``."""
    endpoints = client.endpoints(window_s=window_s)
    options = route_options(endpoints)
    if not selected or "|" not in selected:
        status = empty_state() if not endpoints else empty_state("Pick a route.")
        return status, options, empty_figure(title="Latency distribution"), empty_figure(title="Time breakdown"), [], []
    service, route = selected.split("|", 1)
    buckets = client.histogram(service, route, window_s=window_s)
    breakdown = client.breakdown(service, route, window_s=window_s)
    traces = client.traces(route=route, limit=50)
    rows = [
        {
            "trace_id": t.get("trace_id", ""),
            "duration_ms": t.get("duration_ms", 0.0),
            "error": "yes" if t.get("error") else "",
            "keep_reason": t.get("keep_reason", ""),
            "spans": len(t.get("spans") or []),
        }
        for t in traces
    ]
    trace_options = [{"label": f"{r['trace_id'][:16]} {r['duration_ms']} ms", "value": r["trace_id"]} for r in rows]
    status = html.Div(f"{service} {route}: {len(traces)} kept traces", className="status-ok") if buckets else empty_state()
    return status, options, histogram_figure(buckets, route), breakdown_figure(breakdown, route), rows, trace_options


@tolerant(lambda msg: empty_figure(msg, "Trace waterfall"))
def refresh_waterfall(client: ApiClient, selected: str | None, trace_id: str | None) -> go.Figure:
    if not selected or "|" not in selected or not trace_id:
        return waterfall_figure(None)
    traces = client.traces(route=selected.split("|", 1)[1], limit=50)
    return waterfall_figure(next((t for t in traces if t.get("trace_id") == trace_id), None))


def layout(service: str | None = None, route: str | None = None, **_query) -> html.Div:
    selected = route_value(service, route) if service and route else None
    picker = dcc.Dropdown(
        id=ROUTE_PICKER,
        value=selected,
        options=route_options([{"service": service, "route": route}]) if selected else [],
        placeholder="route",
        clearable=False,
        style={"maxWidth": "600px"},
    )
    return live_page(
        INTERVAL,
        STATUS,
        two_columns(dcc.Graph(id=HISTOGRAM), dcc.Graph(id=BREAKDOWN)),
        html.H3("Kept traces (slow, errored, sampled)"),
        table(TRACES_TABLE, TRACE_COLUMNS, [], row_key=("trace_id",), page_size=10),
        dcc.Dropdown(id=TRACE_PICKER, placeholder="trace", style={"maxWidth": "600px", "marginTop": "8px"}),
        dcc.Graph(id=WATERFALL),
        above_status=[picker],
    )


def register_callbacks(app, client: ApiClient) -> None:
    @app.callback(
        Output(STATUS, "children"),
        Output(ROUTE_PICKER, "options"),
        Output(HISTOGRAM, "figure"),
        Output(BREAKDOWN, "figure"),
        Output(TRACES_TABLE, "rowData"),
        Output(TRACE_PICKER, "options"),
        Output(TRACE_PICKER, "value"),
        Input(INTERVAL, "n_intervals"),
        Input(ROUTE_PICKER, "value"),
        State(TRACE_PICKER, "value"),
    )
    def _tick(_n, selected, trace_id):
        status, options, hist, breakdown, rows, trace_options = refresh(client, selected)
        return status, options, hist, breakdown, rows, trace_options, keep_choice(trace_id, trace_options, trace_options[0]["value"] if trace_options else None)

    @app.callback(Output(WATERFALL, "figure"), Input(TRACE_PICKER, "value"), State(ROUTE_PICKER, "value"))
    def _waterfall(trace_id, selected):
        return refresh_waterfall(client, selected, trace_id)
