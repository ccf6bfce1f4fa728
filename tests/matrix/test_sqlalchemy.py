"""SQLAlchemy in the library matrix: statement spans, DB metrics and the request breakdown
on PostgreSQL (psycopg2, sync engine), SQLite (file) and PostgreSQL through an asyncio engine
(asyncpg) — one span per statement (SQLAlchemy's, not also the driver's)."""

import pytest

from tests.matrix.harness import Traced, check_route, installed

APP = """
import os, sys
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine

sync_engines = {
    "pg": sa.create_engine(os.environ["APP_PG_URL"].replace("postgresql+psycopg://", "postgresql+psycopg2://"), pool_size=2),
    "sqlite": sa.create_engine("sqlite:///" + os.environ["APP_SQLITE_PATH"]),
}
async_engine = create_async_engine(os.environ["APP_PG_URL"].replace("postgresql+psycopg://", "postgresql+asyncpg://"), pool_size=2)
for engine in sync_engines.values():
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS lib_books"))
        conn.execute(sa.text("CREATE TABLE lib_books (id int PRIMARY KEY, title varchar(40) NOT NULL)"))
        conn.execute(sa.text("INSERT INTO lib_books VALUES (:id, :title)"), [{"id": n, "title": f"book-{n}"} for n in range(10)])
app = FastAPI()

@app.get("/health")
def health():
    return {"ok": True}

def two_statements(kind, n):
    with sync_engines[kind].connect() as conn:
        title = conn.execute(sa.text("SELECT title FROM lib_books WHERE id = :id AND title <> 'secret-title'"), {"id": n}).scalar_one()
        count = conn.execute(sa.text("SELECT count(*) FROM lib_books WHERE id > :id"), {"id": n}).scalar_one()
    return {"title": title, "count": count}

@app.get("/pg/{n}")
def pg_route(n: int):
    return two_statements("pg", n)

@app.get("/sqlite/{n}")
def sqlite_route(n: int):
    return two_statements("sqlite", n)

@app.get("/async/{n}")
async def async_route(n: int):
    async with async_engine.connect() as conn:
        result = await conn.execute(sa.text("SELECT title FROM lib_books WHERE id = :id AND title <> 'secret-title'"), {"id": n})
        return {"title": result.scalar_one()}

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


@pytest.fixture(scope="module")
def traced(postgres, tmp_path_factory):
    installed("SQLAlchemy")
    workdir = tmp_path_factory.mktemp("sqlalchemy")
    with Traced(APP, workdir, {"APP_PG_URL": postgres.url, "APP_SQLITE_PATH": str(workdir / "books.db")}) as traced:
        yield traced


def test_postgresql_sync_engine(traced):
    check_route(
        traced,
        "/pg/{n}",
        [
            {"name": "connect", "db.system.name": "postgresql"},
            {"db.system.name": "postgresql", "db.query.text": "SELECT title FROM lib_books WHERE id = %(id)s AND title <> ?"},
            {"db.system.name": "postgresql", "db.query.text": "SELECT count(*) FROM lib_books WHERE id > %(id)s"},
        ],
        component="db",
    )


def test_sqlite_engine(traced):
    check_route(
        traced,
        "/sqlite/{n}",
        [
            {"name": "connect", "db.system.name": "sqlite"},
            {"db.system.name": "sqlite", "db.query.text": "SELECT title FROM lib_books WHERE id = ? AND title <> ?"},
            {"db.system.name": "sqlite", "db.query.text": "SELECT count(*) FROM lib_books WHERE id > ?"},
        ],
        component="db",
    )


def test_asyncio_engine_on_asyncpg(traced):
    placeholder = "%s" if installed("SQLAlchemy").startswith("1.") else "$1"  # 1.4's adapter cursor converts it after SQLAlchemy's span starts
    check_route(
        traced,
        "/async/{n}",
        [
            {"name": "connect", "db.system.name": "postgresql"},
            {"db.system.name": "postgresql", "db.query.text": f"SELECT title FROM lib_books WHERE id = {placeholder} AND title <> ?"},
        ],
        component="db",
        besides=("ROLLBACK;",),  # 2.x: the pool's reset of a returned connection, traced by the asyncpg instrumentor
    )
