"""Flask + SQLAlchemy on PostgreSQL, two problems: a monthly report scans an unindexed table (slow), and it
then reads five customers lazily (a small N+1)."""

import os

from flask import Flask
from sqlalchemy import create_engine, text

engine = create_engine(os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"), pool_size=8)
with engine.begin() as c:
    c.execute(text("CREATE TABLE IF NOT EXISTS invoices (id serial PRIMARY KEY, customer int, month int, amount int, memo text)"))
    c.execute(text("CREATE TABLE IF NOT EXISTS customers (id int PRIMARY KEY, name text)"))
    if c.execute(text("SELECT count(*) FROM invoices")).scalar() == 0:
        c.execute(
            text("INSERT INTO invoices (customer, month, amount, memo) SELECT g % 500, g % 12, g % 300, repeat('m', 100) FROM generate_series(1, 400000) g")
        )
        c.execute(text("INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(0, 499) g"))
        c.execute(text("ANALYZE"))
app = Flask(__name__)


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/report/<int:n>")
def report(n):
    with engine.connect() as c:
        top = c.execute(
            text("SELECT customer, sum(amount) s FROM invoices WHERE month = :m AND memo LIKE :p GROUP BY customer ORDER BY s DESC LIMIT 5"),
            {"m": n % 12, "p": "m%"},
        ).all()
        names = [c.execute(text("SELECT name FROM customers WHERE id = :id"), {"id": row.customer}).scalar() for row in top]
    return {"month": n % 12, "top": names}
