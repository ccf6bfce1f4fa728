"""FastAPI (sync routes on the thread pool) + psycopg_pool with max_size=2, PostgreSQL."""

import os

from fastapi import FastAPI
from psycopg_pool import ConnectionPool

pool = ConnectionPool(os.environ["DATABASE_URL"], min_size=2, max_size=2, timeout=30, open=True)
with pool.connection() as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS accounts (id int PRIMARY KEY, balance int)")
    conn.execute("INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 1000) g ON CONFLICT DO NOTHING")
app = FastAPI()


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/balance/{n}")
def balance(n: int):
    with pool.connection() as conn:
        value = conn.execute("SELECT balance FROM accounts WHERE id = %s", (n,)).fetchone()[0]
        conn.execute("SELECT pg_sleep(0.015)")  # the audit function the DBA added
    return {"id": n, "balance": value}
