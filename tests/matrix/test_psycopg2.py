"""psycopg2 in the library matrix: statement spans, DB metrics and breakdown (real PostgreSQL)."""

import pytest

from tests.matrix.harness import Traced, check_route, fastapi_app, installed

APP = fastapi_app(
    """import psycopg2
DSN = os.environ["APP_PG_DSN"]
setup = psycopg2.connect(DSN)
setup.autocommit = True
with setup.cursor() as cur:
    cur.execute("DROP TABLE IF EXISTS lib_books")
    cur.execute("CREATE TABLE lib_books (id int PRIMARY KEY, title text NOT NULL)")
    cur.execute("INSERT INTO lib_books SELECT g, 'book-' || g FROM generate_series(0, 9) g")
setup.close()
""",
    """
@app.get("/psycopg2/{n}")
def with_psycopg2(n: int):
    conn = psycopg2.connect(DSN)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT title FROM lib_books WHERE id = %s AND title <> 'secret-title'", (n,))
            return {"title": cur.fetchone()[0]}
    finally:
        conn.close()
""",
)


@pytest.fixture(scope="module")
def traced(postgres, tmp_path_factory):
    installed("psycopg2-binary")
    with Traced(APP, tmp_path_factory.mktemp("psycopg2"), {"APP_PG_DSN": postgres.dsn}) as traced:
        yield traced


def test_psycopg2(traced, postgres):
    check_route(
        traced,
        "/psycopg2/{n}",
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
