"""Flask + SQLAlchemy on PostgreSQL: checkout calls the payment API inside the DB transaction."""

import os

import requests
from flask import Flask
from sqlalchemy import create_engine, text

engine = create_engine(os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"), pool_size=4, max_overflow=0)
with engine.begin() as c:
    c.execute(text("CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, total int, paid bool DEFAULT false)"))
app = Flask(__name__)
PAYMENTS = os.environ["DEP_URL"]


@app.get("/health")
def health():
    return {"ok": True}


def charge(order_id, total):
    requests.post(f"{PAYMENTS}/charge", json={"order": order_id, "amount": total}, timeout=5).raise_for_status()


@app.get("/checkout/<int:total>")
def checkout(total):
    if os.path.exists(os.environ.get("FIX_FLAG", "")):  # the fix, behind a feature flag: pay outside the transaction
        with engine.begin() as c:
            order_id = c.execute(text("INSERT INTO orders (total) VALUES (:t) RETURNING id"), {"t": total}).scalar()
        charge(order_id, total)
        with engine.begin() as c:
            c.execute(text("UPDATE orders SET paid = true WHERE id = :id"), {"id": order_id})
        return {"order": order_id, "paid": True}
    with engine.begin() as c:
        order_id = c.execute(text("INSERT INTO orders (total) VALUES (:t) RETURNING id"), {"t": total}).scalar()
        charge(order_id, total)
        c.execute(text("UPDATE orders SET paid = true WHERE id = :id"), {"id": order_id})
    return {"order": order_id, "paid": True}
