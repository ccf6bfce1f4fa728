"""The demo shop: a FastAPI service on PostgreSQL (or SQLite), a payment service and Kafka (optional), with bottleneck switches.

Usage::

    python -m shop.payment --port 8001 &
    python -m shop.fulfilment --port 8002 --db postgresql://postgres@127.0.0.1:5432/shop --kafka 127.0.0.1:9092 &
    python -m shop.app --port 8000 --db postgresql://postgres@127.0.0.1:5432/shop \\
        --kafka 127.0.0.1:9092 --payment-url http://127.0.0.1:8001 [--switches slow_query,n_plus_one]

It prints ``shop ready http://127.0.0.1:8000 switches=...`` once it serves.  On start it
creates the schema and seed data (``shop.db``: 200 000 products; idempotent) and the
Kafka topic (``shop.events``).  It is plain application code — run it under
``chokepoint-instrument`` to watch it.

Fallback mode (what ``make demo`` runs where PostgreSQL or Java is not installed)::

    python -m shop.app --port 8000 --db sqlite:////tmp/shop.sqlite --kafka none \
        --payment-url http://127.0.0.1:8001

``--db sqlite:///FILE`` keeps the data in a SQLite file (same schema and seed, a QueuePool
as on PostgreSQL — ``shop.db``); ``--kafka none`` (or empty) runs without Kafka: paid
orders publish no event (``event_published: false``, counted as ``not_published`` in
``/admin/stats``), there is no fulfilment worker, and the ``consumer_lag`` switch is
unavailable (refused with the reason).  ``GET /health`` and ``GET /admin/stats`` say
which mode the shop runs in: ``{"status": "ok", "database": "sqlite", "kafka": false}``.

Routes (sync = ``def``, run in anyio's worker threadpool; async = on the event loop)
-----------------------------------------------------------------------------------
``GET  /products/{id}``            sync  one product + the shop currency
``GET  /search?q=steel+lamp``      sync  name search (prefix search on an index), 20 cheapest
``GET  /recommendations/{id}``     sync  similar products (same category, close price), scored
``GET  /catalog/export?limit=2500`` sync  a large JSON list of products (~300 KB; gzip when asked)
``GET  /quote?amount_cents=1000&currency=USD``  async  price in another currency (FX rate
                                   fetched from the payment service with httpx.AsyncClient)
``POST /orders``                   sync  ``{"customer": "c1", "lines": [{"product_id": 1, "quantity": 2}]}``:
                                   writes the order, charges it at the payment service (httpx,
                                   pybreaker breaker ``payment``), publishes ``order-paid`` to Kafka;
                                   201 paid, 502 payment failed, 503 breaker open
``GET  /orders?customer=customer-1&limit=10``  sync  a customer's orders with lines and product names
``GET  /orders/{id}``              sync  one order (``status`` becomes ``fulfilled`` after the worker ran)
``GET  /health``, ``GET /admin/stats`` (threadpool, DB pools, breaker, Kafka counters),
``GET/POST /admin/switches``       (see ``shop.switches``)

Every response carries ``X-DB-Queries``, ``X-DB-Time-ms`` and ``X-DB-Pool-Wait-ms``: what
the request did on the database.

Bottleneck switches owned by the shop (all off = healthy: fast, no errors, no growth)
-------------------------------------------------------------------------------------
``worker_pool_saturation``  the anyio threadpool shrinks from ``--threads`` (16) to 4 tokens
                            and every sync route waits 150 ms on I/O (``time.sleep``) — all
                            sync routes queue for a worker thread; CPU stays low.
``cpu_saturation``          ``/recommendations`` scores candidates in pure Python (~50 ms of
                            CPU per request) — the process pins one core (the GIL).
``event_loop_blocked``      ``/quote`` calls the FX rate with a *sync* httpx client and a
                            blocking 50 ms ``time.sleep`` on the event loop — every async
                            request (and the loop itself) stalls.
``db_pool_saturation``      requests use a second engine whose QueuePool has
                            ``pool_size=2, max_overflow=0`` and hold the connection across an
                            80 ms sleep — requests wait for a connection while each query
                            stays fast.
``slow_query``              ``/search`` matches anywhere in the name or the description
                            (``lower(name) LIKE '%term%' OR lower(description) LIKE
                            '%term%'``): the prefix index cannot be used, a sequential scan
                            of 200 000 rows per search (~250 ms on PostgreSQL, ~100 ms on
                            SQLite, against ~1 ms for the indexed prefix search).
``n_plus_one``              ``/orders`` lazy-loads each order's lines and each line's product
                            in its own query (1 + orders + lines queries) instead of two.
``connection_held_during_external_call``  ``POST /orders`` makes the payment call inside the
                            DB transaction that wrote the order, holding the connection for
                            the whole call.
``retry_storm``             the payment call is retried up to 4 more times, immediately, on
                            any error/timeout (pair with the payment service's ``retry_storm``).
``missing_timeout``         the payment call is made with ``timeout=None`` instead of 1 s
                            (pair with the payment service's ``missing_timeout``: it hangs 3 s).
``hot_endpoint``            ``/search`` waits 800 ms on a (simulated) search backend while
                            holding its worker thread — search traffic takes most of the
                            threadpool and starves the other sync routes.
``memory_pressure``         ``/products/{id}`` keeps every view (with 300 copies of the product) in
                            an ever-growing list and makes cyclic garbage — RSS grows and
                            GC pauses lengthen (the list is released when switched off).
``uncompressed_response``   the GZip middleware is bypassed: ``/catalog/export`` sends ~300 KB
                            of JSON uncompressed even to clients that accept gzip.
``cacheable_reads``         every request reads ``SELECT value FROM settings WHERE key =
                            'currency'`` again instead of using the 60 s in-process cache.
``http_pool_saturation``    ``/products/{id}`` prices the product in every currency: one fast
                            ``GET /fx/{currency}`` per currency at the payment service through
                            a ``requests`` session whose pool holds one connection
                            (``HTTPAdapter(pool_maxsize=1, pool_block=True)``) — the worker
                            threads queue for that connection while each call stays fast.

Switches of the other processes: ``external_dependency_slow``, ``circuit_open``
(``shop.payment``), ``consumer_lag`` (``shop.fulfilment``; unavailable without Kafka).

Environment (flags override): ``SHOP_HOST`` (127.0.0.1), ``SHOP_PORT`` (8000),
``SHOP_DB_URL`` (postgresql://postgres@127.0.0.1:5432/shop, or sqlite:///FILE), ``SHOP_KAFKA_BOOTSTRAP``
(127.0.0.1:9092, or ``none``), ``SHOP_KAFKA_TOPIC`` (orders), ``SHOP_PAYMENT_URL``
(http://127.0.0.1:8001), ``SHOP_SWITCHES``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import threading
import time
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

import anyio.to_thread
import httpx
import requests
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, lazyload, selectinload
from starlette.middleware.gzip import GZipMiddleware

from shop import db
from shop.events import DEFAULT_TOPIC, NoEvents, OrderEvents, ensure_topic, kafka_enabled
from shop.payment_client import PaymentClient, PaymentFailed, PaymentUnavailable
from shop.serving import env, run
from shop.switches import ENV_VAR, SwitchError, Switches, admin_router

SATURATED_THREADS = 4
IO_WAIT_S = 0.15
POOL_HOLD_S = 0.08
HOT_SEARCH_WAIT_S = 0.8
BLOCKING_SLEEP_S = 0.05
CURRENCY_CACHE_TTL_S = 60.0
FX_POOL_SIZE = 1  # http_pool_saturation: connections in the pricing client's pool
PRICE_CURRENCIES = ("EUR", "USD", "GBP", "JPY", "CHF")
CPU_SCORING_ROUNDS = 6000  # x 50 candidates: ~50 ms of pure-Python CPU on an idle core (more than a core at the focus load, on hosts up to twice as fast)
RECENT_VIEWS_KEPT = 100
LEAK_COPIES_PER_VIEW = 300
#: Why a switch cannot work when the shop runs without Kafka.
NO_KAFKA_UNAVAILABLE = {"consumer_lag": "the shop runs without Kafka (--kafka none): no order events, no fulfilment worker, no consumer group to lag"}


@dataclass
class ShopConfig:
    db_url: str
    kafka_bootstrap: str
    payment_url: str
    topic: str = DEFAULT_TOPIC
    threads: int = 16
    db_pool_size: int = 10
    db_max_overflow: int = 5
    payment_timeout_s: float = 1.0
    breaker_reset_s: float = 10.0
    products: int = db.SEED_PRODUCTS

    @property
    def kafka(self) -> bool:
        """Whether the shop publishes order events to Kafka (False for ``--kafka none``)."""
        return kafka_enabled(self.kafka_bootstrap)

    @property
    def mode(self) -> dict:
        """What the shop runs on, as ``/health`` and ``/admin/stats`` report it."""
        return {"database": db.backend_name(self.db_url), "kafka": self.kafka}


class OrderLineIn(BaseModel):
    product_id: int = Field(ge=1)
    quantity: int = Field(ge=1, le=100)


class OrderIn(BaseModel):
    customer: str = Field(min_length=1, max_length=64)
    lines: list[OrderLineIn] = Field(min_length=1, max_length=20)


def similarity_scores(product: dict, candidates: list[dict], rounds: int) -> list[tuple[float, dict]]:
    """Score candidates against ``product`` in pure Python; cost grows linearly with ``rounds``."""
    scored = []
    base = product["price_cents"]
    for candidate in candidates:
        score = -abs(candidate["price_cents"] - base) / 100.0
        seed = candidate["id"] * 2654435761 % 4294967296
        for k in range(rounds):
            seed = (seed * 1103515245 + 12345 + k) % 2147483648
            score += ((seed >> 16) & 0xFF) / 25600.0
        scored.append((score, candidate))
    scored.sort(key=lambda item: item[0], reverse=True)
    return scored


class Shop:
    """The shop's state: engines, clients, caches; route handlers call into it."""

    def __init__(self, config: ShopConfig, switches: Switches) -> None:
        self.config = config
        self.switches = switches
        self.engine = db.make_engine(config.db_url, pool_size=config.db_pool_size, max_overflow=config.db_max_overflow, name="shop")
        self.tiny_engine = db.make_engine(config.db_url, pool_size=2, max_overflow=0, name="shop-small")
        self.payment = PaymentClient(config.payment_url, switches, timeout_s=config.payment_timeout_s, reset_timeout_s=config.breaker_reset_s)
        self.fx_sync = httpx.Client(base_url=config.payment_url, timeout=config.payment_timeout_s)
        self.pricing = requests.Session()  # http_pool_saturation: a client pool far smaller than the worker threads
        self.pricing.mount("http://", requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=FX_POOL_SIZE, pool_block=True))
        self.fx_async: httpx.AsyncClient | None = None
        self.events: OrderEvents | NoEvents | None = None
        self.sqlite = db.is_sqlite(config.db_url)
        self._currency: tuple[str, float] | None = None
        self._currency_lock = threading.Lock()
        self.recent_views: collections.deque[int] = collections.deque(maxlen=RECENT_VIEWS_KEPT)
        self.view_history: list[dict] = []
        switches.on_change(self._switch_changed)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        db.ensure_schema(self.engine, products=self.config.products)
        if self.config.kafka:
            ensure_topic(self.config.kafka_bootstrap, self.config.topic)
            self.events = OrderEvents(self.config.kafka_bootstrap, self.config.topic)
        else:
            self.events = NoEvents()

    def stop(self) -> None:
        if self.events is not None:
            self.events.close()
        self.payment.close()
        self.fx_sync.close()
        self.pricing.close()
        self.engine.dispose()
        self.tiny_engine.dispose()

    def thread_tokens(self) -> int:
        return SATURATED_THREADS if self.switches.on("worker_pool_saturation") else self.config.threads

    def _switch_changed(self, name: str, on: bool) -> None:
        # Called from the admin endpoint, on the event loop thread (the limiter lives there).
        if name == "worker_pool_saturation":
            anyio.to_thread.current_default_thread_limiter().total_tokens = self.thread_tokens()
        elif name == "memory_pressure" and not on:
            self.view_history = []

    # ------------------------------------------------------------------ helpers

    @contextmanager
    def tx(self):
        """A DB transaction on the right engine (tiny pool + held connection under db_pool_saturation)."""
        saturated = self.switches.on("db_pool_saturation")
        with db.transaction(self.tiny_engine if saturated else self.engine) as session:
            if saturated:
                time.sleep(POOL_HOLD_S)
            yield session

    def io_wait(self) -> None:
        if self.switches.on("worker_pool_saturation"):
            time.sleep(IO_WAIT_S)

    def currency(self, session: Session) -> str:
        if not self.switches.on("cacheable_reads"):
            cached = self._currency
            if cached is not None and time.monotonic() - cached[1] < CURRENCY_CACHE_TTL_S:
                return cached[0]
        value = session.scalar(select(db.Setting.value).where(db.Setting.key == "currency")) or "EUR"
        with self._currency_lock:
            self._currency = (value, time.monotonic())
        return value

    def _make_garbage(self) -> None:
        for _ in range(2000):
            node: dict = {"payload": list(range(10))}
            node["self"] = node  # a reference cycle only the cyclic GC can free

    # ------------------------------------------------------------------ routes

    def product(self, product_id: int) -> dict:
        self.io_wait()
        with self.tx() as s:
            product = s.get(db.Product, product_id)
            if product is None:
                raise HTTPException(404, f"no product {product_id}")
            data = {**product.as_dict(), "currency": self.currency(s)}
        if self.switches.on("http_pool_saturation"):
            data["prices"] = self.prices(data["price_cents"])
        if self.switches.on("memory_pressure"):
            self.view_history.append({"product": data, "viewed_at": time.time(), "snapshots": [dict(data) for _ in range(LEAK_COPIES_PER_VIEW)]})
            self._make_garbage()
        else:
            self.recent_views.append(product_id)
        return data

    def prices(self, price_cents: int) -> dict:
        """The price in every currency, one FX call each through the one-connection pricing pool."""
        out = {}
        for currency in PRICE_CURRENCIES:
            response = self.pricing.get(f"{self.config.payment_url}/fx/{currency}", timeout=self.config.payment_timeout_s)
            response.raise_for_status()
            out[currency] = round(price_cents * response.json()["rate"])
        return out

    def search(self, q: str, limit: int) -> dict:
        self.io_wait()
        if self.switches.on("hot_endpoint"):
            time.sleep(HOT_SEARCH_WAIT_S)
        term = q.strip().lower()
        if self.switches.on("slow_query"):  # anywhere in the name or the description: every row is read
            where = or_(db.contains_condition(db.Product.name, term, self.sqlite), db.contains_condition(db.Product.description, term, self.sqlite))
        else:
            where = db.prefix_condition(db.Product.name, term, self.sqlite)
        stmt = select(db.Product).where(where).order_by(db.Product.price_cents, db.Product.id).limit(limit)
        with self.tx() as s:
            items = [p.as_dict() for p in s.scalars(stmt)]
            currency = self.currency(s)
        return {"q": q, "currency": currency, "count": len(items), "items": items}

    def recommendations(self, product_id: int, limit: int) -> dict:
        self.io_wait()
        with self.tx() as s:
            product = s.get(db.Product, product_id)
            if product is None:
                raise HTTPException(404, f"no product {product_id}")
            stmt = (
                select(db.Product)
                .where(db.Product.category == product.category, db.Product.id != product.id)
                .where(db.Product.price_cents.between(product.price_cents - 500, product.price_cents + 500))
                .limit(50)
            )
            candidates = [p.as_dict() for p in s.scalars(stmt)]
            base = product.as_dict()
            currency = self.currency(s)
        rounds = CPU_SCORING_ROUNDS if self.switches.on("cpu_saturation") else 1
        scored = similarity_scores(base, candidates, rounds)[:limit]
        return {"product_id": product_id, "currency": currency, "items": [{**c, "score": round(score, 3)} for score, c in scored]}

    def export(self, limit: int) -> JSONResponse:
        self.io_wait()
        P = db.Product
        stmt = select(P.id, P.sku, P.name, P.category, P.price_cents, P.stock).order_by(P.id).limit(limit)
        with self.tx() as s:
            items = [dict(row) for row in s.execute(stmt).mappings()]
            currency = self.currency(s)
        return JSONResponse({"currency": currency, "count": len(items), "items": items})

    def place_order(self, order_in: OrderIn) -> JSONResponse:
        self.io_wait()
        if self.switches.on("connection_held_during_external_call"):
            with self.tx() as s:
                order = self._write_order(s, order_in)
                status, payment_id, error = self._charge(order)
                order.status, order.payment_id = status, payment_id
        else:
            with self.tx() as s:
                order = self._write_order(s, order_in)
            status, payment_id, error = self._charge(order)
            with self.tx() as s:
                s.execute(db.Order.__table__.update().where(db.Order.id == order.id).values(status=status, payment_id=payment_id))
        body = {"order_id": order.id, "status": status, "total_cents": order.total_cents, "currency": order.currency, "payment_id": payment_id}
        if error is not None:
            code, message = error
            return JSONResponse({**body, "error": message}, status_code=code)
        assert self.events is not None
        body["event_published"] = self.events.order_paid(order.id, order.total_cents)
        return JSONResponse(body, status_code=201)

    def _write_order(self, s: Session, order_in: OrderIn) -> db.Order:
        ids = sorted({line.product_id for line in order_in.lines})
        prices = dict(s.execute(select(db.Product.id, db.Product.price_cents).where(db.Product.id.in_(ids))).all())
        missing = [i for i in ids if i not in prices]
        if missing:
            raise HTTPException(422, f"unknown product ids: {missing}")
        order = db.Order(customer=order_in.customer, status="placed", total_cents=0, currency=self.currency(s))
        for line in order_in.lines:
            order.lines.append(db.OrderLine(product_id=line.product_id, quantity=line.quantity, price_cents=prices[line.product_id]))
            order.total_cents += line.quantity * prices[line.product_id]
        s.add(order)
        s.flush()
        return order

    def _charge(self, order: db.Order) -> tuple[str, str | None, tuple[int, str] | None]:
        try:
            answer = self.payment.charge(order.id, order.total_cents, order.currency)
        except PaymentUnavailable as exc:
            return "payment_failed", None, (503, str(exc))
        except PaymentFailed as exc:
            return "payment_failed", None, (502, str(exc))
        return "paid", str(answer.get("payment_id")), None

    def list_orders(self, customer: str, limit: int) -> dict:
        self.io_wait()
        stmt = select(db.Order).where(db.Order.customer == customer).order_by(db.Order.id.desc()).limit(limit)
        if self.switches.on("n_plus_one"):
            stmt = stmt.options(lazyload(db.Order.lines))
        else:
            stmt = stmt.options(selectinload(db.Order.lines).joinedload(db.OrderLine.product))
        with self.tx() as s:
            orders = [
                {
                    **o.as_dict(),
                    "lines": [
                        {"product_id": line.product_id, "name": line.product.name, "quantity": line.quantity, "price_cents": line.price_cents}
                        for line in o.lines
                    ],
                }
                for o in s.scalars(stmt)
            ]
        return {"customer": customer, "count": len(orders), "orders": orders}

    def get_order(self, order_id: int) -> dict:
        self.io_wait()
        with self.tx() as s:
            order = s.get(db.Order, order_id)
            if order is None:
                raise HTTPException(404, f"no order {order_id}")
            return order.as_dict()

    async def quote(self, amount_cents: int, currency: str) -> dict:
        if self.switches.on("event_loop_blocked"):
            time.sleep(BLOCKING_SLEEP_S)  # blocking call on the event loop
            response = self.fx_sync.get(f"/fx/{currency}")  # sync I/O on the event loop
        else:
            assert self.fx_async is not None
            response = await self.fx_async.get(f"/fx/{currency}")
        if response.status_code == 404:
            raise HTTPException(404, response.json().get("error", "unknown currency"))
        response.raise_for_status()
        rate = response.json()["rate"]
        return {"amount_cents": amount_cents, "currency": currency.upper(), "rate": rate, "converted_cents": round(amount_cents * rate)}

    def stats(self) -> dict:
        limiter = anyio.to_thread.current_default_thread_limiter()
        return {
            "mode": self.config.mode,
            "switches": list(self.switches.enabled()),
            "threads": {"total": limiter.total_tokens, "borrowed": limiter.borrowed_tokens},
            "db_pool": {"size": self.engine.pool.size(), "checked_out": self.engine.pool.checkedout()},
            "tiny_db_pool": {"size": self.tiny_engine.pool.size(), "checked_out": self.tiny_engine.pool.checkedout()},
            "payment": self.payment.stats(),
            "events": self.events.stats() if self.events else None,
            "view_history": len(self.view_history),
        }


class SwitchableGZip:
    """GZip responses (``Accept-Encoding: gzip``) unless ``uncompressed_response`` is on."""

    def __init__(self, app, switches: Switches) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=1000, compresslevel=6)
        self.switches = switches

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and not self.switches.on("uncompressed_response"):
            await self.gzip(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class QueryStatsHeaders:
    """Adds ``X-DB-Queries``, ``X-DB-Time-ms``, ``X-DB-Pool-Wait-ms`` to every HTTP response."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        stats, token = db.start_request_stats()

        async def send_with_stats(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-db-queries", str(stats.queries).encode()),
                    (b"x-db-time-ms", f"{stats.db_time_s * 1000:.3f}".encode()),
                    (b"x-db-pool-wait-ms", f"{stats.pool_wait_s * 1000:.3f}".encode()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_stats)
        finally:
            db.end_request_stats(token)


def create_app(config: ShopConfig, switches: Switches) -> FastAPI:
    shop = Shop(config, switches)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await asyncio.to_thread(shop.start)
        anyio.to_thread.current_default_thread_limiter().total_tokens = shop.thread_tokens()
        shop.fx_async = httpx.AsyncClient(base_url=config.payment_url, timeout=config.payment_timeout_s)
        try:
            yield
        finally:
            await shop.fx_async.aclose()
            await asyncio.to_thread(shop.stop)

    app = FastAPI(title="demo shop", lifespan=lifespan)
    app.state.shop = shop
    app.include_router(admin_router(switches))
    app.add_middleware(SwitchableGZip, switches=switches)
    app.add_middleware(QueryStatsHeaders)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", **config.mode}

    @app.get("/admin/stats")
    async def admin_stats() -> dict:
        return shop.stats()

    @app.get("/products/{product_id}")
    def get_product(product_id: int) -> dict:
        return shop.product(product_id)

    @app.get("/search")
    def search(q: str = Query(min_length=1, max_length=100), limit: int = Query(20, ge=1, le=100)) -> dict:
        return shop.search(q, limit)

    @app.get("/recommendations/{product_id}")
    def recommendations(product_id: int, limit: int = Query(5, ge=1, le=50)) -> dict:
        return shop.recommendations(product_id, limit)

    @app.get("/catalog/export")
    def export(limit: int = Query(2500, ge=1, le=20000)) -> JSONResponse:
        return shop.export(limit)

    @app.get("/quote")
    async def quote(amount_cents: int = Query(ge=0), currency: str = Query("USD", min_length=3, max_length=3)) -> dict:
        return await shop.quote(amount_cents, currency)

    @app.post("/orders")
    def place_order(order: OrderIn):
        return shop.place_order(order)

    @app.get("/orders")
    def list_orders(customer: str = Query(min_length=1, max_length=64), limit: int = Query(10, ge=1, le=100)) -> dict:
        return shop.list_orders(customer, limit)

    @app.get("/orders/{order_id}")
    def get_order(order_id: int) -> dict:
        return shop.get_order(order_id)

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shop.app", description="demo shop service with bottleneck switches")
    parser.add_argument("--host", default=env("SHOP_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env("SHOP_PORT", "8000")))
    parser.add_argument(
        "--db", default=env("SHOP_DB_URL", "postgresql://postgres@127.0.0.1:5432/shop"), help="PostgreSQL DSN, SQLAlchemy URL, or sqlite:///FILE"
    )
    parser.add_argument("--kafka", default=env("SHOP_KAFKA_BOOTSTRAP", "127.0.0.1:9092"), help="Kafka bootstrap servers, or 'none' to run without Kafka")
    parser.add_argument("--topic", default=env("SHOP_KAFKA_TOPIC", DEFAULT_TOPIC))
    parser.add_argument("--payment-url", default=env("SHOP_PAYMENT_URL", "http://127.0.0.1:8001"))
    parser.add_argument("--switches", default=env(ENV_VAR, ""), help="comma-separated switches to turn on (default $SHOP_SWITCHES)")
    parser.add_argument("--threads", type=int, default=16, help="anyio worker threads for sync routes")
    parser.add_argument("--db-pool-size", type=int, default=10)
    parser.add_argument("--db-max-overflow", type=int, default=5)
    parser.add_argument("--payment-timeout-s", type=float, default=1.0)
    parser.add_argument("--breaker-reset-s", type=float, default=10.0, help="seconds the payment breaker stays open before a trial call")
    parser.add_argument("--products", type=int, default=db.SEED_PRODUCTS, help="products to seed into an empty database")
    args = parser.parse_args(argv)
    try:
        switches = Switches.from_text("shop", args.switches, unavailable=None if kafka_enabled(args.kafka) else NO_KAFKA_UNAVAILABLE)
        config = ShopConfig(
            db_url=db.sqlalchemy_url(args.db),
            kafka_bootstrap=args.kafka,
            payment_url=args.payment_url,
            topic=args.topic,
            threads=args.threads,
            db_pool_size=args.db_pool_size,
            db_max_overflow=args.db_max_overflow,
            payment_timeout_s=args.payment_timeout_s,
            breaker_reset_s=args.breaker_reset_s,
            products=args.products,
        )
    except (SwitchError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app = create_app(config, switches)
    fallback = ", ".join(label for label, on in (("SQLite", config.mode["database"] == "sqlite"), ("no Kafka", not config.kafka)) if on)
    mode = f" [{fallback}]" if fallback else ""
    run(app, args.host, args.port, lambda: f"shop ready http://{args.host}:{args.port} {switches.describe()}{mode}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
