"""Flask + psycopg: customers looked up by e-mail, a column without an index (300k rows)."""

import os

import psycopg
from flask import Flask

app = Flask(__name__)
URL = os.environ["DATABASE_URL"]
with psycopg.connect(URL, autocommit=True) as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS customers (id serial PRIMARY KEY, email text, name text, notes text)")
    if conn.execute("SELECT count(*) FROM customers").fetchone()[0] == 0:
        conn.execute(
            "INSERT INTO customers (email, name, notes) SELECT 'c' || g || '@example.com', 'name ' || g, repeat('x', 200) FROM generate_series(1, 300000) g"
        )
        conn.execute("ANALYZE customers")
conn = psycopg.connect(URL, autocommit=True)


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/customer/<int:n>")
def customer(n):
    row = conn.execute("SELECT id, name FROM customers WHERE email = %s", (f"c{n * 97}@example.com",)).fetchone()
    return {"id": row[0], "name": row[1]} if row else ({}, 404)
