"""The sidecar is down: the instrumented app keeps serving, drops are counted, and once
the sidecar comes back on its port the counts arrive (cumulative: nothing was lost).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests
from instrumented_app import InstrumentedApp, free_port

from chokepoint.instrument import signals
from otlp_sink import OtlpSink

APP = """
import sys
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI

engine = sa.create_engine("sqlite://")
app = FastAPI()

@app.get("/health")
def health():
    return {"ok": True}

@app.get("/work/{n}")
def work(n: int):
    with engine.connect() as conn:
        return {"n": conn.execute(sa.text("SELECT :n * 2"), {"n": n}).scalar_one()}

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def test_app_keeps_serving_while_the_sidecar_is_down(tmp_path):
    sidecar_port = free_port()  # nothing listens here until the sink starts below
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sidecar_port}",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "CHOKEPOINT_TRACE_SAMPLE_RATE": "1",  # every trace is kept, so every export fails
        "CHOKEPOINT_EXPORT_QUEUE_SPANS": "50",
    }
    with InstrumentedApp(APP, tmp_path, env) as app:
        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(lambda n: requests.get(app.url(f"/work/{n}"), timeout=30), range(200)))
        assert [r.status_code for r in responses] == [200] * 200
        assert [r.json()["n"] for r in responses] == [2 * n for n in range(200)]

        with OtlpSink(port=sidecar_port) as sink:  # the sidecar comes back
            server = sink.wait_for(
                lambda s: [p for p in s.points(signals.HTTP_SERVER_DURATION) if p.attributes.get("http.route") == "/work/{n}" and p.count == 200],
                timeout_s=60,
            )[0]
            dropped = sink.wait_for(lambda s: {p.attributes["chokepoint.drop_reason"]: p.value for p in s.points(signals.AGENT_DROPPED_SPANS)}, timeout_s=60)
            assert requests.get(app.url("/work/1"), timeout=30).status_code == 200

    assert server.attributes == {"http.route": "/work/{n}", "http.request.method": "GET", "http.response.status_code": 200}
    assert set(dropped) <= {"export_failed", "queue_full"} and sum(dropped.values()) > 0
    assert "Traceback" not in app.stderr
