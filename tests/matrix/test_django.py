"""Django in the library matrix: the project in tests/integration/django_app (runserver, an ORM
query on real PostgreSQL): server spans, the query span, server metrics and breakdown."""

import sys
from pathlib import Path

import psycopg
import pytest
from instrumented_app import free_port

from chokepoint.instrument import signals
from tests.matrix.harness import Traced, check_route, installed

MANAGE = Path(__file__).resolve().parent.parent / "integration" / "django_app" / "manage.py"
ROUTE = "books/<int:book_id>"  # Django's route pattern, as the middleware reports it
BOOK_QUERY = 'SELECT "django_books"."id", "django_books"."title" FROM "django_books" WHERE "django_books"."id" = %s LIMIT ?'


@pytest.fixture(scope="module")
def traced(postgres, tmp_path_factory):
    installed("django")
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS django_books")
        conn.execute("CREATE TABLE django_books (id int PRIMARY KEY, title text NOT NULL)")
        conn.execute("INSERT INTO django_books SELECT g, 'book-' || g FROM generate_series(0, 9) g")
    port = free_port()
    command = [sys.executable, str(MANAGE), "runserver", "--noreload", f"127.0.0.1:{port}"]
    env = {"APP_PG_PORT": str(postgres.port), "APP_PG_NAME": postgres.dbname}
    with Traced("", tmp_path_factory.mktemp("django"), env, port=port, command=command) as traced:
        yield traced


def test_django_route_and_orm_query(traced):
    expected = [
        {"db.system.name": "postgresql", "db.query.text": "SELECT set_config(?, %s, ?)"},  # Django sets the session time zone on each new connection
        {"db.system.name": "postgresql", "db.query.text": BOOK_QUERY},
    ]
    check_route(traced, ROUTE, expected, component="db", path="/books/{n}")
    (point,) = [p for p in traced.sink.points(signals.HTTP_SERVER_DURATION) if p.attributes.get("http.route") == ROUTE]
    assert point.count == 3 and point.attributes["http.response.status_code"] == 200
