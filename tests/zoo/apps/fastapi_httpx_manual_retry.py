"""FastAPI (async) + httpx: a hand-written retry loop (5 tries, no backoff) around a flaky pricing API."""

import os

import httpx
from fastapi import FastAPI

app = FastAPI()
client = httpx.AsyncClient(base_url=os.environ["DEP_URL"], timeout=3)


@app.get("/health")
async def health():
    return {"ok": True}


@app.get("/price/{n}")
async def price(n: int):
    for _attempt in range(5):
        response = await client.get(f"/price/{n}")
        if response.status_code < 500:
            return {"n": n, "price": response.json()}
    return {"n": n, "price": None}
