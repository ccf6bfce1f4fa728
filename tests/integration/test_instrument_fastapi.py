"""chokepoint-instrument on a real FastAPI app (uvicorn) over real PostgreSQL, under concurrent load.

The app runs as ``chokepoint-instrument python app.py PORT`` (zero code change) and exports
OTLP/HTTP protobuf to a real sink; every assertion is on what arrived on the wire.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from instrumented_app import Downstream, InstrumentedApp

from chokepoint.instrument import signals
from otlp_sink import OtlpSink
from tests.instrument.shared import point, seed_table

APP = """
import os, sys
import httpx, requests
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI

engine = sa.create_engine(os.environ["APP_DB_URL"], pool_size=5, max_overflow=0)
downstream = httpx.Client(timeout=5.0)
DOWN = os.environ["APP_DOWNSTREAM"]
app = FastAPI()

@app.get("/health")
def health():
    return {"ok": True}

@app.get("/items/{item_id}")
def item(item_id: int):
    with engine.connect() as conn:
        names = [conn.execute(sa.text("SELECT name FROM items WHERE id = :id"), {"id": item_id + n}).scalar_one() for n in range(3)]
    downstream.get(DOWN + "/price")
    return {"names": names}

@app.get("/slow")
def slow():
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_sleep(1.2)"))  # above the 1 s slow floor (default)
    downstream.get(DOWN + "/slow")
    return {"ok": True}

@app.get("/boom")
def boom():
    raise RuntimeError("boom")

@app.get("/in-transaction")
def in_transaction():
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT 1"))
        requests.get(DOWN + "/tx")  # no timeout, while the connection is held
    return {"ok": True}

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""

ITEMS_STATEMENT = "SELECT name FROM items WHERE id = %(id)s"
SERVER, CLIENT = 2, 3  # OTLP span kinds


@pytest.fixture(scope="module")
def items_db(postgres):
    return seed_table(postgres, "items")


def test_fastapi_app_under_concurrent_load(items_db, tmp_path):
    with OtlpSink() as sink, Downstream() as downstream:
        env = {
            "APP_DB_URL": items_db.url,
            "APP_DOWNSTREAM": downstream.url,
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
            "OTEL_SERVICE_NAME": "shop-fastapi",
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
            "CHOKEPOINT_TRACE_SAMPLE_RATE": "0",
        }
        with InstrumentedApp(APP, tmp_path, env) as app:
            with ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(lambda n: requests.get(app.url(f"/items/{n % 10}"), timeout=30).status_code, range(40)))
            assert statuses == [200] * 40
            assert requests.get(app.url("/slow"), timeout=30).status_code == 200
            assert requests.get(app.url("/boom"), timeout=30).status_code == 500
            assert requests.get(app.url("/in-transaction"), timeout=30).status_code == 200

            route = "/items/{item_id}"
            server = sink.wait_for(
                lambda s: (
                    (p := point(s, signals.HTTP_SERVER_DURATION, **{"http.route": route, "http.request.method": "GET", "http.response.status_code": 200}))
                    and p.count == 40
                    and p
                )
            )
            sink.wait_for(
                lambda s: (
                    s.spans("GET /boom")
                    and s.spans("GET /slow")
                    and point(s, signals.HTTP_CLIENT_CALLS_IN_TRANSACTION, **{"server.address": "127.0.0.1", "http.route": "/in-transaction"})
                )
            )

        assert sink.errors == []
        assert server.kind == "exponential_histogram" and server.temporality == 2  # cumulative
        assert server.resource["service.name"] == "shop-fastapi"

        # DB: one operation per statement (no duplicate DB-API span), normalized text as attribute
        db = point(sink, signals.DB_CLIENT_OPERATION_DURATION, **{"db.system.name": "postgresql", "db.query.text": ITEMS_STATEMENT})
        assert db.count == 120
        queries = point(sink, signals.REQUEST_DB_QUERIES, **{"http.route": route})
        assert (queries.count, queries.total) == (40, 120)

        # outbound HTTP: 40 /price + /slow via httpx, /tx via requests
        client = point(sink, signals.HTTP_CLIENT_DURATION, **{"server.address": "127.0.0.1", "http.request.method": "GET", "http.response.status_code": 200})
        assert client.count == 42

        # breakdown: components of the route add up to its server time
        breakdown: dict = {}  # summed over chokepoint.slow (on a busy host a request can pass the 1 s floor)
        for p in sink.points(signals.REQUEST_BREAKDOWN_TIME):
            if p.attributes["http.route"] == route:
                breakdown[p.attributes["chokepoint.component"]] = breakdown.get(p.attributes["chokepoint.component"], 0.0) + p.value
        assert {"db", "http:127.0.0.1", "self"} <= set(breakdown)
        assert all(value > 0 for value in breakdown.values())
        assert sum(breakdown.values()) == pytest.approx(server.total, rel=1e-6), breakdown

        # flags
        assert point(sink, signals.HTTP_CLIENT_CALLS_IN_TRANSACTION, **{"server.address": "127.0.0.1", "http.route": "/in-transaction"}).value == 1
        assert point(sink, signals.HTTP_CLIENT_CALLS_WITHOUT_TIMEOUT, **{"server.address": "127.0.0.1", "http.route": "/in-transaction"}).value == 1
        assert point(sink, signals.DB_REPEATED_READS, **{"db.query.text": ITEMS_STATEMENT}).value > 0
        body = point(sink, signals.HTTP_SERVER_RESPONSE_BODY_SIZE, **{"http.route": route, "chokepoint.http.response.compressed": False})
        assert body.count == 40 and body.total > 0

        # kept traces: the slow ones (above the 1 s floor: /slow, and on a busy host perhaps a request
        # that waited a second for a CPU) and the errored one, whole, sanitized, nothing else
        kept = {p.attributes["chokepoint.keep_reason"]: p.value for p in sink.points(signals.AGENT_EXPORTED_TRACES)}
        roots = [s for s in sink.spans() if s.kind == SERVER and s.parent_span_id == ""]
        slow_roots = [s for s in roots if s.name != "GET /boom"]
        assert all(s.duration_s >= 1.0 for s in slow_roots), [(s.name, s.duration_s) for s in slow_roots]
        assert kept == {"slow": len(slow_roots), "error": 1} and "GET /slow" in {s.name for s in slow_roots}, kept
        (slow,) = sink.spans("GET /slow")
        assert slow.kind == SERVER and slow.parent_span_id == ""
        assert slow.attributes["http.route"] == "/slow" and slow.attributes["http.response.status_code"] == 200
        assert slow.duration_s >= 1.2
        trace = [s for s in sink.spans() if s.trace_id == slow.trace_id]
        db_spans = [s for s in trace if "db.system.name" in s.attributes and s.attributes.get("db.query.text")]
        assert [s.attributes["db.query.text"] for s in db_spans] == ["SELECT pg_sleep(?)"]
        (http_span,) = [s for s in trace if s.kind == CLIENT and "http.request.method" in s.attributes]
        assert http_span.parent_span_id == slow.span_id
        # the outbound call carried the trace context
        (slow_call,) = [headers for path, headers in downstream.requests if path == "/slow"]
        assert slow_call["traceparent"].split("-")[1] == slow.trace_id
        (boom,) = sink.spans("GET /boom")
        assert boom.status_code == 2 and boom.attributes["http.response.status_code"] == 500
