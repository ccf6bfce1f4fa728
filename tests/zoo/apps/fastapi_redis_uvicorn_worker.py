"""FastAPI on gunicorn with uvicorn workers (2), redis.asyncio for sessions, light traffic: healthy."""

import os

import redis.asyncio as redis
from fastapi import FastAPI

app = FastAPI()
r = redis.Redis.from_url(os.environ["REDIS_URL"])


@app.get("/health")
async def health():
    return {"ok": True}


@app.get("/session/{n}")
async def session(n: int):
    await r.set(f"session:{n}", "active", ex=60)
    return {"n": n, "state": (await r.get(f"session:{n}")).decode()}
