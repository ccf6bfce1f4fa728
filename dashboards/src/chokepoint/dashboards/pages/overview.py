"""Overview: the likely bottleneck, ranked findings, RED table per route, latency over time.

- blind spots (``/health``'s ``blind_spots``), above everything else when there are any: a
  library an agent reports in use whose integration produced nothing, with the switch to
  try — what it hides is not ruled out as the cause;
- banner: the top finding's kind, target, summary, evidence and fix;
- ranked findings list (``/bottlenecks``);
- RED table per route (``/endpoints``): rps, errors, p50/p90/p99/p99.9, sortable, each
  route linking to the route detail page;
- latency heatmap (``/heatmap``) and percentile lines (``/timeseries``) of the selected
  route (default: the route with the highest p99).
"""

from __future__ import annotations

from urllib.parse import urlencode

import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html

from chokepoint.collector.evidence import evidence_items
from chokepoint.semconv.catalog import FINDINGS_BY_KIND

from ..client import ApiClient
from ..components import (
    NO_DATA,
    SEVERITY_COLOURS,
    empty_figure,
    empty_state,
    error_banner,
    keep_choice,
    line_traces,
    live_page,
    ms,
    pct,
    table,
    time_figure,
    to_epoch_ms,
    tolerant,
    two_columns,
)

PATH = "/"
NAME = "Overview"

INTERVAL = "overview-interval"
STATUS = "overview-status"
BOTTLENECK_BANNER = "overview-bottleneck"
BLIND_SPOTS = "overview-blind-spots"
FINDINGS_LIST = "overview-findings"
RED_TABLE = "overview-red-table"
RED_TABLE_BOX = "overview-red-box"
ROUTE_PICKER = "overview-route"
HEATMAP = "overview-heatmap"
PERCENTILES = "overview-percentiles"

RED_COLUMNS = [
    ("service", "service", "text"),
    ("route", "route", "markdown"),
    ("rps", "rps", "numeric"),
    ("error_pct", "errors %", "numeric"),
    ("p50_ms", "p50 ms", "numeric"),
    ("p90_ms", "p90 ms", "numeric"),
    ("p99_ms", "p99 ms", "numeric"),
    ("p999_ms", "p99.9 ms", "numeric"),
    ("count", "count", "numeric"),
]
PERCENTILE_METRICS = (("latency_p50_ms", "p50"), ("latency_p90_ms", "p90"), ("latency_p99_ms", "p99"), ("latency_p999_ms", "p99.9"))


def route_value(service: str, route: str) -> str:
    return f"{service}|{route}"


def route_options(endpoints: list[dict]) -> list[dict]:
    """Dropdown options, one per ``(service, route)``, valued ``"service|route"``."""
    return [{"label": f"{e['service']} {e['route']}", "value": route_value(e["service"], e["route"])} for e in endpoints]


def route_link(service: str, route: str) -> str:
    return "/route?" + urlencode({"service": service, "route": route})


def finding_title(kind: str) -> str:
    known = FINDINGS_BY_KIND.get(kind)
    return known.title if known else kind


def bottleneck_banner(findings: list[dict]) -> html.Div:
    if not findings:
        return html.Div(
            [html.H3("No bottleneck found"), html.P("The analyzer has no finding for this window (or no data has arrived yet).")],
            className="bottleneck-none",
        )
    top = findings[0]
    colour = SEVERITY_COLOURS.get(top.get("severity", ""), "#455a64")
    evidence = top.get("evidence") or {}
    return html.Div(
        [
            html.Div(
                "Likely bottleneck" if top.get("severity") in ("warning", "critical") else "No bottleneck above info — the top finding",
                style={"fontSize": "12px", "textTransform": "uppercase", "opacity": 0.8},
            ),
            html.H2(
                [
                    html.Span(finding_title(top.get("kind", "")), className="bottleneck-kind"),
                    " — ",
                    html.Code(top.get("target", ""), className="bottleneck-target"),
                ],
                style={"margin": "4px 0"},
            ),
            html.P(top.get("summary", ""), className="bottleneck-summary"),
            html.Ul([html.Li(f"{k}: {v}") for k, v in evidence_items(evidence)], className="bottleneck-evidence"),
            html.P([html.B("Fix: "), top.get("recommendation", "")], className="bottleneck-fix"),
            html.Small(
                f"kind={top.get('kind')} service={top.get('service')} score={top.get('score')} severity={top.get('severity')} since {top.get('since', '')}"
            ),
        ],
        style={"borderLeft": f"8px solid {colour}", "background": "#fafafa", "padding": "8px 16px", "margin": "8px 0"},
    )


def blind_spots_banner(spots: list[dict]) -> html.Div:
    """A warning per blind spot; nothing at all without any."""
    if not spots:
        return html.Div()
    return html.Div(
        [
            html.Div("Blind spots", style={"fontSize": "12px", "textTransform": "uppercase", "opacity": 0.8}),
            html.P("The agent reports it cannot see these; a bottleneck behind them would not show here, so they are not ruled out as the cause."),
            html.Ul(
                [
                    html.Li(
                        [
                            html.B(f"{s.get('library', '?')} {s.get('version', '')}".strip()),
                            f" ({s.get('service', '?')}): in use, no {s.get('what', 'signals')} — try ",
                            html.Code(s.get("try", "")),
                        ]
                    )
                    for s in spots
                ]
            ),
        ],
        className="blind-spots",
        style={"borderLeft": "8px solid #f9a825", "background": "#fff8e1", "padding": "8px 16px", "margin": "8px 0"},
    )


@tolerant(lambda msg: html.Div())  # the status line already says the collector is unreachable
def refresh_blind_spots(client: ApiClient) -> html.Div:
    return blind_spots_banner(client.health().get("blind_spots") or [])


def findings_list(findings: list[dict]) -> html.Div:
    if not findings:
        return empty_state("No findings.")
    return html.Ol(
        [
            html.Li(
                [
                    html.B(finding_title(f.get("kind", ""))),
                    f" ({f.get('kind')}) on {f.get('target', '')} — score {f.get('score', 0):.2f}, {f.get('severity', '')}: {f.get('summary', '')}",
                ],
                style={"color": SEVERITY_COLOURS.get(f.get("severity", ""), "inherit")},
            )
            for f in findings
        ]
    )


def red_rows(endpoints: list[dict]) -> list[dict]:
    rows = []
    for e in endpoints:
        rows.append(
            {
                "service": e.get("service", ""),
                "route": f"[{e.get('route', '')}]({route_link(e.get('service', ''), e.get('route', ''))})",
                "rps": round(e.get("rps") or 0.0, 2),
                "error_pct": pct(e.get("error_rate")),
                "p50_ms": ms(e.get("p50_ms")),
                "p90_ms": ms(e.get("p90_ms")),
                "p99_ms": ms(e.get("p99_ms")),
                "p999_ms": ms(e.get("p999_ms")),
                "count": e.get("count", 0),
            }
        )
    rows.sort(key=lambda r: r["p99_ms"], reverse=True)
    return rows


@tolerant(lambda msg: (error_banner(msg), bottleneck_banner([]), empty_state(msg), [], [], None))
def refresh(client: ApiClient, window_s: float = 60):
    """(status, banner, findings, RED rows, route options, default route) for one tick."""
    findings = client.bottlenecks(window_s=window_s)
    endpoints = client.endpoints(window_s=window_s)
    rows = red_rows(endpoints)
    options = route_options(sorted(endpoints, key=lambda e: e.get("p99_ms") or 0.0, reverse=True))
    status = empty_state(NO_DATA) if not endpoints else html.Div(f"{len(endpoints)} routes, {len(findings)} findings", className="status-ok")
    return status, bottleneck_banner(findings), findings_list(findings), rows, options, options[0]["value"] if options else None


def heatmap_figure(heat: dict, route: str) -> go.Figure:
    title = f"Latency heatmap — {route}"
    if not heat.get("times") or not heat.get("le_ms"):
        return empty_figure(title=title)
    trace = {
        "type": "heatmap",
        "x": to_epoch_ms(heat["times"]),
        "y": [f"{le:.0f}" if le >= 100 else f"{le:.3g}" for le in heat["le_ms"]],
        "z": [list(row) for row in zip(*heat["counts"], strict=True)] if heat["counts"] else [],
        "colorscale": "Viridis",
        "colorbar": {"title": {"text": "requests"}},
    }
    return time_figure([trace], title, "latency ≤ ms", yaxis={"title": {"text": "latency ≤ ms"}, "type": "category"})


@tolerant(lambda msg: (empty_figure(msg, "Latency heatmap"), empty_figure(msg, "Latency percentiles")))
def refresh_route_charts(client: ApiClient, selected: str | None, window_s: float = 3600):
    """(heatmap, percentile lines) for ``selected`` = ``"service|route"``."""
    if not selected or "|" not in selected:
        return empty_figure(title="Latency heatmap"), empty_figure(title="Latency percentiles")
    service, route = selected.split("|", 1)
    heat = client.heatmap(service, route, window_s=window_s)
    traces = []
    for metric, label in PERCENTILE_METRICS:
        traces += line_traces(client.timeseries(metric, service=service, target=route, window_s=window_s), [], suffix=label)
    lines = time_figure(traces, f"Latency percentiles — {route}", "ms") if traces else empty_figure(title="Latency percentiles")
    return heatmap_figure(heat, route), lines


def layout(**_query) -> html.Div:
    return live_page(
        INTERVAL,
        STATUS,
        html.Div(id=BLIND_SPOTS),
        html.Div(id=BOTTLENECK_BANNER),
        html.H3("Findings (ranked)"),
        html.Div(id=FINDINGS_LIST),
        html.H3("Latency over time"),
        dcc.Dropdown(id=ROUTE_PICKER, placeholder="route", clearable=False, style={"maxWidth": "600px"}),
        two_columns(dcc.Graph(id=HEATMAP), dcc.Graph(id=PERCENTILES)),
        html.H3("Routes — rate, errors, duration"),
        table(RED_TABLE, RED_COLUMNS, [], row_key=("service", "route"), page_size=20),
    )


def register_callbacks(app, client: ApiClient) -> None:
    @app.callback(
        Output(STATUS, "children"),
        Output(BOTTLENECK_BANNER, "children"),
        Output(FINDINGS_LIST, "children"),
        Output(RED_TABLE, "rowData"),
        Output(ROUTE_PICKER, "options"),
        Output(ROUTE_PICKER, "value"),
        Input(INTERVAL, "n_intervals"),
        State(ROUTE_PICKER, "value"),
    )
    def _tick(_n, selected):
        status, banner, findings, rows, options, default = refresh(client)
        return status, banner, findings, rows, options, keep_choice(selected, options, default)

    @app.callback(Output(BLIND_SPOTS, "children"), Input(INTERVAL, "n_intervals"))
    def _blind_spots(_n):
        return refresh_blind_spots(client)

    @app.callback(Output(HEATMAP, "figure"), Output(PERCENTILES, "figure"), Input(ROUTE_PICKER, "value"), Input(INTERVAL, "n_intervals"))
    def _charts(selected, _n):
        return refresh_route_charts(client, selected)
