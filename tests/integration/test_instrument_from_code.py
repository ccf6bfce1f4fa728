"""``from chokepoint.instrument import instrument; instrument()`` in the app's own code, run
with plain ``python app.py`` (no launcher): same agent, idempotent, exporting to the sink.
"""

from __future__ import annotations

import requests
from instrumented_app import Downstream, InstrumentedApp

from chokepoint.instrument import signals
from otlp_sink import OtlpSink

APP = """
import os, sys
from chokepoint.instrument import instrument

agent = instrument()
assert instrument() is agent  # idempotent

import requests, uvicorn
from fastapi import FastAPI

app = FastAPI()
DOWN = os.environ["APP_DOWNSTREAM"]

@app.get("/health")
def health():
    return {"ok": True}

@app.get("/quote/{symbol}")
def quote(symbol: str):
    requests.get(DOWN + "/q?token=secret", timeout=2)
    return {"symbol": symbol}

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def test_instrument_called_from_code(tmp_path):
    with OtlpSink() as sink, Downstream() as downstream:
        env = {
            "APP_DOWNSTREAM": downstream.url,
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
            "OTEL_SERVICE_NAME": "quotes",
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
            "CHOKEPOINT_TRACE_SAMPLE_RATE": "1",
        }
        with InstrumentedApp(APP, tmp_path, env, launcher=None) as app:
            for symbol in ("ABC", "XYZ", "ABC"):
                assert requests.get(app.url(f"/quote/{symbol}?user=bob"), timeout=30).status_code == 200
            server = sink.wait_for(
                lambda s: [p for p in s.points(signals.HTTP_SERVER_DURATION) if p.attributes.get("http.route") == "/quote/{symbol}" and p.count == 3]
            )[0]
            sink.wait_for(lambda s: len(s.spans("GET /quote/{symbol}")) == 3 and len([x for x in s.spans() if x.kind == 3]) == 3)

    assert server.resource["service.name"] == "quotes"
    assert server.attributes == {"http.route": "/quote/{symbol}", "http.request.method": "GET", "http.response.status_code": 200}
    clients = [s for s in sink.spans() if s.kind == 3]
    # the outbound URL is exported without its query string (token=secret)
    assert {s.attributes.get("url.full") for s in clients} == {f"{downstream.url}/q"}
    assert all("secret" not in repr(s.attributes) and "bob" not in repr(s.attributes) for s in sink.spans())
    assert all(headers["traceparent"] for _, headers in downstream.requests)
