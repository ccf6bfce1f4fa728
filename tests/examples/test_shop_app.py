"""Unit tests for the shop's pure pieces: LIKE escaping, scoring cost, DSN handling, event format, admin wiring."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from shop import db
from shop.app import ShopConfig, create_app, similarity_scores
from shop.db import escape_like
from shop.events import EVENT_ORDER_PAID, decode_event, encode_order_paid
from shop.switches import Switches


def test_escape_like_makes_wildcards_literal():
    assert escape_like("50%_off\\") == "50\\%\\_off\\\\"
    assert escape_like("steel lamp") == "steel lamp"


def test_similarity_scores_rank_closest_price_first_without_extra_rounds():
    product = {"id": 1, "price_cents": 1000}
    candidates = [{"id": 2, "price_cents": 1900}, {"id": 3, "price_cents": 1010}, {"id": 4, "price_cents": 400}]
    ranked = [c["id"] for _, c in similarity_scores(product, candidates, rounds=0)]
    assert ranked == [3, 4, 2]


def test_similarity_scores_are_deterministic_for_any_rounds():
    product = {"id": 1, "price_cents": 1000}
    candidates = [{"id": i, "price_cents": 1000 + i} for i in range(2, 12)]
    assert similarity_scores(product, candidates, 50) == similarity_scores(product, candidates, 50)


@pytest.mark.parametrize(
    ("dsn", "url"),
    [
        ("postgresql://postgres@127.0.0.1:5432/shop", "postgresql+psycopg://postgres@127.0.0.1:5432/shop"),
        ("postgres://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_sqlalchemy_url(dsn, url):
    assert db.sqlalchemy_url(dsn) == url


def test_sqlalchemy_url_rejects_other_databases():
    with pytest.raises(ValueError, match="not a PostgreSQL DSN or SQLite URL"):
        db.sqlalchemy_url("mysql://u@h/shop")


def test_order_paid_event_round_trip():
    event = decode_event(encode_order_paid(42, 1234))
    assert (event["type"], event["order_id"], event["total_cents"]) == (EVENT_ORDER_PAID, 42, 1234)


@pytest.mark.parametrize("value", [None, b"\xff\xfe", b"not json", b"[1, 2]", b'{"type": "order-paid"}', b'{"type": "other", "order_id": 1}'])
def test_decode_event_rejects_malformed_messages(value):
    with pytest.raises(ValueError):
        decode_event(value)


def test_shop_admin_switch_resizes_the_worker_threadpool():
    """The shop's own admin endpoint (lifespan not started: no DB or Kafka is touched)."""
    switches = Switches("shop")
    app = create_app(
        ShopConfig(db_url="postgresql://nobody@127.0.0.1:1/none", kafka_bootstrap="127.0.0.1:1", payment_url="http://127.0.0.1:1", threads=12), switches
    )
    client = TestClient(app)  # not entered as a context manager: the lifespan (DB, Kafka) does not run
    assert client.post("/admin/switches", json={"worker_pool_saturation": True}).status_code == 200
    assert app.state.shop.thread_tokens() == 4
    assert client.post("/admin/switches", json={"consumer_lag": True}).status_code == 422
    assert switches.enabled() == ("worker_pool_saturation",)


def test_fulfilment_counts_and_skips_malformed_messages():
    from shop.fulfilment import FulfilmentWorker

    worker = FulfilmentWorker("postgresql://nobody@127.0.0.1:1/none", "127.0.0.1:1", "orders", Switches("fulfilment"))
    worker.handle(b"not json")
    worker.handle(None)
    assert worker.stats() == {"processed": 0, "fulfilled": 0, "rejected": 2, "errors": 0, "last_order_id": None}
