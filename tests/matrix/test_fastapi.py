"""FastAPI (Starlette) in the library matrix: server spans (chokepoint's ASGI path), the request's
DB child (sqlite3), server metrics and breakdown."""

import pytest

from chokepoint.instrument import signals
from tests.matrix.harness import Traced, check_route, fastapi_app, installed

APP = fastapi_app(
    """import sqlite3
PATH = os.environ["APP_SQLITE_PATH"]
with sqlite3.connect(PATH) as setup:
    setup.execute("DROP TABLE IF EXISTS notes")
    setup.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    setup.executemany("INSERT INTO notes VALUES (?, ?)", [(n, f"note-{n}") for n in range(10)])
""",
    """
@app.get("/notes/{n}")
def note(n: int):
    conn = sqlite3.connect(PATH)
    try:
        cur = conn.cursor()
        cur.execute("SELECT body FROM notes WHERE id = ? AND body <> 'secret-body'", (n,))
        return {"body": cur.fetchone()[0]}
    finally:
        conn.close()
""",
)


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    installed("fastapi")
    workdir = tmp_path_factory.mktemp("fastapi")
    with Traced(APP, workdir, {"APP_SQLITE_PATH": str(workdir / "notes.db")}) as traced:
        yield traced


def test_fastapi_route(traced):
    check_route(traced, "/notes/{n}", [{"db.system.name": "sqlite", "db.query.text": "SELECT body FROM notes WHERE id = ? AND body <> ?"}], component="db")
    (point,) = [p for p in traced.sink.points(signals.HTTP_SERVER_DURATION) if p.attributes.get("http.route") == "/notes/{n}"]
    assert point.count == 3 and point.attributes["http.request.method"] == "GET" and point.attributes["http.response.status_code"] == 200
