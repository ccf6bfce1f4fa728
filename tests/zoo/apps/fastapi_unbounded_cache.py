"""FastAPI: a hand-rolled cache keyed by request id that is never evicted (and full of cyclic garbage)."""

import uuid

from fastapi import FastAPI

app = FastAPI()
CACHE: dict[str, dict] = {}


@app.get("/health")
async def health():
    return {"ok": True}


@app.get("/render/{n}")
async def render(n: int):
    node = {"n": n, "body": "x" * 60_000, "children": [{"k": i} for i in range(300)]}
    node["self"] = node  # a cycle: only the cyclic GC can free it
    CACHE[str(uuid.uuid4())] = node
    return {"n": n, "cached": len(CACHE)}
