"""The demo payment service: a small FastAPI app the shop calls over HTTP.

Usage::

    python -m shop.payment --port 8001 [--switches external_dependency_slow]

Routes
------
``POST /payments``  ``{"order_id": 1, "amount_cents": 1234, "currency": "EUR"}`` →
                    ``{"payment_id": "...", "status": "approved"}``
``GET /fx/{currency}``  exchange rate from EUR (``{"currency": "USD", "rate": 1.08}``)
``GET /health``, ``GET /admin/stats`` (calls received, failures injected, calls in flight and
the most ever in flight at once)
``GET/POST /admin/switches``  (see ``shop.switches``)

Switches owned by this service (``SHOP_SWITCHES`` at start or the admin endpoint)
------------------------------------------------------------------------------------
``external_dependency_slow``  every answer is delayed by ``--slow-ms`` (default 300 ms).
``circuit_open``              ``POST /payments`` answers 503 — the shop's pybreaker opens
                              after 5 consecutive failures and then rejects calls.
``retry_storm``               ``POST /payments`` fails (503) two calls out of three, so a
                              client that retries (the shop's ``retry_storm``) multiplies calls.
``missing_timeout``           ``POST /payments`` hangs for ``--hang-s`` (default 3 s) — longer
                              than the shop's timeout, so only a shop without a timeout (the
                              shop's ``missing_timeout``) waits it out.

Environment: ``SHOP_SWITCHES``, ``PAYMENT_HOST`` (127.0.0.1), ``PAYMENT_PORT`` (8001).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import uuid

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from shop.serving import env, run
from shop.switches import ENV_VAR, SwitchError, Switches, admin_router

FX_RATES = {"EUR": 1.0, "USD": 1.08, "GBP": 0.86, "JPY": 162.5, "CHF": 0.95}
FX_ANSWER_S = 0.008  # a rate service's own answer time: fast, yet a one-connection client pool fills at ~25 requests/s


class PaymentRequest(BaseModel):
    order_id: int
    amount_cents: int = Field(ge=0)
    currency: str = Field(min_length=3, max_length=3)


def create_app(switches: Switches, slow_ms: float = 300.0, hang_s: float = 3.0) -> FastAPI:
    app = FastAPI(title="demo payment service")
    app.include_router(admin_router(switches))
    counters = {"payments_received": 0, "failures_injected": 0, "approved": 0, "in_flight": 0, "max_in_flight": 0}
    call_numbers = itertools.count(1)

    async def maybe_slow() -> None:
        if switches.on("external_dependency_slow"):
            await asyncio.sleep(slow_ms / 1000)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/admin/stats")
    async def stats() -> dict:
        return dict(counters)

    @app.post("/payments")
    async def pay(request: PaymentRequest):
        counters["payments_received"] += 1
        counters["in_flight"] += 1
        counters["max_in_flight"] = max(counters["max_in_flight"], counters["in_flight"])
        try:
            return await _pay(request)
        finally:
            counters["in_flight"] -= 1

    async def _pay(request: PaymentRequest):
        await maybe_slow()
        if switches.on("missing_timeout"):
            await asyncio.sleep(hang_s)
        if switches.on("circuit_open") or (switches.on("retry_storm") and next(call_numbers) % 3 != 0):
            counters["failures_injected"] += 1
            return JSONResponse({"error": "payment backend unavailable"}, status_code=503)
        counters["approved"] += 1
        return {"payment_id": uuid.uuid4().hex, "status": "approved", "order_id": request.order_id}

    @app.get("/fx/{currency}")
    async def fx(currency: str):
        await maybe_slow()
        await asyncio.sleep(FX_ANSWER_S)
        rate = FX_RATES.get(currency.upper())
        if rate is None:
            return JSONResponse({"error": f"unknown currency {currency!r}; known: {', '.join(FX_RATES)}"}, status_code=404)
        return {"currency": currency.upper(), "rate": rate}

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shop.payment", description="demo payment service")
    parser.add_argument("--host", default=env("PAYMENT_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env("PAYMENT_PORT", "8001")))
    parser.add_argument("--switches", default=env(ENV_VAR, ""), help="comma-separated switches to turn on (default $SHOP_SWITCHES)")
    parser.add_argument("--slow-ms", type=float, default=300.0, help="delay added by external_dependency_slow")
    parser.add_argument("--hang-s", type=float, default=3.0, help="delay of missing_timeout")
    args = parser.parse_args(argv)
    try:
        switches = Switches.from_text("payment", args.switches)
    except SwitchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app = create_app(switches, slow_ms=args.slow_ms, hang_s=args.hang_s)
    run(app, args.host, args.port, lambda: f"payment ready http://{args.host}:{args.port} {switches.describe()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
