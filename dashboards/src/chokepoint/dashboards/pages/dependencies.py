"""Dependencies (``/dependencies``): outbound calls and circuit breakers.

- per dependency (``/dependencies``): kind, target, rps, errors, p50/p99, and p99 over time;
- breakers Hystrix-style (``/breakers``): one card per breaker with state, error %,
  calls and rejected; and the state timeline (``/timeseries?metric=breaker_state``).
"""

from __future__ import annotations

from dash import dcc, html

from chokepoint.semconv.catalog import BREAKER_STATES

from ..client import ApiClient
from ..components import STATE_COLOURS, empty_figure, empty_state, error_banner, lines_figure, live_page, ms, on_tick, pct, table, tolerant

PATH = "/dependencies"
NAME = "Dependencies"

INTERVAL = "dependencies-interval"
STATUS = "dependencies-status"
DEPENDENCIES_TABLE = "dependencies-table"
DEPENDENCY_P99 = "dependencies-p99"
BREAKER_CARDS = "dependencies-breakers"
BREAKER_TIMELINE = "dependencies-breaker-timeline"

DEPENDENCY_COLUMNS = [
    ("service", "service", "text"),
    ("kind", "kind", "text"),
    ("target", "target", "text"),
    ("rps", "rps", "numeric"),
    ("error_pct", "errors %", "numeric"),
    ("p50_ms", "p50 ms", "numeric"),
    ("p99_ms", "p99 ms", "numeric"),
    ("count", "count", "numeric"),
]


def dependency_rows(deps: list[dict]) -> list[dict]:
    return [
        {
            "service": d.get("service", ""),
            "kind": d.get("kind", ""),
            "target": d.get("target", ""),
            "rps": round(d.get("rps") or 0.0, 2),
            "error_pct": pct(d.get("error_rate")),
            "p50_ms": ms(d.get("p50_ms")),
            "p99_ms": ms(d.get("p99_ms")),
            "count": d.get("count", 0),
        }
        for d in sorted(deps, key=lambda d: d.get("p99_ms") or 0.0, reverse=True)
    ]


def breaker_card(b: dict) -> html.Div:
    state = b.get("state", "closed")
    calls = b.get("calls") or {}
    return html.Div(
        [
            html.Div(b.get("name", ""), style={"fontWeight": "bold", "fontSize": "16px"}),
            html.Div(
                state.replace("_", "-").upper(),
                className=f"breaker-state breaker-{state}",
                style={"color": STATE_COLOURS.get(state, "#455a64"), "fontWeight": "bold", "fontSize": "20px"},
            ),
            html.Div(f"error {pct(b.get('error_rate'))} %"),
            html.Div(f"rejected {b.get('rejected', 0)}"),
            html.Div(f"calls ok {calls.get('success', 0)} / failed {calls.get('failure', 0)}"),
            html.Div(f"transitions {b.get('transitions', 0)}", style={"color": "#666"}),
            html.Small(b.get("service", "")),
        ],
        className="breaker-card",
        style={"border": f"2px solid {STATE_COLOURS.get(state, '#455a64')}", "borderRadius": "6px", "padding": "8px 12px", "minWidth": "170px"},
    )


@tolerant(lambda msg: (error_banner(msg), [], empty_figure(msg), empty_state(msg), empty_figure(msg)))
def refresh(client: ApiClient, window_s: float = 60, history_s: float = 3600):
    """(status, dependency rows, p99 figure, breaker cards, breaker timeline) for one tick."""
    deps = client.dependencies(window_s=window_s)
    breakers = client.breakers()
    p99 = client.timeseries("dependency_p99_ms", window_s=history_s)
    states = client.timeseries("breaker_state", window_s=history_s)
    state_axis = {
        "title": {"text": "state"},
        "tickvals": list(range(len(BREAKER_STATES))),
        "ticktext": list(BREAKER_STATES),
        "range": [-0.2, len(BREAKER_STATES) - 0.8],
    }
    timeline = lines_figure(states, "Breaker state (0 closed, 1 half-open, 2 open)", "state", ("service", "breaker"), step=True, yaxis=state_axis)
    cards = (
        html.Div([breaker_card(b) for b in breakers], style={"display": "flex", "gap": "8px", "flexWrap": "wrap"})
        if breakers
        else empty_state("No circuit breakers reported.")
    )
    status = empty_state() if not deps and not breakers else html.Div(f"{len(deps)} dependencies, {len(breakers)} breakers", className="status-ok")
    return (
        status,
        dependency_rows(deps),
        lines_figure(p99, "Dependency latency p99 (log)", "ms", ("kind", "target"), yaxis={"title": {"text": "ms"}, "type": "log"}),
        cards,
        timeline,
    )


def layout(**_query) -> html.Div:
    return live_page(
        INTERVAL,
        STATUS,
        html.H3("Outbound dependencies"),
        table(DEPENDENCIES_TABLE, DEPENDENCY_COLUMNS, [], row_key=("service", "kind", "target")),
        dcc.Graph(id=DEPENDENCY_P99),
        html.H3("Circuit breakers"),
        html.Div(id=BREAKER_CARDS),
        dcc.Graph(id=BREAKER_TIMELINE),
    )


def register_callbacks(app, client: ApiClient) -> None:
    outputs = [(STATUS, "children"), (DEPENDENCIES_TABLE, "rowData"), (DEPENDENCY_P99, "figure"), (BREAKER_CARDS, "children"), (BREAKER_TIMELINE, "figure")]
    on_tick(app, INTERVAL, outputs, lambda: refresh(client))
