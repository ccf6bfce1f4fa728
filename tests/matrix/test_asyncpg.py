"""asyncpg in the library matrix: statement spans, DB metrics and breakdown (real PostgreSQL)."""

import pytest

from tests.matrix.harness import Traced, check_route, fastapi_app, installed

APP = fastapi_app(
    """import asyncio, asyncpg
DSN = os.environ["APP_PG_DSN"]

async def seed():
    conn = await asyncpg.connect(DSN)
    await conn.execute("DROP TABLE IF EXISTS lib_books")
    await conn.execute("CREATE TABLE lib_books (id int PRIMARY KEY, title text NOT NULL)")
    await conn.execute("INSERT INTO lib_books SELECT g, 'book-' || g FROM generate_series(0, 9) g")
    await conn.close()

asyncio.run(seed())
""",
    """
@app.get("/asyncpg/{n}")
async def with_asyncpg(n: int):
    conn = await asyncpg.connect(DSN)
    try:
        row = await conn.fetchrow("SELECT title FROM lib_books WHERE id = $1 AND title <> 'secret-title'", n)
        return {"title": row["title"]}
    finally:
        await conn.close()
""",
)


@pytest.fixture(scope="module")
def traced(postgres, tmp_path_factory):
    installed("asyncpg")
    with Traced(APP, tmp_path_factory.mktemp("asyncpg"), {"APP_PG_DSN": postgres.dsn}) as traced:
        yield traced


def test_asyncpg(traced, postgres):
    check_route(
        traced,
        "/asyncpg/{n}",
        [
            {
                "db.system.name": "postgresql",
                "db.namespace": postgres.dbname,
                "db.query.text": "SELECT title FROM lib_books WHERE id = $1 AND title <> ?",
                "server.port": postgres.port,
            }
        ],
        component="db",
    )
