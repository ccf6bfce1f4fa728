"""Starlette + asyncpg: a pool of 2 connections for a busy async API; each request's queries are fast."""

import os

import asyncpg
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

pool = None


async def startup():
    global pool
    pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=2, max_size=2)
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS stock (sku int PRIMARY KEY, qty int)")
        await conn.execute("INSERT INTO stock SELECT g, g % 50 FROM generate_series(1, 1000) g ON CONFLICT DO NOTHING")


async def health(request):
    return JSONResponse({"ok": True})


async def stock(request):
    sku = int(request.path_params["sku"])
    async with pool.acquire() as conn, conn.transaction():
        qty = await conn.fetchval("SELECT qty FROM stock WHERE sku = $1 FOR UPDATE", sku)
        await conn.execute("SELECT pg_sleep(0.01)")  # a stored procedure's share of work
        await conn.execute("UPDATE stock SET qty = qty WHERE sku = $1", sku)
    return JSONResponse({"sku": sku, "qty": qty})


app = Starlette(routes=[Route("/health", health), Route("/stock/{sku:int}", stock)], on_startup=[startup])
