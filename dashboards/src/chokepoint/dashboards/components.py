"""Small view helpers shared by the Dash pages: empty states, banners, figures, tables.

Tables are AG Grid (``dash_ag_grid.AgGrid``): sortable columns, numbers right-aligned,
markdown cells for links, paginated, rows keyed so a live refresh updates them in place.

Pure functions from API payloads (see :mod:`chokepoint.dashboards.client`) to Dash
components and Plotly figures, so pages stay short and everything here is testable
without a browser.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterable

import dash_ag_grid as dag
import plotly.graph_objects as go
from dash import Input, Output, dcc, html

from .client import CollectorUnavailable

log = logging.getLogger(__name__)

REFRESH_MS = 2000  # live pages poll the collector every 2 s
NO_DATA = "No data yet — is the app instrumented?"
UNREACHABLE = "Collector unreachable"

STATUS_COLOURS = {"OK": "#2e7d32", "WARN": "#f9a825", "STALL": "#ef6c00", "STOP": "#c62828", "ERR": "#6a1b9a"}
STATE_COLOURS = {"closed": "#2e7d32", "half_open": "#f9a825", "open": "#c62828"}
SEVERITY_COLOURS = {"info": "#1565c0", "warning": "#ef6c00", "critical": "#c62828"}


MALFORMED_ANSWER = (KeyError, TypeError, ValueError, AttributeError, IndexError)


def tolerant(on_error: Callable[[str], object]):
    """Decorate a page's refresh: an unreachable collector or a malformed answer becomes
    ``on_error(message)`` (the page's error outputs) instead of a failed callback."""

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except CollectorUnavailable as exc:
                return on_error(str(exc))
            except MALFORMED_ANSWER as exc:
                log.warning("unexpected answer from the collector in %s", fn.__qualname__, exc_info=True)
                return on_error(f"unexpected answer from the collector ({type(exc).__name__}: {exc})")

        return inner

    return wrap


def live_page(interval_id: str, status_id: str, *children, above_status: Iterable = ()) -> html.Div:
    """A page's layout: its refresh timer (every ``REFRESH_MS``), ``above_status``, the status line, then ``children``."""
    return html.Div([dcc.Interval(id=interval_id, interval=REFRESH_MS), *above_status, html.Div(id=status_id), *children])


def on_tick(app, interval_id: str, outputs: Iterable[tuple[str, str]], refresh: Callable[[], tuple]) -> None:
    """Register a callback filling ``outputs`` (``(component id, property)``) from ``refresh()`` at every tick."""

    @app.callback(*[Output(component_id, prop) for component_id, prop in outputs], Input(interval_id, "n_intervals"))
    def _tick(_n):
        return refresh()


def keep_choice(current, options: list[dict], default=None):
    """``current`` while the dropdown still offers it, else ``default`` (a live refresh keeps the user's pick)."""
    return current if current is not None and any(o["value"] == current for o in options) else default


def two_columns(*children) -> html.Div:
    return html.Div(list(children), style={"display": "grid", "gridTemplateColumns": "1fr 1fr", "gap": "8px"})


def empty_state(message: str = NO_DATA) -> html.Div:
    return html.Div(message, className="empty-state", style={"padding": "12px", "color": "#666", "fontStyle": "italic"})


def error_banner(message: str) -> html.Div:
    return html.Div(
        f"⚠ {message}", className="error-banner", role="alert", style={"background": "#c62828", "color": "white", "padding": "8px 12px", "fontWeight": "bold"}
    )


def figure(data: list[dict], layout: dict) -> go.Figure:
    """A figure from plain trace/layout dicts, without Plotly's per-property validation.

    Validation dominates the callbacks' cost with an hour of data (see bench/dashboard.py);
    the dicts here are written against Plotly's schema and checked by the browser tests.
    """
    return go.Figure(data=data, layout=layout, _validate=False)


def empty_figure(message: str = NO_DATA, title: str = "") -> go.Figure:
    return figure(
        [],
        {
            "title": {"text": title},
            "xaxis": {"visible": False},
            "yaxis": {"visible": False},
            "annotations": [{"text": message, "showarrow": False, "font": {"size": 14, "color": "#666"}, "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5}],
            "height": 260,
            "margin": {"l": 40, "r": 10, "t": 40, "b": 30},
        },
    )


def to_epoch_ms(timestamps: Iterable[float]) -> list[float]:
    """Unix seconds → epoch milliseconds, which a ``type="date"`` axis plots directly."""
    return [ts * 1000.0 for ts in timestamps]


def series_name(labels: dict, keys: Iterable[str]) -> str:
    return " ".join(str(labels[k]) for k in keys if labels.get(k) not in (None, ""))


def line_traces(series: list[dict], label_keys: Iterable[str], *, suffix: str = "", step: bool = False, dash_style: str | None = None) -> list[dict]:
    """One scatter-line trace dict per ``{"labels", "points"}`` series (``points`` = ``[[ts, value], ...]``)."""
    keys = list(label_keys)
    traces = []
    for s in series:
        points = s.get("points") or []
        line = {"shape": "hv" if step else "linear"}
        if dash_style:
            line["dash"] = dash_style
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": to_epoch_ms(p[0] for p in points),
                "y": [p[1] for p in points],
                "name": f"{series_name(s.get('labels', {}), keys)}{suffix}".strip() or "value",
                "line": line,
            }
        )
    return traces


def time_figure(traces: list[dict], title: str, yaxis_title: str, height: int = 280, **layout) -> go.Figure:
    """Traces over a date x axis, with the dashboard's common layout."""
    base = {
        "title": {"text": title},
        "xaxis": {"type": "date"},
        "yaxis": {"title": {"text": yaxis_title}},
        "height": height,
        "margin": {"l": 50, "r": 10, "t": 40, "b": 30},
        "legend": {"orientation": "h", "y": -0.2},
        "uirevision": "keep",  # keep zoom/legend choices across live refreshes
    }
    base.update(layout)
    return figure(traces, base)


def lines_figure(
    series: list[dict], title: str, yaxis_title: str, label_keys: Iterable[str], *, step: bool = False, dash_style: str | None = None, **layout
) -> go.Figure:
    """One line per series, or the empty state when there are no points."""
    if not series or not any(s.get("points") for s in series):
        return empty_figure(title=title)
    return time_figure(line_traces(series, label_keys, step=step, dash_style=dash_style), title, yaxis_title, **layout)


TABLE_THEME = {
    "function": "themeQuartz.withParams({fontFamily: 'sans-serif', fontSize: 13, spacing: 4, headerFontWeight: 'bold', headerBackgroundColor: '#eceff1'})"
}


def column_def(col_id: str, name: str, kind: str, cell_style: dict | None = None) -> dict:
    """One AG Grid column: ``kind`` text/numeric/markdown; ``cell_style`` e.g. :func:`cell_colours`."""
    col = {"field": col_id, "headerName": name}
    if kind == "markdown":
        col["cellRenderer"] = "markdown"  # links open in the same tab
    elif kind == "numeric":
        col["type"] = "numericColumn"
        col["cellDataType"] = "number"
    elif kind == "text":
        col["cellDataType"] = "text"
    else:
        raise ValueError(f"column {col_id!r}: unknown kind {kind!r} (text, numeric or markdown)")
    if cell_style:
        col["cellStyle"] = cell_style
    return col


def cell_colours(colours: dict[str, str]) -> dict:
    """A ``cellStyle`` painting a cell by its value (e.g. a status), white bold text on ``colours[value]``."""
    return {
        "styleConditions": [
            {"condition": f"params.value === {json.dumps(value)}", "style": {"backgroundColor": colour, "color": "white", "fontWeight": "bold"}}
            for value, colour in colours.items()
        ]
    }


def table(
    table_id: str,
    columns: list[tuple[str, str, str]],
    rows: list[dict],
    *,
    row_key: Iterable[str],
    page_size: int = 25,
    cell_styles: dict[str, dict] | None = None,
) -> dag.AgGrid:
    """A sortable, paginated AG Grid.

    ``columns`` = ``(id, header, kind)`` with kind text/numeric/markdown; ``row_key`` = the
    columns identifying a row (so a refresh updates rows in place and keeps the page and
    sort); ``cell_styles`` = ``{column id: cellStyle}``.
    """
    styles, keys, ids = cell_styles or {}, list(row_key), {c[0] for c in columns}
    unknown = set(styles) - ids
    if unknown:
        raise ValueError(f"cell_styles for unknown columns: {sorted(unknown)}")
    if not keys or not set(keys) <= ids:
        raise ValueError(f"row_key must name some of the table's columns, got {keys}")
    key = " + '|' + ".join(f"params.data.{k}" for k in keys)
    return dag.AgGrid(
        id=table_id,
        columnDefs=[column_def(col_id, name, kind, styles.get(col_id)) for col_id, name, kind in columns],
        rowData=rows,
        getRowId=key,
        defaultColDef={"sortable": True, "resizable": True, "suppressMovable": True},
        columnSize="responsiveSizeToFit",
        dashGridOptions={
            "theme": TABLE_THEME,
            "domLayout": "autoHeight",
            "pagination": True,
            "paginationPageSize": page_size,
            "paginationPageSizeSelector": False,
            "suppressCellFocus": True,
            "animateRows": False,
        },
        style={"width": "100%"},
    )


def pct(rate: float | None) -> float:
    return round(100.0 * (rate or 0.0), 2)


def ms(value: float | None) -> float:
    return round(value or 0.0, 2)
