"""aiohttp web server + asyncpg pool on PostgreSQL, light traffic: healthy (start-up connects included)."""

import os

import asyncpg
from aiohttp import web


async def on_startup(app):
    app["pool"] = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=4, max_size=10)
    async with app["pool"].acquire() as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS cities (id int PRIMARY KEY, name text)")
        await conn.execute("INSERT INTO cities SELECT g, 'city ' || g FROM generate_series(1, 1000) g ON CONFLICT DO NOTHING")


async def health(request):
    return web.json_response({"ok": True})


async def city(request):
    async with request.app["pool"].acquire() as conn:
        name = await conn.fetchval("SELECT name FROM cities WHERE id = $1", int(request.match_info["n"]))
    return web.json_response({"name": name})


app = web.Application()
app.on_startup.append(on_startup)
app.add_routes([web.get("/health", health), web.get("/city/{n}", city)])

if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=int(os.environ["PORT"]), access_log=None)
