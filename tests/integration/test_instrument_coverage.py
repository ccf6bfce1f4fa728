"""A broken integration is a blind spot on ``/api/v1/health`` within one export interval.

A FastAPI app over real PostgreSQL (SQLAlchemy + psycopg) runs under ``chokepoint-instrument``
and exports to a real collector.  With ``BREAK_STATEMENT_SPANS=1`` the app switches its
statement path off after the agent set it up (the SQLAlchemy and psycopg instrumentations
uninstrumented: what a bad version guess did to SQLAlchemy 2.0.23), so the statements run
and the pool is used but no statement span is made.  The collector must then list SQLAlchemy
as a blind spot with its version and the switch to try, in the same export that carries the
requests; the agent logs it once.  The healthy run reports every check it made as seen and
no blind spot.
"""

from __future__ import annotations

import time

import psycopg
import pytest
import requests
import sqlalchemy
from instrumented_app import InstrumentedApp

from chokepoint.collector.report import BLIND_SPOTS_HEADING, run_report
from tests.integration.collector_probe import wait_for

APP = """
import os, sys
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI

if os.environ.get("BREAK_STATEMENT_SPANS") == "1":  # the statement path produces nothing
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    SQLAlchemyInstrumentor().uninstrument()
    PsycopgInstrumentor().uninstrument()

engine = sa.create_engine(os.environ["APP_DB_URL"], pool_size=3, max_overflow=0)
app = FastAPI()

@app.get("/health")
def health():
    return {"ok": True}

@app.get("/gadgets/{gadget_id}")
def gadget(gadget_id: int):
    with engine.connect() as conn:
        name = conn.execute(sa.text("SELECT name FROM gadgets WHERE id = :id"), {"id": gadget_id}).scalar_one()
    return {"name": name}

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""
REQUESTS = 20
ROUTE = "/gadgets/{gadget_id}"


@pytest.fixture
def gadgets_db(postgres):
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS gadgets")
        conn.execute("CREATE TABLE gadgets (id int PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO gadgets SELECT g, 'gadget-' || g FROM generate_series(0, 9) g")
    return postgres


def run_app(collector, db, tmp_path, service: str, broken: bool):
    env = {
        "APP_DB_URL": db.url,
        "OTEL_SERVICE_NAME": service,
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_http,
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        "BREAK_STATEMENT_SPANS": "1" if broken else "0",
    }
    return InstrumentedApp(APP, tmp_path, env)


def serve(collector, app, service: str) -> float:
    """Send the requests; wait until the collector has all of them; return the seconds that took."""
    for i in range(REQUESTS):
        assert requests.get(app.url(f"/gadgets/{i % 10}"), timeout=10).status_code == 200
    done = time.monotonic()
    assert wait_for(
        lambda: any(e["service"] == service and e["route"] == ROUTE and e["count"] >= REQUESTS for e in collector.store.endpoints(service=service)),
        timeout_s=60,
    )
    return time.monotonic() - done


def health(collector) -> dict:
    return requests.get(f"{collector.api}/api/v1/health", timeout=10).json()


@pytest.mark.parametrize("collector", [{"bucket_seconds": 1.0}], indirect=True)
def test_broken_statement_spans_are_a_blind_spot_within_one_export(collector, gadgets_db, tmp_path, capsys):
    service = "coverage-broken"
    with run_app(collector, gadgets_db, tmp_path, service, broken=True) as app:
        seconds = serve(collector, app, service)
        # the export that carried the requests carried the blind spot: no interval later
        spots = [s for s in health(collector)["blind_spots"] if s["service"] == service]
        assert spots == [
            {
                "service": service,
                "library": "SQLAlchemy",
                "version": sqlalchemy.__version__,
                "what": "statement spans",
                "try": "CHOKEPOINT_SQLALCHEMY_SPANS=listeners",
            }
        ], (spots, f"{seconds:.2f} s after the last request")
        assert not [d for d in collector.store.dependencies() if d["kind"] == "db"]  # it really was blind
        assert run_report(collector.api, 60, "text") == 0
        report = capsys.readouterr().out
        assert report.startswith(BLIND_SPOTS_HEADING)  # chokepoint report says so before any finding
        assert f"{service}: SQLAlchemy {sqlalchemy.__version__} in use, no statement spans; try CHOKEPOINT_SQLALCHEMY_SPANS=listeners" in report
        print(f"blind spot on /api/v1/health {seconds:.2f} s after the last request (export interval 1 s)")  # pytest -s
    warnings = [line for line in app.stderr.splitlines() if "blind spot" in line]
    assert len(warnings) == 1, app.stderr[-3000:]  # logged once, however many collections
    assert f"SQLAlchemy {sqlalchemy.__version__}" in warnings[0] and "CHOKEPOINT_SQLALCHEMY_SPANS=listeners" in warnings[0]


@pytest.mark.parametrize("collector", [{"bucket_seconds": 1.0}], indirect=True)
def test_a_healthy_app_has_no_blind_spot(collector, gadgets_db, tmp_path):
    service = "coverage-healthy"
    with run_app(collector, gadgets_db, tmp_path, service, broken=False) as app:
        serve(collector, app, service)
        checks = wait_for(lambda: (c := [r for r in collector.store.coverage() if r["service"] == service]) and len(c) == 3 and c, timeout_s=30)
        assert health(collector)["blind_spots"] == []
    assert {(c["library"], c["what"], c["value"]) for c in checks} == {
        ("SQLAlchemy", "statement spans", 1),
        ("SQLAlchemy", "pool metrics", 1),
        ("uvicorn", "server spans", 1),
    }
    assert "blind spot" not in app.stderr
