"""Flask + psycopg_pool on PostgreSQL, light traffic, on a host whose CPUs another program keeps busy."""

import os

from flask import Flask
from psycopg_pool import ConnectionPool

app = Flask(__name__)
pool = ConnectionPool(os.environ["DATABASE_URL"], min_size=2, max_size=4, open=True)
with pool.connection() as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS notes (id int PRIMARY KEY, body text)")
    conn.execute("INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 2000) g ON CONFLICT DO NOTHING")


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/notes/<int:n>")
def note(n):
    with pool.connection() as conn:
        row = conn.execute("SELECT body FROM notes WHERE id = %s", (n,)).fetchone()
    return {"id": n, "body": row[0] if row else None}
