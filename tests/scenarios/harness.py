"""The scenario harness: a real collector, the demo shop under ``chokepoint-instrument``, load, findings.

Used by ``tests/scenarios/test_shop_bottlenecks.py`` (one command runs it and writes
``docs/SCENARIOS.md``)::

    .venv/bin/python -m pytest tests/scenarios -q

Pieces:

- :func:`start_collector` — an in-process ``CollectorService`` with short windows
  (:data:`COLLECTOR_SETTINGS`: 1 s buckets, analysis every 1 s over a
  :data:`ANALYZER_WINDOW_S` window, the Kafka lag monitor polling every second).
- :func:`agent_env` — the environment the three shop processes run with under
  ``chokepoint-instrument``: OTLP/HTTP to the collector, metrics every second.
- :class:`BackgroundLoad` — ``shop.load.run_load`` in a thread, stoppable early.
- :class:`FindingsPoller` — ``GET /api/v1/bottlenecks`` over :data:`FINDINGS_WINDOW_S`
  (the API's default): the top finding, the findings above ``info``; ``cpu()``: a
  service's CPU used and waited for over that window
  (``GET /api/v1/timeseries``), for the progress log.
- :func:`host_pressure` — how busy the whole host is (load average, PSI), for the progress
  log and every failure message: a scenario that fails on a host other work keeps busy says so.
- :func:`write_accuracy_table` — the ``docs/SCENARIOS.md`` table from the results.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from shop.load import run_load

#: The analyzer's recent window in the suite (the production default is 60 s).
ANALYZER_WINDOW_S = 12.0
#: The window the suite reads findings over: ``GET /api/v1/bottlenecks`` without ``window``,
#: i.e. the API's default (60 s), analysed afresh at each poll — what a user's first call sees.
FINDINGS_WINDOW_S = 60.0
#: Collector settings of the suite: short buckets and windows, frequent analysis and lag polls.
COLLECTOR_SETTINGS = {
    "bucket_seconds": 1.0,
    "analyze_interval_s": 1.0,
    "analyzer_window_s": ANALYZER_WINDOW_S,
    "analyzer_baseline_s": 120.0,
    "kafka_poll_interval_s": 1.0,
    "persist": False,
}
#: Agent metric export period in the suite, milliseconds.
METRIC_EXPORT_INTERVAL_MS = 1000
ABOVE_INFO = ("warning", "critical")


def start_collector(kafka_bootstrap: str, data_dir: Path):
    """A started in-process collector with :data:`COLLECTOR_SETTINGS` on free loopback ports."""
    from chokepoint.collector.config import CollectorConfig
    from chokepoint.collector.service import CollectorService

    config = CollectorConfig(otlp_grpc_port=0, otlp_http_port=0, api_port=0, data_dir=data_dir, kafka_bootstrap=kafka_bootstrap, **COLLECTOR_SETTINGS)
    service = CollectorService(config)
    service.start()
    return service


def agent_env(otlp_http_url: str) -> dict[str, str]:
    """Environment of the shop processes: the agent exports to ``otlp_http_url`` every second."""
    env = dict(os.environ)
    env.update(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_http_url,
            "OTEL_METRIC_EXPORT_INTERVAL": str(METRIC_EXPORT_INTERVAL_MS),
            "OTEL_BSP_SCHEDULE_DELAY": "500",
        }
    )
    return env


class BackgroundLoad:
    """``run_load`` on its own event loop in a thread; ``stop()`` ends it early."""

    def __init__(self, url: str, rate_rps: float, duration_s: float, mix: dict[str, float], concurrency: int = 48) -> None:
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task | None = None
        self.result = None
        self.error: BaseException | None = None
        self._args = (url, rate_rps, duration_s, concurrency, mix)
        self._thread = threading.Thread(target=self._run, name="scenario-load", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        url, rate, duration, concurrency, mix = self._args
        asyncio.set_event_loop(self._loop)
        self._task = self._loop.create_task(run_load(url, rate, duration, concurrency=concurrency, mix=mix, timeout_s=10.0, seed=7, progress=None))
        try:
            self.result = self._loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # reported by the test, never lost
            self.error = exc
        finally:
            self._loop.close()

    def join(self, timeout_s: float) -> None:
        """Wait for the load to end by itself."""
        self._thread.join(timeout_s)

    def stop(self, timeout_s: float = 15.0) -> None:
        if self._thread.is_alive() and self._task is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout_s)


class FindingsPoller:
    """Reads ``GET /api/v1/bottlenecks`` of the collector."""

    def __init__(self, api_url: str) -> None:
        self.url = api_url + "/api/v1/bottlenecks"
        self.timeseries_url = api_url + "/api/v1/timeseries"
        self.http = httpx.Client(timeout=10)

    def findings(self) -> list[dict]:
        """The findings over :data:`FINDINGS_WINDOW_S` (the API's default window)."""
        response = self.http.get(self.url, params={"window": FINDINGS_WINDOW_S})
        response.raise_for_status()
        return response.json()["findings"]

    def cpu(self, service: str) -> str:
        """``"cpu 0.58 + wait 0.39"``: the service's mean CPU used and run-queue wait over the findings window."""
        means = []
        for metric in ("cpu_utilization", "cpu_run_queue_wait"):
            response = self.http.get(self.timeseries_url, params={"metric": metric, "service": service, "window": FINDINGS_WINDOW_S})
            response.raise_for_status()
            values = [v for s in response.json()["series"] for _t, v in s["points"]]
            means.append(f"{sum(values) / len(values):.2f}" if values else "-")
        return f"cpu {means[0]} + wait {means[1]}"

    @staticmethod
    def above_info(findings: list[dict]) -> list[dict]:
        return [f for f in findings if f["severity"] in ABOVE_INFO]


def host_pressure() -> str:
    """``"host load 3.1 on 2 cores, stalled cpu 42% io 3% (10 s)"``: the load average and the share of the last
    10 s some task waited for a CPU or for I/O (``/proc/pressure``, Linux 4.20+; left out where missing)."""
    parts = []
    with contextlib.suppress(OSError, ValueError, IndexError):
        parts.append(f"host load {float(Path('/proc/loadavg').read_text().split()[0]):.1f} on {os.cpu_count()} cores")
    stalled = []
    for resource in ("cpu", "io"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            some = Path(f"/proc/pressure/{resource}").read_text().splitlines()[0]
            stalled.append(f"{resource} {float(some.split()[1].split('=')[1]):.0f}%")
    if stalled:
        parts.append(f"stalled {' '.join(stalled)} (10 s)")
    return ", ".join(parts) or "host load unknown"


def brief(findings: list[dict], n: int = 4) -> str:
    """The first ``n`` findings, one ``kind(service, target) score severity`` each (with the CPU
    demand the analyzer saw, where the finding carries it)."""

    def one(f: dict) -> str:
        demand = f["evidence"].get("cpu_demand")
        seen = f" [demand {demand}]" if demand is not None else ""
        return f"{f['kind']}({f['service']}, {f['target']}) {f['score']:.2f} {f['severity']}{seen}"

    return "; ".join(one(f) for f in findings[:n]) or "none"


@dataclass
class ScenarioResult:
    kind: str
    expected_target: str
    hit: bool = False
    detection_s: float | None = None
    top: dict | None = None
    note: str = ""
    clear_s: float | None = None  # switch off → no finding above info (None: not within the limit)
    attempts: int = 1  # the attempt that hit and cleared (or the last one tried)
    seen: list[str] = field(default_factory=list)  # distinct top findings seen while waiting


def write_accuracy_table(
    path: Path,
    results: dict[str, ScenarioResult],
    kinds: list[str],
    healthy: dict | None,
    command: str,
    detection_limit_s: float = 30.0,
    clear_limit_s: float = 120.0,
) -> None:
    """``docs/SCENARIOS.md``: kind → top-1 hit, detection seconds, the top finding's summary; the healthy run."""
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    hits = sum(1 for r in results.values() if r.hit)
    lines = [
        "# Scenario accuracy: does the analyzer name each injected bottleneck?",
        "",
        f"Produced by `{command}` on {date} (the last full run; the file is rewritten by every run).",
        "",
        "The demo shop (`examples/shop`) runs under `chokepoint-instrument` with real PostgreSQL and Kafka,",
        "exporting OTLP/HTTP every second to a real collector (1 s buckets; findings read every second",
        f"from `GET /api/v1/bottlenecks` over its default {FINDINGS_WINDOW_S:.0f} s window, the collector's own periodic",
        f"analysis runs over {ANALYZER_WINDOW_S:.0f} s).  For each kind its switch is turned on at runtime under the switch's",
        "focus load (`shop.load.mix_for`); *detection* is the time from the switch to the first",
        "`GET /api/v1/bottlenecks` whose top finding has the expected kind and target at `warning` or",
        f"`critical` (limit {detection_limit_s:.0f} s); *cleared* is the time from switching it off, under light healthy load,",
        f'until no finding above `info` is left (limit {clear_limit_s:.0f} s; "no" = still there).  A kind that missed or did',
        "not clear gets one more attempt; *attempts* says which one counted.",
        "",
        f"**Top-1: {hits}/{len(kinds)}.**",
        "",
        "| kind | expected target | top-1 hit | detection s | cleared s | attempts | top finding (kind, target): summary |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in kinds:
        r = results.get(kind)
        if r is None:
            lines.append(f"| `{kind}` | | not run | | | | |")
            continue
        top = r.top or {}
        summary = f"`{top.get('kind')}`, `{top.get('target')}`: {top.get('summary', '')}" if top else "no finding"
        summary = summary.replace("|", "\\|")
        det = f"{r.detection_s:.1f}" if r.detection_s is not None else "—"
        cleared = f"{r.clear_s:.0f}" if r.clear_s is not None else "no"
        lines.append(f"| `{kind}` | `{r.expected_target}` | {'yes' if r.hit else 'no'} | {det} | {cleared} | {r.attempts} | {summary} |")
    lines += ["", "## Healthy run (all switches off, default mix)", ""]
    if healthy is None:
        lines.append("not run")
    else:
        verdict = "no finding above `info`" if not healthy["above_info"] else f"FALSE FINDINGS: {healthy['above_info']}"
        attempts = f" (attempt {healthy['attempts']})" if healthy.get("attempts", 1) > 1 else ""
        lines.append(f"{healthy['duration_s']:.0f} s at {healthy['rate_rps']:.0f} rps, findings polled every second: {verdict}{attempts}.")
        if healthy.get("info"):
            lines.append(f"Findings at `info` seen: {healthy['info']}.")
    path.write_text("\n".join(lines) + "\n")


def wait_until(predicate, timeout_s: float, interval_s: float = 1.0):
    """Call ``predicate`` until it returns a truthy value or ``timeout_s`` passes; returns the last value."""
    deadline = time.monotonic() + timeout_s
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval_s)
        value = predicate()
    return value
