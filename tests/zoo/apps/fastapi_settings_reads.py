"""FastAPI + SQLAlchemy on PostgreSQL: every request reads the same currency setting row again."""

import os

from fastapi import FastAPI
from sqlalchemy import create_engine, text

engine = create_engine(os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"), pool_size=10)
with engine.begin() as c:
    c.execute(text("CREATE TABLE IF NOT EXISTS settings (key text PRIMARY KEY, value text)"))
    c.execute(text("INSERT INTO settings VALUES ('currency', 'EUR'), ('vat', '0.2') ON CONFLICT DO NOTHING"))
app = FastAPI()


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/price/{cents}")
def price(cents: int):
    with engine.connect() as c:
        currency = c.execute(text("SELECT value FROM settings WHERE key = :k"), {"k": "currency"}).scalar()
        vat = float(c.execute(text("SELECT value FROM settings WHERE key = :k"), {"k": "vat"}).scalar())
    return {"amount": round(cents * (1 + vat)), "currency": currency}
