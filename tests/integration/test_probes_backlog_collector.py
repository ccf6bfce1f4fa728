"""End to end: ``chokepoint-instrument gunicorn -k sync -w 3`` with requests waiting on
I/O and more clients than workers, exporting to a real collector.

The collector must show the worker pool as 3 processes × 1 thread (not "1 worker") and the
accept backlog of the shared listening socket, with its limit and the accept rate, as the
service's runtime fields.  Ground truth: ``ss -ltn`` on the server's port while the clients
wait, and the clients the test started.
"""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from instrumented_app import BIN, InstrumentedApp, free_port

APP = """
import time
from flask import Flask

app = Flask(__name__)

@app.get("/health")
def health():
    return {"ok": True}

@app.get("/io")
def io():
    time.sleep(0.5)  # waiting on I/O
    return {"ok": True}
"""


@pytest.mark.parametrize("collector", [{"bucket_seconds": 1.0}], indirect=True)
def test_sync_workers_report_processes_and_the_accept_backlog(collector, tmp_path):
    port, service = free_port(), "backlog-case2"
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_http, "OTEL_SERVICE_NAME": service, "OTEL_METRIC_EXPORT_INTERVAL": "300", "TMPDIR": str(tmp_path)}
    command = [str(BIN / "gunicorn"), "-k", "sync", "-w", "3", "--backlog", "64", "-b", f"127.0.0.1:{port}", "app:app"]
    seen_by_ss: list[int] = []
    with InstrumentedApp(APP, tmp_path, env, port=port, command=command) as app, ThreadPoolExecutor(15) as clients:
        start = time.monotonic()
        deadline, calls, done, rates = start + 6, [], 0, []
        while time.monotonic() < deadline:  # 15 clients on 3 workers busy 0.5 s each: ~12 connections queued
            done += sum(1 for f in calls if f.done())
            calls = [f for f in calls if not f.done()]
            calls += [clients.submit(requests.get, app.url("/io"), timeout=60) for _ in range(15 - len(calls))]
            out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout.split()
            seen_by_ss.append(int(out[1]))
            rt = collector.store.window(2).runtime.get(service)
            if rt is not None and rt.accept_rate is not None and time.monotonic() > start + 2:
                rates.append(rt.accept_rate)
            time.sleep(0.2)
        served_per_s = done / (time.monotonic() - start)
        runtime = rt
        pools = [p for p in collector.store.pools() if p["service"] == service and p["kind"] == "worker" and p["name"] == "gunicorn"]
    assert pools, collector.store.pools()
    print(
        f"ss Recv-Q {seen_by_ss}; store accept_backlog {runtime.accept_backlog}, max {runtime.accept_backlog_max}, rate {rates} vs served {served_per_s:.2f}/s; pool {pools[0]}"
    )
    assert (pools[0]["max"], pools[0]["processes"]) == (1, 3)  # 3 processes × 1 thread
    assert runtime is not None and runtime.accept_backlog is not None, runtime
    steady = sorted(seen_by_ss[len(seen_by_ss) // 3 :])
    assert steady[len(steady) // 2] >= 8  # the clients really queue in the kernel
    assert min(steady) - 1 <= runtime.accept_backlog <= max(steady) + 1, (runtime.accept_backlog, steady)
    assert runtime.accept_backlog_max == 64
    # the accept rate follows what the clients saw served (one connection per request)
    # (each worker publishes its count at its own collection, so single readings scatter: the mean over ~4 s)
    mean_rate = sum(rates) / len(rates)
    assert 0.6 * served_per_s <= mean_rate <= 1.4 * served_per_s, (rates, served_per_s)
