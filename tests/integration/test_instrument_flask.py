"""Plain ``opentelemetry-instrument`` picks chokepoint's distro: a real Flask app (werkzeug
threads) over real PostgreSQL through psycopg directly, under concurrent load.

Also covers ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` and the response size/compression
metric.
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
import gzip, json, os, sys
import psycopg, requests
from flask import Flask, Response
from werkzeug.serving import make_server

app = Flask(__name__)
DSN = os.environ["APP_DSN"]
DOWN = os.environ["APP_DOWNSTREAM"]

@app.get("/health")
def health():
    return {"ok": True}

@app.get("/orders/<int:order_id>")
def order(order_id):
    with psycopg.connect(DSN) as conn:
        name = conn.execute("SELECT name FROM orders WHERE id = %s", (order_id,)).fetchone()[0]
        before = conn.execute("SELECT count(*) FROM orders WHERE id < %s", (order_id,)).fetchone()[0]
    requests.get(DOWN + "/stock", timeout=5)
    return {"name": name, "before": before}

@app.get("/report")
def report():
    body = gzip.compress(json.dumps({"rows": list(range(2000))}).encode())
    return Response(body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})

if __name__ == "__main__":
    make_server("127.0.0.1", int(sys.argv[1]), app, threaded=True).serve_forever()
"""


@pytest.fixture(scope="module")
def orders_db(postgres):
    return seed_table(postgres, "orders")


def test_flask_app_with_plain_opentelemetry_instrument(orders_db, tmp_path):
    with OtlpSink() as sink, Downstream() as downstream:
        env = {
            "APP_DSN": orders_db.dsn,
            "APP_DOWNSTREAM": downstream.url,
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
            "OTEL_SERVICE_NAME": "shop-flask",
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "requests,urllib3",
            "CHOKEPOINT_TRACE_SAMPLE_RATE": "0",
        }
        with InstrumentedApp(APP, tmp_path, env, launcher="opentelemetry-instrument") as app:
            with ThreadPoolExecutor(6) as pool:
                statuses = list(pool.map(lambda n: requests.get(app.url(f"/orders/{n % 7}"), timeout=30).status_code, range(30)))
            assert statuses == [200] * 30
            for _ in range(3):
                assert requests.get(app.url("/report"), timeout=30).status_code == 200

            route = "/orders/<int:order_id>"
            server = sink.wait_for(
                lambda s: (
                    (p := point(s, signals.HTTP_SERVER_DURATION, **{"http.route": route, "http.request.method": "GET", "http.response.status_code": 200}))
                    and p.count == 30
                    and p
                )
            )
            sink.wait_for(
                lambda s: (
                    (p := point(s, signals.HTTP_SERVER_RESPONSE_BODY_SIZE, **{"http.route": "/report", "chokepoint.http.response.compressed": True}))
                    and p.count == 3
                )
            )

        assert sink.errors == []
        assert server.resource["service.name"] == "shop-flask"
        assert len(downstream.requests) == 30
        for statement in ("SELECT name FROM orders WHERE id = %s", "SELECT count(*) FROM orders WHERE id < %s"):
            assert point(sink, signals.DB_CLIENT_OPERATION_DURATION, **{"db.system.name": "postgresql", "db.query.text": statement}).count == 30
        queries = point(sink, signals.REQUEST_DB_QUERIES, **{"http.route": route})
        assert (queries.count, queries.total) == (30, 60)
        # requests/urllib3 instrumentation disabled: no client spans, no client metrics, no traceparent
        assert sink.points(signals.HTTP_CLIENT_DURATION) == []
        assert all("traceparent" not in headers for _, headers in downstream.requests)
        components = {p.attributes["chokepoint.component"] for p in sink.points(signals.REQUEST_BREAKDOWN_TIME) if p.attributes["http.route"] == route}
        assert {"db", "self"} <= components and not any(c.startswith("http:") for c in components)
        uncompressed = point(sink, signals.HTTP_SERVER_RESPONSE_BODY_SIZE, **{"http.route": route, "chokepoint.http.response.compressed": False})
        assert uncompressed.count == 30
        report = point(sink, signals.HTTP_SERVER_RESPONSE_BODY_SIZE, **{"http.route": "/report", "chokepoint.http.response.compressed": True})
        assert report.total / report.count < 10_000  # the gzip-compressed size, not the JSON size
        # nothing errored or sampled: a trace is kept only for a request slower than the 1 s floor (none on an
        # idle host; on a busy one a request may wait that long for a CPU), and then whole, root first
        roots = [s for s in sink.spans() if s.parent_span_id == ""]
        assert all(s.duration_s >= 1.0 for s in roots), [(s.name, s.duration_s) for s in roots]
        assert {s.trace_id for s in sink.spans()} == {s.trace_id for s in roots}
