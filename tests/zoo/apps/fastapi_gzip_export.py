"""FastAPI with GZipMiddleware: a ~400 KB JSON export, compressed for clients that accept gzip: healthy."""

from fastapi import FastAPI
from fastapi.middleware.gzip import GZipMiddleware

app = FastAPI()
app.add_middleware(GZipMiddleware, minimum_size=1000)
CATALOG = [{"sku": i, "name": f"product {i}", "description": "a fine product " * 8, "price_cents": i * 7} for i in range(2500)]


@app.get("/health")
async def health():
    return {"ok": True}


@app.get("/export")
def export():
    return CATALOG
