"""The benchmarked service: one FastAPI endpoint doing 3 PostgreSQL queries through
SQLAlchemy and one outbound HTTP call (httpx, with a timeout) to a local server.

Environment: ``BENCH_DB_URL`` (SQLAlchemy URL), ``BENCH_DOWNSTREAM_URL``.
Run by ``bench/overhead/run.py`` under uvicorn, 1 worker, in three variants.
"""

from __future__ import annotations

import os

import httpx
import sqlalchemy as sa
from fastapi import FastAPI

engine = sa.create_engine(os.environ["BENCH_DB_URL"], pool_size=20, max_overflow=0)
downstream = httpx.Client(timeout=5.0)
DOWNSTREAM_URL = os.environ["BENCH_DOWNSTREAM_URL"]
QUERY = sa.text("SELECT id, name FROM items WHERE id = :id")

app = FastAPI()


@app.get("/work/{item_id}")
def work(item_id: int) -> dict:
    with engine.connect() as conn:
        names = [conn.execute(QUERY, {"id": (item_id + n) % 100}).fetchone()[1] for n in range(3)]
    status = downstream.get(DOWNSTREAM_URL).status_code
    return {"names": names, "downstream": status}


@app.get("/health")
def health() -> dict:
    return {"ok": True}
