"""FastAPI (async) + aiohttp client: every page waits on a partner API that takes ~300 ms."""

import os

import aiohttp
from fastapi import FastAPI

app = FastAPI()
DEP = os.environ["DEP_URL"]
session = None


@app.on_event("startup")
async def open_session():
    global session
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))


@app.get("/health")
async def health():
    return {"ok": True}


@app.get("/offers/{n}")
async def offers(n: int):
    async with session.get(f"{DEP}/offers/{n}") as response:
        return {"n": n, "offers": await response.json()}
