"""FastAPI (async) + httpx.AsyncClient(limits=Limits(max_connections=2)): a fast API behind a tiny client pool."""

import os

import httpx
from fastapi import FastAPI

app = FastAPI()
client = httpx.AsyncClient(base_url=os.environ["DEP_URL"], timeout=httpx.Timeout(5, pool=30), limits=httpx.Limits(max_connections=2))


@app.get("/health")
async def health():
    return {"ok": True}


@app.get("/fx/{n}")
async def fx(n: int):
    response = await client.get(f"/fx/{n}")
    return {"n": n, "fx": response.json()}
