"""Dashboard responsiveness: server-side time of every Dash callback, small vs large collector.

Usage::

    .venv/bin/python bench/dashboard.py [--repeats 15] [--routes 200] [--window 3600]

Serves the synthetic collector API (``chokepoint.dashboards.fake_api``) on loopback in
two sizes — small (12 routes, 10 min of history) and large (``--routes`` routes,
``--window`` s of history, 10-s buckets) — and times each page's refresh callback the
way Dash runs it: the REST calls through the real client, building the components and
figures, and JSON-encoding the result with Plotly's encoder (what Dash sends to the
browser).  Wall time (the callbacks wait on HTTP), median and p90 over ``--repeats``
after one warm-up call; payload = encoded response size.  The fake API answers from
memory, so this is the dashboard's own cost, not the collector's query time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import plotly.utils

from chokepoint.dashboards.app import collector_banner
from chokepoint.dashboards.client import ApiClient
from chokepoint.dashboards.fake_api import FakeApiServer, SyntheticData
from chokepoint.dashboards.pages import dependencies, messaging, overview, resources, route


def callbacks(client: ApiClient) -> dict:
    slowest = overview.refresh(client)[5]
    trace_id = route.refresh(client, slowest)[5][0]["value"]
    return {
        "health banner": lambda: collector_banner(client),
        "overview: banner, findings, RED table": lambda: overview.refresh(client),
        "overview: heatmap + percentiles (1 route)": lambda: overview.refresh_route_charts(client, slowest),
        "route: histogram, breakdown, traces": lambda: route.refresh(client, slowest),
        "route: trace waterfall": lambda: route.refresh_waterfall(client, slowest, trace_id),
        "resources: pools + runtime (7 charts)": lambda: resources.refresh(client),
        "dependencies: table, breakers, timeline": lambda: dependencies.refresh(client),
        "messaging: lag table + 2 charts": lambda: messaging.refresh(client),
    }


def measure(data: SyntheticData, repeats: int) -> dict[str, tuple[float, float, int]]:
    """callback name → (median ms, p90 ms, payload bytes)."""
    out = {}
    with FakeApiServer(data) as api:
        client = ApiClient(api.url, timeout_s=10)
        for name, fn in callbacks(client).items():
            fn()  # warm-up (imports, connection, the fake API's series cache)
            times, size = [], 0
            for _ in range(repeats):
                t0 = time.perf_counter()
                size = len(json.dumps(fn(), cls=plotly.utils.PlotlyJSONEncoder))
                times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            out[name] = (statistics.median(times), times[min(len(times) - 1, int(0.9 * len(times)))], size)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--routes", type=int, default=200)
    parser.add_argument("--window", type=float, default=3600)
    args = parser.parse_args()
    small = measure(SyntheticData(routes=12, window_s=600), args.repeats)
    large = measure(SyntheticData(routes=args.routes, window_s=args.window), args.repeats)
    print(f"callback wall time, median (p90) of {args.repeats}; small = 12 routes / 10 min, large = {args.routes} routes / {args.window / 60:.0f} min\n")
    print("| callback | small ms | large ms | large payload KB |")
    print("|---|---|---|---|")
    for name in small:
        s, lg = small[name], large[name]
        print(f"| {name} | {s[0]:.1f} ({s[1]:.1f}) | {lg[0]:.1f} ({lg[1]:.1f}) | {lg[2] / 1024:.0f} |")
    total_small = sum(v[0] for v in small.values())
    total_large = sum(v[0] for v in large.values())
    print(f"\nsum of medians: small {total_small:.0f} ms, large {total_large:.0f} ms (refresh interval 2000 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
