"""Dashboard responsiveness: server-side time of every Dash callback, small vs large collector.

Usage::

    .venv/bin/python bench/dashboard.py [--repeats 15] [--routes 200] [--window 3600] [--browser 5]

Starts a real collector on loopback in a process of its own (store and REST API,
``tests/synthetic_collector.py``: synthetic history written through the store's own write
paths, its clock standing still) in two sizes — small (12 routes, 10 min of history) and large (``--routes`` routes,
``--window`` s of history, 10-s buckets) — and times each page's refresh callback the
way Dash runs it: the REST calls through the real client, building the components and
figures, and JSON-encoding the result with Plotly's encoder (what Dash sends to the
browser).  Wall time (the callbacks wait on HTTP), median and p90 over ``--repeats``
after one warm-up call; payload = encoded response size.  The time includes the
collector answering the queries (and the analyzer, for the bottlenecks), as a user's
dashboard waits for them.

``--browser N`` also loads each page N times in headless Chromium (selenium +
chromedriver, as the browser tests) against the large collector: wall time from
``driver.get`` to the page's table rows (AG Grid) or, for pages without data rows, its
figures being drawn — server callbacks, transfer, and the browser's rendering together; a page
not shown within ``PAGE_TIMEOUT_S`` is reported as not shown.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

import plotly.utils

from chokepoint.dashboards.app import DashboardServer, collector_banner
from chokepoint.dashboards.client import ApiClient
from chokepoint.dashboards.pages import dependencies, messaging, overview, resources, route

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "scripts")]
from tests.synthetic_collector import SyntheticCollector  # noqa: E402

PAGE_TIMEOUT_S = 120  # a page whose data is not on screen by then counts as not shown
COLLECTOR_START_S = 600  # writing an hour of 200 routes takes a minute on a busy host


def _serve_synthetic(routes: int, window_s: float, conn) -> None:
    with tempfile.TemporaryDirectory(prefix="chokepoint-bench-") as data_dir, SyntheticCollector(Path(data_dir), routes=routes, window_s=window_s) as collector:
        conn.send(collector.url)
        conn.recv()  # until told to stop


@contextlib.contextmanager
def synthetic_collector(routes: int, window_s: float):
    """The URL of a real collector holding ``window_s`` s of synthetic history for ``routes`` routes,
    in a process of its own (as deployed: its API and analyzer do not share the dashboard's GIL)."""
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    process = ctx.Process(target=_serve_synthetic, args=(routes, window_s, theirs), daemon=True)
    process.start()
    try:
        if not ours.poll(COLLECTOR_START_S):
            raise RuntimeError(f"the synthetic collector did not start within {COLLECTOR_START_S} s")
        yield ours.recv()
    finally:
        with contextlib.suppress(OSError):
            ours.send("stop")
        process.join(30)
        if process.is_alive():
            process.terminate()


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


def measure(routes: int, window_s: float, repeats: int) -> dict[str, tuple[float, float, int]]:
    """callback name → (median ms, p90 ms, payload bytes)."""
    out = {}
    with synthetic_collector(routes, window_s) as api_url:
        client = ApiClient(api_url, timeout_s=10)
        for name, fn in callbacks(client).items():
            fn()  # warm-up (imports, connection)
            times, size = [], 0
            for _ in range(repeats):
                t0 = time.perf_counter()
                size = len(json.dumps(fn(), cls=plotly.utils.PlotlyJSONEncoder))
                times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            out[name] = (statistics.median(times), times[min(len(times) - 1, int(0.9 * len(times)))], size)
    return out


def _browser_pages() -> list[tuple[str, str, str]]:
    """(page, path, CSS selector that appears once its data is drawn)."""
    rows = "#{} .ag-center-cols-container .ag-row"
    return [
        ("overview (RED table, 20 of 200 rows)", "/", rows.format(overview.RED_TABLE)),
        ("route detail (traces table)", "/route?service=shop&route=%2Fcheckout", rows.format(route.TRACES_TABLE)),
        ("resources (pools table + 7 charts)", "/resources", f"#{resources.LOOP_LAG} .main-svg .scatterlayer .trace"),
        ("dependencies (table, breakers)", "/dependencies", rows.format(dependencies.DEPENDENCIES_TABLE)),
        ("messaging (lag table + 2 charts)", "/messaging", rows.format(messaging.LAG_TABLE)),
    ]


def measure_browser(routes: int, window_s: float, loads: int) -> dict[str, tuple[float, float]]:
    """page → (median ms, max ms) from navigation to its data on screen, in headless Chromium."""
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from devservices import CHROMIUM_FLAGS, chromium_path

    options = Options()
    options.binary_location = chromium_path()
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag.replace("--headless", "--headless=new"))
    options.add_argument("--window-size=1400,1800")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    out = {}
    with synthetic_collector(routes, window_s) as api_url, DashboardServer(api_url, port=0, timeout_s=10) as dash:
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            for name, path, ready in _browser_pages():
                times = []
                for i in range(loads + 1):  # the first load warms the browser cache
                    driver.get("about:blank")
                    t0 = time.perf_counter()
                    driver.get(dash.url + path)
                    try:
                        WebDriverWait(driver, PAGE_TIMEOUT_S, poll_frequency=0.02).until(lambda d, css=ready: d.find_elements(By.CSS_SELECTOR, css))
                        shown_ms = (time.perf_counter() - t0) * 1000
                    except TimeoutException:
                        shown_ms = math.inf  # never shown: reported as such, not left out
                    if i:
                        times.append(shown_ms)
                out[name] = (statistics.median(times), max(times))
        finally:
            driver.quit()
    return out


def _ms(value: float) -> str:
    return f"{value:.0f}" if math.isfinite(value) else f"> {PAGE_TIMEOUT_S * 1000:.0f} (not shown)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--routes", type=int, default=200)
    parser.add_argument("--window", type=float, default=3600)
    parser.add_argument("--browser", type=int, default=0, metavar="N", help="also load each page N times in headless Chromium")
    args = parser.parse_args()
    small = measure(12, 600, args.repeats)
    large = measure(args.routes, args.window, args.repeats)
    print(f"callback wall time, median (p90) of {args.repeats}; small = 12 routes / 10 min, large = {args.routes} routes / {args.window / 60:.0f} min\n")
    print("| callback | small ms | large ms | large payload KB |")
    print("|---|---|---|---|")
    for name in small:
        s, lg = small[name], large[name]
        print(f"| {name} | {s[0]:.1f} ({s[1]:.1f}) | {lg[0]:.1f} ({lg[1]:.1f}) | {lg[2] / 1024:.0f} |")
    total_small = sum(v[0] for v in small.values())
    total_large = sum(v[0] for v in large.values())
    print(f"\nsum of medians: small {total_small:.0f} ms, large {total_large:.0f} ms (refresh interval 2000 ms)")
    if args.browser:
        shown = measure_browser(args.routes, args.window, args.browser)
        print(f"\nheadless Chromium, large collector: navigation → data on screen, median (max) of {args.browser} loads after one warm-up\n")
        print("| page | ms |")
        print("|---|---|")
        for name, (median, worst) in shown.items():
            print(f"| {name} | {_ms(median)} ({_ms(worst)}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
