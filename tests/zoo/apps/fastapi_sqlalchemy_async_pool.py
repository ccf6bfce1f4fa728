"""FastAPI + SQLAlchemy async engine (asyncpg) with pool_size=2, max_overflow=0, PostgreSQL."""

import os

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

engine = create_async_engine(os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+asyncpg://"), pool_size=2, max_overflow=0, pool_timeout=30)
app = FastAPI()


@app.on_event("startup")
async def schema():
    async with engine.begin() as c:
        await c.execute(text("CREATE TABLE IF NOT EXISTS carts (id int PRIMARY KEY, items int)"))
        await c.execute(text("INSERT INTO carts SELECT g, g % 7 FROM generate_series(1, 1000) g ON CONFLICT DO NOTHING"))


@app.get("/health")
async def health():
    return {"ok": True}


@app.get("/cart/{n}")
async def cart(n: int):
    async with engine.begin() as c:
        items = (await c.execute(text("SELECT items FROM carts WHERE id = :id"), {"id": n})).scalar()
        await c.execute(text("SELECT pg_sleep(0.015)"))
    return {"cart": n, "items": items}
