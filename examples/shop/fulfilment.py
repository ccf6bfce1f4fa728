"""The demo fulfilment worker: consumes ``order-paid`` events and marks orders fulfilled.

Usage::

    python -m shop.fulfilment --port 8002 --db postgresql://postgres@127.0.0.1:5432/shop \\
        --kafka 127.0.0.1:9092 [--switches consumer_lag]

A confluent-kafka consumer in group ``fulfilment`` reads topic ``orders`` (from the
earliest offset when the group is new), and for each event runs
``UPDATE orders SET status = 'fulfilled', fulfilled_at = CURRENT_TIMESTAMP WHERE id = :id AND status = 'paid'``
through SQLAlchemy (PostgreSQL, or the shop's SQLite file) (idempotent: a redelivered event changes nothing), then commits the
offset.  A malformed message is counted (``rejected``) and skipped, never fatal; a
database error is counted (``errors``) and the message is retried after a second.

It also serves a small HTTP API (uvicorn) for its switch and counters:
``GET /health``, ``GET /admin/stats`` (``processed``, ``fulfilled``, ``rejected``,
``errors``, ``last_order_id``), ``GET/POST /admin/switches``; and prints
``fulfilment ready http://127.0.0.1:8002 switches=...`` once both the HTTP server and the
consumer run.

Switch owned by the worker
--------------------------
``consumer_lag``  each message takes an extra ``--lag-sleep-s`` (default 0.5 s) to
                  process, so while orders keep coming the group falls behind.

The worker needs Kafka: ``--kafka none`` is an error (exit 2) — without Kafka the shop
publishes no events and the demo runs no fulfilment worker.

Environment (flags override): ``FULFILMENT_HOST`` (127.0.0.1), ``FULFILMENT_PORT`` (8002),
``SHOP_DB_URL``, ``SHOP_KAFKA_BOOTSTRAP``, ``SHOP_KAFKA_TOPIC``, ``SHOP_SWITCHES``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from contextlib import asynccontextmanager

from confluent_kafka import Consumer, KafkaError, TopicPartition
from fastapi import FastAPI
from sqlalchemy import text

from shop import db
from shop.events import DEFAULT_TOPIC, FULFILMENT_GROUP, decode_event, ensure_topic, kafka_enabled
from shop.serving import env, run
from shop.switches import ENV_VAR, SwitchError, Switches, admin_router

FULFIL_SQL = text("UPDATE orders SET status = 'fulfilled', fulfilled_at = CURRENT_TIMESTAMP WHERE id = :id AND status = 'paid' RETURNING id")


class FulfilmentWorker:
    """The consumer loop, run in its own thread."""

    def __init__(self, db_url: str, bootstrap: str, topic: str, switches: Switches, lag_sleep_s: float = 0.5, products: int = db.SEED_PRODUCTS) -> None:
        self.db_url = db_url
        self.bootstrap = bootstrap
        self.topic = topic
        self.switches = switches
        self.lag_sleep_s = lag_sleep_s
        self.products = products
        self.engine = db.make_engine(db_url, pool_size=2, max_overflow=0, name="fulfilment")
        self.consumer: Consumer | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.counters = {"processed": 0, "fulfilled": 0, "rejected": 0, "errors": 0, "last_order_id": None}
        self.assigned = threading.Event()

    def start(self) -> None:
        db.ensure_schema(self.engine, products=self.products)
        ensure_topic(self.bootstrap, self.topic)
        self.consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": FULFILMENT_GROUP,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "client.id": "fulfilment",
            }
        )
        self.consumer.subscribe([self.topic], on_assign=lambda consumer, partitions: self.assigned.set())
        self._thread = threading.Thread(target=self._loop, name="fulfilment-consumer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        if self.consumer is not None:
            self.consumer.close()
        self.engine.dispose()

    def _count(self, key: str, order_id: int | None = None) -> None:
        with self._lock:
            self.counters[key] += 1
            if order_id is not None:
                self.counters["last_order_id"] = order_id

    def _loop(self) -> None:
        assert self.consumer is not None
        while not self._stop.is_set():
            msg = self.consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    self._count("errors")
                continue
            try:
                self.handle(msg.value())
            except Exception:  # a DB outage must not kill the worker: rewind and retry the message
                self._count("errors")
                self.consumer.seek(TopicPartition(msg.topic(), msg.partition(), msg.offset()))
                time.sleep(1.0)
                continue
            self.consumer.commit(message=msg, asynchronous=True)

    def handle(self, value: bytes | None) -> None:
        try:
            event = decode_event(value)
        except ValueError:
            self._count("rejected")
            return
        if self.switches.on("consumer_lag"):
            time.sleep(self.lag_sleep_s)
        with self.engine.begin() as conn:
            fulfilled = conn.execute(FULFIL_SQL, {"id": event["order_id"]}).first() is not None
        self._count("processed", event["order_id"])
        if fulfilled:
            self._count("fulfilled")

    def stats(self) -> dict:
        with self._lock:
            return dict(self.counters)


def create_app(worker: FulfilmentWorker) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await asyncio.to_thread(worker.start)
        try:
            yield
        finally:
            await asyncio.to_thread(worker.stop)

    app = FastAPI(title="demo fulfilment worker", lifespan=lifespan)
    app.include_router(admin_router(worker.switches))

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "partitions_assigned": worker.assigned.is_set()}

    @app.get("/admin/stats")
    async def stats() -> dict:
        return worker.stats()

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shop.fulfilment", description="demo fulfilment worker (Kafka consumer group 'fulfilment')")
    parser.add_argument("--host", default=env("FULFILMENT_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env("FULFILMENT_PORT", "8002")))
    parser.add_argument("--db", default=env("SHOP_DB_URL", "postgresql://postgres@127.0.0.1:5432/shop"))
    parser.add_argument("--kafka", default=env("SHOP_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--topic", default=env("SHOP_KAFKA_TOPIC", DEFAULT_TOPIC))
    parser.add_argument("--switches", default=env(ENV_VAR, ""), help="comma-separated switches to turn on (default $SHOP_SWITCHES)")
    parser.add_argument("--lag-sleep-s", type=float, default=0.5, help="extra processing time per message under consumer_lag")
    parser.add_argument("--products", type=int, default=db.SEED_PRODUCTS, help="products to seed if the worker creates the schema first")
    args = parser.parse_args(argv)
    try:
        switches = Switches.from_text("fulfilment", args.switches)
        db_url = db.sqlalchemy_url(args.db)
        if not kafka_enabled(args.kafka):
            raise ValueError(f"the fulfilment worker consumes Kafka and cannot run with --kafka {args.kafka!r}; give a bootstrap server (host:port)")
    except (SwitchError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    worker = FulfilmentWorker(db_url, args.kafka, args.topic, switches, lag_sleep_s=args.lag_sleep_s, products=args.products)
    app = create_app(worker)
    run(app, args.host, args.port, lambda: f"fulfilment ready http://{args.host}:{args.port} {switches.describe()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
