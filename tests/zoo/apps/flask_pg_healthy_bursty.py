"""Flask + psycopg on PostgreSQL (an indexed lookup per request), light bursty traffic: healthy."""

import os

from flask import Flask
from psycopg_pool import ConnectionPool

app = Flask(__name__)
pool = ConnectionPool(os.environ["DATABASE_URL"], min_size=2, max_size=8, open=True)
with pool.connection() as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS users (id int PRIMARY KEY, name text)")
    conn.execute("INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 5000) g ON CONFLICT DO NOTHING")


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/users/<int:user_id>")
def user(user_id):
    with pool.connection() as conn:
        row = conn.execute("SELECT id, name FROM users WHERE id = %s", (user_id,)).fetchone()
    return {"id": row[0], "name": row[1]} if row else ({"error": "not found"}, 404)
