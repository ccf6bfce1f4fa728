"""Messaging (``/messaging``): Kafka consumer lag per group/topic/partition.

- now (``/consumer-lag``): offset lag, time lag, committed and log-end offsets and the
  Burrow-style status OK/WARN/STALL/STOP/ERR (coloured);
- over time (``/timeseries``): offset lag and time lag per partition.
"""

from __future__ import annotations

from dash import dcc, html

from chokepoint.semconv.catalog import LAG_STATUSES

from ..client import ApiClient
from ..components import STATUS_COLOURS, cell_colours, empty_figure, empty_state, error_banner, lines_figure, live_page, on_tick, table, tolerant, two_columns

PATH = "/messaging"
NAME = "Messaging"

INTERVAL = "messaging-interval"
STATUS = "messaging-status"
LAG_TABLE = "messaging-lag-table"
LAG_CHART = "messaging-lag"
TIME_LAG_CHART = "messaging-time-lag"

LAG_COLUMNS = [
    ("group", "group", "text"),
    ("topic", "topic", "text"),
    ("partition", "partition", "numeric"),
    ("lag", "lag (messages)", "numeric"),
    ("time_lag_s", "time lag s", "numeric"),
    ("status", "status", "text"),
    ("committed_offset", "committed", "numeric"),
    ("log_end_offset", "log end", "numeric"),
]
LAG_LABELS = ("group", "topic", "partition")
STATUS_STYLE = cell_colours({s: STATUS_COLOURS[s] for s in LAG_STATUSES})


def lag_rows(lags: list[dict]) -> list[dict]:
    severity = {s: i for i, s in enumerate(LAG_STATUSES)}
    rows = [{c[0]: row.get(c[0]) for c in LAG_COLUMNS} for row in lags]
    rows.sort(key=lambda r: (-severity.get(r.get("status"), 0), -(r.get("lag") or 0)))
    return rows


@tolerant(lambda msg: (error_banner(msg), [], empty_figure(msg), empty_figure(msg)))
def refresh(client: ApiClient, window_s: float = 3600):
    """(status, lag rows, lag figure, time-lag figure) for one tick."""
    lags = client.consumer_lag()
    lag_ts = client.timeseries("consumer_lag", window_s=window_s)
    time_lag_ts = client.timeseries("consumer_time_lag_s", window_s=window_s)
    if lags:
        worst = lag_rows(lags)[0]
        status = html.Div(f"{len(lags)} partitions; worst: {worst['group']}/{worst['topic']}/{worst['partition']} {worst['status']}", className="status-ok")
    else:
        status = empty_state("No consumer groups reported — is the Kafka consumer instrumented?")
    return (
        status,
        lag_rows(lags),
        lines_figure(lag_ts, "Consumer offset lag", "messages", LAG_LABELS),
        lines_figure(time_lag_ts, "Consumer time lag", "seconds", LAG_LABELS),
    )


def layout(**_query) -> html.Div:
    return live_page(
        INTERVAL,
        STATUS,
        html.H3("Consumer lag now"),
        table(LAG_TABLE, LAG_COLUMNS, [], row_key=LAG_LABELS, cell_styles={"status": STATUS_STYLE}),
        two_columns(dcc.Graph(id=LAG_CHART), dcc.Graph(id=TIME_LAG_CHART)),
    )


def register_callbacks(app, client: ApiClient) -> None:
    outputs = [(STATUS, "children"), (LAG_TABLE, "rowData"), (LAG_CHART, "figure"), (TIME_LAG_CHART, "figure")]
    on_tick(app, INTERVAL, outputs, lambda: refresh(client))
