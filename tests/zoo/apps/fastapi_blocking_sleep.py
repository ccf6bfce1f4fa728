"""FastAPI on uvicorn: an ``async def`` route calls a blocking function (the classic asyncio mistake)."""

import time

from fastapi import FastAPI

app = FastAPI()


def render_invoice(order_id: int) -> dict:
    time.sleep(0.05)  # a blocking library call (PDF rendering, a sync SDK) that takes 50 ms
    return {"order": order_id, "pdf": "..."}


@app.get("/health")
async def health():
    return {"ok": True}


@app.get("/invoice/{order_id}")
async def invoice(order_id: int):
    return render_invoice(order_id)
