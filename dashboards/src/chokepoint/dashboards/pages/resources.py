"""Resources (``/resources``): saturation of worker and DB pools, and the process runtime.

- pools now (``/pools``): used/max, pending, wait p99, timeouts;
- over time (``/timeseries``): used vs max, pending callers, wait p99 per pool;
- runtime per service: CPU used and CPU waited for (run-queue wait: used + waited is the
  process's CPU demand, what the analyzer's ``cpu_saturation`` reads), RSS, GC pause p99,
  event-loop lag p99.
"""

from __future__ import annotations

import plotly.graph_objects as go
from dash import dcc, html

from ..client import ApiClient
from ..components import empty_figure, empty_state, error_banner, line_traces, lines_figure, live_page, ms, on_tick, table, time_figure, tolerant, two_columns

PATH = "/resources"
NAME = "Resources"

INTERVAL = "resources-interval"
STATUS = "resources-status"
POOLS_TABLE = "resources-pools"
POOL_USED = "resources-pool-used"
POOL_PENDING = "resources-pool-pending"
POOL_WAIT = "resources-pool-wait"
CPU = "resources-cpu"
RSS = "resources-rss"
GC = "resources-gc"
LOOP_LAG = "resources-loop-lag"
GRAPHS = (POOL_USED, POOL_PENDING, POOL_WAIT, CPU, RSS, GC, LOOP_LAG)

POOL_COLUMNS = [
    ("service", "service", "text"),
    ("kind", "kind", "text"),
    ("name", "pool", "text"),
    ("used", "used", "numeric"),
    ("max", "max", "numeric"),
    ("saturation_pct", "saturation %", "numeric"),
    ("pending", "pending", "numeric"),
    ("wait_p99_ms", "wait p99 ms", "numeric"),
    ("timeouts", "timeouts", "numeric"),
]
POOL_LABELS = ("service", "kind", "pool")


def pool_rows(pools: list[dict]) -> list[dict]:
    rows = []
    for p in pools:
        used, cap = p.get("used") or 0, p.get("max") or 0
        rows.append(
            {
                **{c[0]: p.get(c[0]) for c in POOL_COLUMNS},
                "saturation_pct": round(100.0 * used / cap, 1) if cap else None,
                "wait_p99_ms": ms(p.get("wait_p99_ms")),
            }
        )
    return rows


def used_vs_max_figure(used: list[dict], cap: list[dict]) -> go.Figure:
    if not used:
        return empty_figure(title="Pool members in use vs capacity")
    traces = line_traces(used, POOL_LABELS, suffix=" used") + line_traces(cap, POOL_LABELS, suffix=" max", dash_style="dash")
    return time_figure(traces, "Pool members in use vs capacity", "members")


def cpu_figure(used: list[dict], waiting: list[dict]) -> go.Figure:
    """CPU used and CPU waited for per service (dotted): their sum is the process's CPU demand."""
    title = "CPU used and waited for (1.0 = one core)"
    if not any(s.get("points") for s in used + waiting):
        return empty_figure(title=title)
    traces = line_traces(used, ("service",), suffix=" used") + line_traces(waiting, ("service",), suffix=" waiting for a CPU", dash_style="dot")
    return time_figure(traces, title, "cores")


@tolerant(lambda msg: (error_banner(msg), [], *[empty_figure(msg) for _ in GRAPHS]))
def refresh(client: ApiClient, window_s: float = 3600):
    """(status, pool rows, 7 figures) for one tick."""
    pools = client.pools()
    ts = {m: client.timeseries(m, window_s=window_s) for m in ("pool_used", "pool_max", "pool_pending", "pool_wait_p99_ms")}
    runtime = {
        m: client.timeseries(m, window_s=window_s) for m in ("cpu_utilization", "cpu_run_queue_wait", "rss_bytes", "gc_pause_p99_ms", "event_loop_lag_p99_ms")
    }
    figures = (
        used_vs_max_figure(ts["pool_used"], ts["pool_max"]),
        lines_figure(ts["pool_pending"], "Callers waiting for a pool member", "pending", POOL_LABELS),
        lines_figure(ts["pool_wait_p99_ms"], "Pool wait p99", "ms", POOL_LABELS),
        cpu_figure(runtime["cpu_utilization"], runtime["cpu_run_queue_wait"]),
        lines_figure(runtime["rss_bytes"], "Resident memory (RSS)", "bytes", ("service",)),
        lines_figure(runtime["gc_pause_p99_ms"], "GC pause p99", "ms", ("service",)),
        lines_figure(runtime["event_loop_lag_p99_ms"], "Event-loop lag p99", "ms", ("service",)),
    )
    status = empty_state() if not pools and not any(runtime.values()) else html.Div(f"{len(pools)} pools", className="status-ok")
    return (status, pool_rows(pools), *figures)


def layout(**_query) -> html.Div:
    return live_page(
        INTERVAL,
        STATUS,
        html.H3("Pools now"),
        table(POOLS_TABLE, POOL_COLUMNS, [], row_key=("service", "kind", "name")),
        html.H3("Pool saturation over time"),
        two_columns(dcc.Graph(id=POOL_USED), dcc.Graph(id=POOL_PENDING), dcc.Graph(id=POOL_WAIT)),
        html.H3("Runtime"),
        two_columns(dcc.Graph(id=CPU), dcc.Graph(id=RSS), dcc.Graph(id=GC), dcc.Graph(id=LOOP_LAG)),
    )


def register_callbacks(app, client: ApiClient) -> None:
    on_tick(app, INTERVAL, [(STATUS, "children"), (POOLS_TABLE, "rowData"), *[(g, "figure") for g in GRAPHS]], lambda: refresh(client))
