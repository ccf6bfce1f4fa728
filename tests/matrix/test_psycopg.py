"""psycopg 3 in the library matrix: statement spans, DB metrics and breakdown (real PostgreSQL)."""

import pytest

from tests.matrix.harness import Traced, check_route, fastapi_app, installed

APP = fastapi_app(
    """import psycopg
DSN = os.environ["APP_PG_DSN"]
with psycopg.connect(DSN, autocommit=True) as conn:
    conn.execute("DROP TABLE IF EXISTS lib_books")
    conn.execute("CREATE TABLE lib_books (id int PRIMARY KEY, title text NOT NULL)")
    conn.execute("INSERT INTO lib_books SELECT g, 'book-' || g FROM generate_series(0, 9) g")
""",
    """
@app.get("/psycopg/{n}")
def with_psycopg(n: int):
    with psycopg.connect(DSN) as conn:
        return {"title": conn.execute("SELECT title FROM lib_books WHERE id = %s AND title <> 'secret-title'", (n,)).fetchone()[0]}
""",
)


@pytest.fixture(scope="module")
def traced(postgres, tmp_path_factory):
    installed("psycopg")
    with Traced(APP, tmp_path_factory.mktemp("psycopg"), {"APP_PG_DSN": postgres.dsn}) as traced:
        yield traced


def test_psycopg(traced, postgres):
    check_route(
        traced,
        "/psycopg/{n}",
        [
            {
                "db.system.name": "postgresql",
                "db.namespace": postgres.dbname,
                "db.query.text": "SELECT title FROM lib_books WHERE id = %s AND title <> ?",
                "server.port": postgres.port,
            }
        ],
        component="db",
    )
