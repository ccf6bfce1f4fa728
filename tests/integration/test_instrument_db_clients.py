"""DB drivers under ``chokepoint-instrument``: psycopg2, asyncpg (real PostgreSQL), sqlite3,
PyMySQL (real MariaDB) and redis (real redis-server) used directly, and asyncpg under a
SQLAlchemy asyncio engine (one span per statement, not two).

One FastAPI app (uvicorn, zero code change) has a route per driver; each test calls its
route and checks what reached the OTLP sink: the driver's span as a child of the request,
its statement sanitized (placeholders, no literal), ``db.client.operation.duration`` with
exactly ``db.system.name`` + ``db.query.text``, and the query counted in the request's
breakdown.
"""

from __future__ import annotations

import sqlite3

import psycopg
import pymysql
import pytest
import requests
from instrumented_app import InstrumentedApp

from chokepoint.instrument import signals
from otlp_sink import OtlpSink

APP = """
import os, sqlite3, sys
import asyncpg, psycopg2, pymysql, redis, uvicorn
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine

PG = os.environ["APP_PG_DSN"]
SQLITE = os.environ["APP_SQLITE_PATH"]
MYSQL = dict(host="127.0.0.1", port=int(os.environ["APP_MYSQL_PORT"]), user="root", database=os.environ["APP_MYSQL_DB"])
cache = redis.Redis.from_url(os.environ["APP_REDIS_URL"])
async_engine = create_async_engine(PG.replace("postgresql://", "postgresql+asyncpg://"), pool_size=2)
app = FastAPI()

@app.get("/health")
def health():
    return {"ok": True}

@app.get("/psycopg2/{book_id}")
def with_psycopg2(book_id: int):
    conn = psycopg2.connect(PG)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT title FROM lib_books WHERE id = %s AND title <> 'secret-title'", (book_id,))
            return {"title": cur.fetchone()[0]}
    finally:
        conn.close()

@app.get("/asyncpg/{book_id}")
async def with_asyncpg(book_id: int):
    conn = await asyncpg.connect(PG)
    try:
        row = await conn.fetchrow("SELECT title FROM lib_books WHERE id = $1 AND title <> 'secret-title'", book_id)
        return {"title": row["title"]}
    finally:
        await conn.close()

@app.get("/sqlalchemy-asyncpg/{book_id}")
async def with_sqlalchemy_asyncpg(book_id: int):
    async with async_engine.connect() as conn:
        result = await conn.execute(sa.text("SELECT b.title FROM lib_books b WHERE b.id = :id AND b.title <> 'secret-title'"), {"id": book_id})
        return {"title": result.scalar_one()}

@app.get("/sqlite3/{note_id}")
def with_sqlite3(note_id: int):
    conn = sqlite3.connect(SQLITE)
    try:
        cur = conn.cursor()
        cur.execute("SELECT body FROM notes WHERE id = ? AND body <> 'secret-body'", (note_id,))
        body = cur.fetchone()[0]
        (count,) = conn.execute("SELECT count(*) FROM notes WHERE id > 100").fetchone()  # the connection shortcut
        return {"body": body, "count": count}
    finally:
        conn.close()

@app.get("/pymysql/{book_id}")
def with_pymysql(book_id: int):
    conn = pymysql.connect(**MYSQL)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT title FROM lib_books WHERE id = %s AND title <> 'secret-title'", (book_id,))
            return {"title": cur.fetchone()[0]}
    finally:
        conn.close()

@app.get("/redis/{cart_id}")
def with_redis(cart_id: int):
    cache.set(f"cart:{cart_id}", "secret-cart", ex=60)
    return {"cart": cache.get(f"cart:{cart_id}").decode()}

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""

SERVER, CLIENT = 2, 3
CALLS = (3, 4, 5)


@pytest.fixture(scope="module")
def app_and_sink(postgres, mariadb, redis, tmp_path_factory):
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS lib_books")
        conn.execute("CREATE TABLE lib_books (id int PRIMARY KEY, title text NOT NULL)")
        conn.execute("INSERT INTO lib_books SELECT g, 'book-' || g FROM generate_series(0, 9) g")
    conn = pymysql.connect(host=mariadb.host, port=mariadb.port, user=mariadb.user, database=mariadb.database, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS lib_books")
        cur.execute("CREATE TABLE lib_books (id int PRIMARY KEY, title varchar(40) NOT NULL)")
        cur.executemany("INSERT INTO lib_books VALUES (%s, %s)", [(n, f"book-{n}") for n in range(10)])
    conn.close()
    workdir = tmp_path_factory.mktemp("db-clients")
    notes = sqlite3.connect(workdir / "notes.db")
    with notes:
        notes.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        notes.executemany("INSERT INTO notes VALUES (?, ?)", [(n, f"note-{n}") for n in range(10)])
    notes.close()
    with OtlpSink() as sink:
        env = {
            "APP_PG_DSN": postgres.dsn,
            "APP_SQLITE_PATH": str(workdir / "notes.db"),
            "APP_MYSQL_PORT": str(mariadb.port),
            "APP_MYSQL_DB": mariadb.database,
            "APP_REDIS_URL": redis.url,
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
            "OTEL_SERVICE_NAME": "db-clients",
            "OTEL_METRIC_EXPORT_INTERVAL": "300",
            "CHOKEPOINT_TRACE_SAMPLE_RATE": "1",
        }
        with InstrumentedApp(APP, workdir, env) as app:
            yield app, sink
    assert sink.errors == []


def check_driver(app_and_sink, route: str, system: str, db_spans: list[dict]) -> None:
    """Call ``route`` once per CALLS and check its DB spans (exact attributes, in order) and metrics."""
    app, sink = app_and_sink
    prefix = route.split("{")[0]
    for n in CALLS:
        response = requests.get(app.url(f"{prefix}{n}"), timeout=30)
        assert response.status_code == 200, response.text
    statements = [span["db.query.text"] for span in db_spans]
    sink.wait_for(lambda s: len(s.spans(f"GET {route}")) == len(CALLS))
    sink.wait_for(lambda s: [p for p in s.points(signals.REQUEST_DB_QUERIES) if p.attributes == {"http.route": route} and p.count == len(CALLS)])
    for text in statements:
        sink.wait_for(
            lambda s, text=text: [
                p
                for p in s.points(signals.DB_CLIENT_OPERATION_DURATION)
                if p.attributes == {"db.system.name": system, "db.query.text": text} and p.count == len(CALLS)
            ]
        )

    for server in sink.spans(f"GET {route}"):
        assert server.kind == SERVER and server.attributes["http.response.status_code"] == 200
        children = [s for s in sink.spans() if s.parent_span_id == server.span_id]
        assert [c.attributes for c in children] == db_spans  # one span per statement, sanitized
        assert all(c.kind == CLIENT and c.trace_id == server.trace_id for c in children)
        assert "secret" not in repr([c.attributes for c in children])  # literals never leave the process
    for text in statements:
        (point,) = [
            p for p in sink.points(signals.DB_CLIENT_OPERATION_DURATION) if p.attributes["db.query.text"] == text and p.attributes["db.system.name"] == system
        ]
        assert point.attributes == {"db.system.name": system, "db.query.text": text}
        assert point.count == len(CALLS) and point.total > 0
    (queries,) = [p for p in sink.points(signals.REQUEST_DB_QUERIES) if p.attributes == {"http.route": route}]
    assert (queries.count, queries.total) == (len(CALLS), len(CALLS) * len(statements))
    db_time = [
        p.value for p in sink.points(signals.REQUEST_BREAKDOWN_TIME) if p.attributes["http.route"] == route and p.attributes["chokepoint.component"] == "db"
    ]
    assert db_time and db_time[0] > 0


def test_psycopg2(app_and_sink, postgres):
    check_driver(
        app_and_sink,
        "/psycopg2/{book_id}",
        "postgresql",
        [
            {
                "db.system.name": "postgresql",
                "db.namespace": postgres.dbname,
                "db.query.text": "SELECT title FROM lib_books WHERE id = %s AND title <> ?",
                "server.address": "127.0.0.1",
                "server.port": postgres.port,
            }
        ],
    )


def test_asyncpg(app_and_sink, postgres):
    check_driver(
        app_and_sink,
        "/asyncpg/{book_id}",
        "postgresql",
        [
            {
                "db.system.name": "postgresql",
                "db.namespace": postgres.dbname,
                "server.address": "127.0.0.1",
                "server.port": postgres.port,
                "network.transport": "tcp",
                "db.query.text": "SELECT title FROM lib_books WHERE id = $1 AND title <> ?",
            }
        ],
    )


def test_asyncpg_under_sqlalchemy_async_engine_one_span_per_statement(app_and_sink):
    app, sink = app_and_sink
    route, statement = "/sqlalchemy-asyncpg/{book_id}", "SELECT b.title FROM lib_books b WHERE b.id = $1 AND b.title <> ?"
    for n in CALLS:
        assert requests.get(app.url(f"/sqlalchemy-asyncpg/{n}"), timeout=30).json() == {"title": f"book-{n}"}
    sink.wait_for(lambda s: len(s.spans(f"GET {route}")) == len(CALLS))
    sink.wait_for(lambda s: [p for p in s.points(signals.REQUEST_DB_QUERIES) if p.attributes == {"http.route": route} and p.count == len(CALLS)])
    for server in sink.spans(f"GET {route}"):
        children = [s for s in sink.spans() if s.parent_span_id == server.span_id]
        # SQLAlchemy's span only, not a second one from the asyncpg instrumentor (sqlalchemy_async_dedupe)
        (query,) = [c for c in children if c.attributes.get("db.query.text") == statement]
        assert query.kind == CLIENT and query.attributes["db.system.name"] == "postgresql"
        assert "secret" not in repr([c.attributes for c in children])
    (point,) = [p for p in sink.points(signals.DB_CLIENT_OPERATION_DURATION) if p.attributes["db.query.text"] == statement]
    assert point.attributes == {"db.system.name": "postgresql", "db.query.text": statement}
    assert point.count == len(CALLS)


def test_sqlite3_cursor_and_connection_shortcut(app_and_sink):
    check_driver(
        app_and_sink,
        "/sqlite3/{note_id}",
        "sqlite",
        [
            {"db.system.name": "sqlite", "db.query.text": "SELECT body FROM notes WHERE id = ? AND body <> ?"},
            {"db.system.name": "sqlite", "db.query.text": "SELECT count(*) FROM notes WHERE id > ?"},  # conn.execute()
        ],
    )


def test_pymysql_on_mariadb(app_and_sink, mariadb):
    check_driver(
        app_and_sink,
        "/pymysql/{book_id}",
        "mysql",
        [
            {
                "db.system.name": "mysql",
                "db.namespace": mariadb.database,
                "db.query.text": "SELECT title FROM lib_books WHERE id = %s AND title <> ?",
                "server.address": "127.0.0.1",
                "server.port": mariadb.port,
            }
        ],
    )


def test_redis(app_and_sink, redis):
    common = {"db.system.name": "redis", "server.address": "127.0.0.1", "server.port": redis.port, "network.transport": "tcp"}
    check_driver(
        app_and_sink,
        "/redis/{cart_id}",
        "redis",
        [
            {"db.query.text": "SET ? ? ? ?", "db.redis.args_length": 5, **common},
            {"db.query.text": "GET ?", "db.redis.args_length": 2, **common},
        ],
    )
