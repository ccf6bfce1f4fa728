"""PyMySQL in the library matrix: statement spans, DB metrics and breakdown (real MariaDB)."""

import pytest

from tests.matrix.harness import Traced, check_route, fastapi_app, installed

APP = fastapi_app(
    """import pymysql
MYSQL = dict(host="127.0.0.1", port=int(os.environ["APP_MYSQL_PORT"]), user=os.environ["APP_MYSQL_USER"], database=os.environ["APP_MYSQL_DB"])
setup = pymysql.connect(autocommit=True, **MYSQL)
with setup.cursor() as cur:
    cur.execute("DROP TABLE IF EXISTS lib_books")
    cur.execute("CREATE TABLE lib_books (id int PRIMARY KEY, title varchar(40) NOT NULL)")
    cur.executemany("INSERT INTO lib_books VALUES (%s, %s)", [(n, f"book-{n}") for n in range(10)])
setup.close()
""",
    """
@app.get("/pymysql/{n}")
def with_pymysql(n: int):
    conn = pymysql.connect(**MYSQL)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT title FROM lib_books WHERE id = %s AND title <> 'secret-title'", (n,))
            return {"title": cur.fetchone()[0]}
    finally:
        conn.close()
""",
)


@pytest.fixture(scope="module")
def traced(mariadb, tmp_path_factory):
    installed("PyMySQL")
    env = {"APP_MYSQL_PORT": str(mariadb.port), "APP_MYSQL_USER": mariadb.user, "APP_MYSQL_DB": mariadb.database}
    with Traced(APP, tmp_path_factory.mktemp("pymysql"), env) as traced:
        yield traced


def test_pymysql_on_mariadb(traced, mariadb):
    check_route(
        traced,
        "/pymysql/{n}",
        [
            {
                "db.system.name": "mysql",
                "db.namespace": mariadb.database,
                "db.query.text": "SELECT title FROM lib_books WHERE id = %s AND title <> ?",
                "server.port": mariadb.port,
            }
        ],
        component="db",
    )
