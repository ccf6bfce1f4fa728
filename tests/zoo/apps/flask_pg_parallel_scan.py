"""Flask + psycopg: a sales dashboard sums a 1.5M-row table per request; PostgreSQL's parallel scans take the CPUs."""

import os

import psycopg
from flask import Flask

URL = os.environ["DATABASE_URL"]
with psycopg.connect(URL, autocommit=True) as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS sales (id bigserial PRIMARY KEY, region int, amount int)")
    if conn.execute("SELECT count(*) FROM sales").fetchone()[0] == 0:
        conn.execute("INSERT INTO sales (region, amount) SELECT g % 20, g % 997 FROM generate_series(1, 1500000) g")
        conn.execute("VACUUM ANALYZE sales")
app = Flask(__name__)
conn = psycopg.connect(URL, autocommit=True)


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/dashboard/<int:region>")
def dashboard(region):
    total = conn.execute("SELECT sum(amount) FROM sales WHERE region = %s", (region % 20,)).fetchone()[0]
    return {"region": region % 20, "total": total}
