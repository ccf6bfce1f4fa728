"""FastAPI (async) + aiobreaker + httpx.AsyncClient: the reviews service is down; the breaker opens."""

import os
from datetime import timedelta

import httpx
from aiobreaker import CircuitBreaker, CircuitBreakerError
from fastapi import FastAPI

app = FastAPI()
client = httpx.AsyncClient(base_url=os.environ["DEP_URL"], timeout=2)
reviews_breaker = CircuitBreaker(fail_max=5, timeout_duration=timedelta(seconds=10), name="reviews")


@reviews_breaker
async def reviews(product: int) -> list:
    response = await client.get(f"/reviews/{product}")
    response.raise_for_status()
    return response.json()


@app.get("/health")
async def health():
    return {"ok": True}


@app.get("/product/{n}")
async def product(n: int):
    try:
        found = await reviews(n)
    except (CircuitBreakerError, httpx.HTTPError):
        found = []
    return {"product": n, "reviews": found}
