"""A real Django project (``django_app/``: manage.py, settings, an ORM model) run as
``chokepoint-instrument python manage.py runserver --noreload`` over real PostgreSQL.

Zero code change: ``manage.py`` sets ``DJANGO_SETTINGS_MODULE`` itself, after the agent
started, and the project's own settings must still be the ones in force
(:mod:`chokepoint.instrument.django_deferred`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import psycopg
import requests
from instrumented_app import InstrumentedApp, free_port

from chokepoint.instrument import signals
from otlp_sink import OtlpSink

MANAGE = Path(__file__).parent / "django_app" / "manage.py"
ROUTE = "books/<int:book_id>"  # Django's route pattern, as the upstream middleware reports it
BOOK_QUERY = 'SELECT "django_books"."id", "django_books"."title" FROM "django_books" WHERE "django_books"."id" = %s LIMIT ?'
SERVER, CLIENT = 2, 3


def _books_table(postgres) -> None:
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS django_books")
        conn.execute("CREATE TABLE django_books (id int PRIMARY KEY, title text NOT NULL)")
        conn.execute("INSERT INTO django_books SELECT g, 'book-' || g FROM generate_series(0, 9) g")


def _env(postgres, sink) -> dict[str, str]:
    return {
        "APP_PG_PORT": str(postgres.port),
        "APP_PG_NAME": postgres.dbname,
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
        "OTEL_SERVICE_NAME": "books",
        "OTEL_METRIC_EXPORT_INTERVAL": "300",
    }


def _runserver(tmp_path, env: dict[str, str], port: int) -> InstrumentedApp:
    command = [sys.executable, str(MANAGE), "runserver", "--noreload", f"127.0.0.1:{port}"]
    return InstrumentedApp("", tmp_path, env, port=port, command=command)


def test_django_runserver_route_and_orm_query(postgres, tmp_path):
    _books_table(postgres)
    port = free_port()
    with OtlpSink() as sink:
        env = {**_env(postgres, sink), "CHOKEPOINT_TRACE_SAMPLE_RATE": "1"}
        with _runserver(tmp_path, env, port) as app:
            for book_id in (3, 4, 5):
                response = requests.get(app.url(f"/books/{book_id}"), timeout=30)
                assert response.json() == {"id": book_id, "title": f"book-{book_id}"}
            sink.wait_for(lambda s: len(s.spans(f"GET {ROUTE}")) == 3)
            sink.wait_for(lambda s: [p for p in s.points(signals.HTTP_SERVER_DURATION) if p.attributes.get("http.route") == ROUTE and p.count == 3])
            sink.wait_for(lambda s: [p for p in s.points(signals.DB_CLIENT_OPERATION_DURATION) if p.attributes["db.query.text"] == BOOK_QUERY and p.count == 3])

    assert sink.errors == []
    servers = sink.spans(f"GET {ROUTE}")
    for server in servers:
        assert server.kind == SERVER and server.resource["service.name"] == "books"
        assert {k: server.attributes[k] for k in ("http.route", "http.request.method", "http.response.status_code")} == {
            "http.route": ROUTE,
            "http.request.method": "GET",
            "http.response.status_code": 200,
        }
        # the ORM query is a child of the request, sanitized: placeholders for the id and the LIMIT
        (query,) = [s for s in sink.spans() if s.parent_span_id == server.span_id and s.attributes.get("db.query.text") == BOOK_QUERY]
        assert query.kind == CLIENT and query.trace_id == server.trace_id
        assert query.attributes["db.system.name"] == "postgresql" and query.attributes["db.namespace"] == postgres.dbname
    assert not any("book-" in str(s.attributes) for s in sink.spans())  # no values leave the process
    (server_point,) = [p for p in sink.points(signals.HTTP_SERVER_DURATION) if p.attributes.get("http.route") == ROUTE]
    assert server_point.attributes == {"http.route": ROUTE, "http.request.method": "GET", "http.response.status_code": 200}
    (db_point,) = [p for p in sink.points(signals.DB_CLIENT_OPERATION_DURATION) if p.attributes["db.query.text"] == BOOK_QUERY]
    assert db_point.attributes == {"db.system.name": "postgresql", "db.query.text": BOOK_QUERY} and db_point.count == 3
    components = {p.attributes["chokepoint.component"] for p in sink.points(signals.REQUEST_BREAKDOWN_TIME) if p.attributes["http.route"] == ROUTE}
    assert {"db", "self"} <= components


def test_django_without_common_middleware_still_reports_response_sizes(postgres, tmp_path):
    """No CommonMiddleware, no ``Content-Length``: the body size comes from the response itself."""
    _books_table(postgres)
    port = free_port()
    with OtlpSink() as sink:
        env = {**_env(postgres, sink), "APP_NO_COMMON_MIDDLEWARE": "1"}
        with _runserver(tmp_path, env, port) as app:
            received = 0
            for book_id in (3, 4, 5):
                response = requests.get(app.url(f"/books/{book_id}"), timeout=30)
                assert response.status_code == 200 and "Content-Length" not in response.headers
                received += len(response.content)  # ground truth: what the client got
            sizes = sink.wait_for(
                lambda s: [p for p in s.points(signals.HTTP_SERVER_RESPONSE_BODY_SIZE) if p.attributes.get("http.route") == ROUTE and p.count == 3]
            )
    assert sizes[0].total == received
