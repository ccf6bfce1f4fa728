"""``chokepoint-instrument gunicorn -w 2 app:app``: the agent is set up in the gunicorn master
before the workers fork; each worker must export on its own (fresh export thread, its own
``service.instance.id``) with no code change, whatever the master was doing when it forked
them (it exports too: ``chokepoint.instrument.forking``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests
from instrumented_app import BIN, InstrumentedApp, free_port

from chokepoint.instrument import signals
from otlp_sink import OtlpSink

APP = """
import os
from flask import Flask

app = Flask(__name__)

@app.get("/health")
def health():
    return {"ok": True}

@app.get("/pid/<int:n>")
def pid(n):
    return {"pid": os.getpid(), "n": n}
"""


def test_gunicorn_workers_each_export(tmp_path):
    port = free_port()
    with OtlpSink() as sink:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
            "OTEL_SERVICE_NAME": "shop-gunicorn",
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
            "CHOKEPOINT_TRACE_SAMPLE_RATE": "1",
        }
        command = [str(BIN / "gunicorn"), "-w", "2", "--threads", "4", "-b", f"127.0.0.1:{port}", "app:app"]
        with InstrumentedApp(APP, tmp_path, env, port=port, command=command) as app:
            with ThreadPoolExecutor(8) as pool:
                replies = list(pool.map(lambda n: requests.get(app.url(f"/pid/{n}"), timeout=30).json(), range(200)))
            worker_pids = {r["pid"] for r in replies}
            route = "/pid/<int:n>"

            def per_instance(s):
                counts = {}
                for p in s.points(signals.HTTP_SERVER_DURATION):
                    if p.attributes.get("http.route") == route:
                        counts[p.resource["service.instance.id"]] = p.count
                return counts

            counts = sink.wait_for(lambda s: (c := per_instance(s)) and sum(c.values()) == 200 and c)
            sink.wait_for(lambda s: len(s.spans(f"GET {route}")) == 200)

    assert len(worker_pids) == 2  # both workers served
    assert len(counts) == 2  # ...and each reported under its own instance id
    spans = sink.spans(f"GET {route}")
    assert {s.resource["service.name"] for s in spans} == {"shop-gunicorn"}
    assert len({s.resource["service.instance.id"] for s in spans}) == 2


RESTART_REQUESTS = 120


def test_restarted_workers_lose_no_request(tmp_path):
    """``--max-requests``: workers exit and new ones fork all along (while the master may be
    exporting); each exiting worker's last interval is exported, so the per-process totals
    still add up to every request served."""
    port = free_port()
    with OtlpSink() as sink:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint, "OTEL_SERVICE_NAME": "shop-gunicorn", "OTEL_METRIC_EXPORT_INTERVAL": "200"}
        command = [str(BIN / "gunicorn"), "-w", "2", "--max-requests", "30", "-b", f"127.0.0.1:{port}", "app:app"]
        with InstrumentedApp(APP, tmp_path, env, port=port, command=command) as app:
            with ThreadPoolExecutor(4) as pool:
                replies = list(pool.map(lambda n: requests.get(app.url(f"/pid/{n}"), timeout=30).json(), range(RESTART_REQUESTS)))
            route = "/pid/<int:n>"

            def per_instance(s):
                return {p.resource["service.instance.id"]: p.count for p in s.points(signals.HTTP_SERVER_DURATION) if p.attributes.get("http.route") == route}

            counts = sink.wait_for(lambda s: (c := per_instance(s)) and sum(c.values()) >= RESTART_REQUESTS and c, timeout_s=60)
    assert len({r["pid"] for r in replies}) > 2  # workers were replaced
    assert sum(counts.values()) == RESTART_REQUESTS
    assert len(counts) == len({r["pid"] for r in replies})  # one instance id per worker process
