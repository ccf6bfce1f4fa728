"""Flask in the library matrix: server spans, the request's DB child (sqlite3), server metrics and breakdown."""

import pytest

from chokepoint.instrument import signals
from tests.matrix.harness import Traced, check_route, installed

APP = """
import os, sqlite3, sys
from flask import Flask
from werkzeug.serving import make_server

PATH = os.environ["APP_SQLITE_PATH"]
with sqlite3.connect(PATH) as setup:
    setup.execute("DROP TABLE IF EXISTS notes")
    setup.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    setup.executemany("INSERT INTO notes VALUES (?, ?)", [(n, f"note-{n}") for n in range(10)])
app = Flask(__name__)

@app.route("/health")
def health():
    return {"ok": True}

@app.route("/notes/<int:n>")
def note(n):
    conn = sqlite3.connect(PATH)
    try:
        cur = conn.cursor()
        cur.execute("SELECT body FROM notes WHERE id = ? AND body <> 'secret-body'", (n,))
        return {"body": cur.fetchone()[0]}
    finally:
        conn.close()

if __name__ == "__main__":
    make_server("127.0.0.1", int(sys.argv[1]), app, threaded=True).serve_forever()
"""
ROUTE = "/notes/<int:n>"


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    installed("flask")
    workdir = tmp_path_factory.mktemp("flask")
    with Traced(APP, workdir, {"APP_SQLITE_PATH": str(workdir / "notes.db")}) as traced:
        yield traced


def test_flask_route(traced):
    expected = [{"db.system.name": "sqlite", "db.query.text": "SELECT body FROM notes WHERE id = ? AND body <> ?"}]
    check_route(traced, ROUTE, expected, component="db", path="/notes/{n}")
    (point,) = [p for p in traced.sink.points(signals.HTTP_SERVER_DURATION) if p.attributes.get("http.route") == ROUTE]
    assert point.count == 3 and point.attributes["http.request.method"] == "GET" and point.attributes["http.response.status_code"] == 200
