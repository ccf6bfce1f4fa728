"""The demo shop's fallback mode: SQLite instead of PostgreSQL, no Kafka.

What ``make demo`` runs where PostgreSQL or Java is not installed.  The schema and seed
tests work on a SQLite file in-process (``shop.db``); the rest start the real processes
(``shop.launch.ShopStack`` with ``sqlite:///…`` and ``kafka=None``: payment + shop, no
fulfilment worker) and check the routes, the ``slow_query`` and ``db_pool_saturation``
switches on SQLite, Kafka-less order placement, and that ``consumer_lag`` is refused with
the reason everywhere it can be asked for; and SQLite with Kafka (the fulfilment worker on the same file).
"""

from __future__ import annotations

import concurrent.futures
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from shop import db
from shop.launch import LaunchError, ShopStack, SwitchUnavailable
from sqlalchemy import func, select, text

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


# --------------------------------------------------------------------------- shop.db on a SQLite file


def test_sqlite_urls_name_a_file():
    assert db.sqlalchemy_url("sqlite:////tmp/shop.sqlite") == "sqlite:////tmp/shop.sqlite"
    assert db.backend_name("sqlite:////tmp/shop.sqlite") == "sqlite"
    assert db.backend_name("postgresql://u@h/db") == "postgresql"
    for url in ("sqlite://", "sqlite:///:memory:"):
        with pytest.raises(ValueError, match="not a SQLite database file"):
            db.sqlalchemy_url(url)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Iterator:
    engine = db.make_engine(f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'shop.sqlite'}", pool_size=2, max_overflow=0)
    assert db.ensure_schema(engine, products=5000) is True
    yield engine
    engine.dispose()


def test_schema_and_seed_on_sqlite_match_postgresql_and_are_written_once(seeded):
    assert db.ensure_schema(seeded, products=5000) is False
    with db.transaction(seeded) as s:
        assert s.scalar(select(func.count()).select_from(db.Product)) == 5000
        assert s.get(db.Product, 1).name == "wooden lamp 1"  # PostgreSQL's seed formula: ARRAY[1 + i % 20], ARRAY[1 + (i / 20) % 25]
        assert s.get(db.Product, 4321).as_dict() == {k: v for k, v in db.seed_product(4321).items() if k != "description"}
        assert s.scalar(select(db.Setting.value).where(db.Setting.key == "currency")) == "EUR"
        orders = s.scalars(select(db.Order)).all()
        assert len(orders) == db.SEED_ORDERS and {o.status for o in orders} == {"fulfilled"}
        assert all(o.total_cents == sum(line.quantity * line.price_cents for line in o.lines) and len(o.lines) == 4 for o in orders)
        new = db.Order(customer="c", status="placed", total_cents=1, currency="EUR")
        s.add(new)
        s.flush()
        assert new.id == db.SEED_ORDERS + 1 and new.created_at is not None  # INTEGER PRIMARY KEY numbers on


def _plan(engine, condition) -> str:
    stmt = select(db.Product).where(condition).order_by(db.Product.price_cents).limit(20)
    compiled = stmt.compile(engine)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), tuple(compiled.params[k] for k in compiled.positiontup)).all()
    return " / ".join(row[-1] for row in rows)


def test_prefix_search_uses_the_index_and_contains_search_scans_the_table(seeded):
    assert "USING INDEX products_name_prefix_idx" in _plan(seeded, db.prefix_condition(db.Product.name, "steel lamp", sqlite=True))
    assert "SCAN products" in _plan(seeded, db.contains_condition(db.Product.name, "steel lamp", sqlite=True))
    with seeded.connect() as conn:
        names = lambda cond: {row[0] for row in conn.execute(select(db.Product.name).where(cond))}  # noqa: E731
        assert names(db.prefix_condition(db.Product.name, "lamp", True)) == set()  # no name starts with "lamp"
        assert len(names(db.contains_condition(db.Product.name, "lamp", True))) == 200  # i % 500 < 20 in 1..5000
        assert names(db.contains_condition(db.Product.name, "50%", True)) == set()  # a literal %, not a wildcard


# --------------------------------------------------------------------------- the processes: payment + shop, no Kafka


#: One keep-alive client for the module: bursts arrive together instead of each paying for a new client and connection.
HTTP = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=32, max_keepalive_connections=32))


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[ShopStack]:
    workdir = tmp_path_factory.mktemp("shop-sqlite")
    launched = ShopStack(f"sqlite:///{workdir / 'shop.sqlite'}", None, log_dir=workdir / "logs")
    try:
        launched.start()
    except LaunchError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield launched
    finally:
        HTTP.close()
        launched.stop()
    assert all(proc.proc.poll() is not None for proc in launched.processes.values())


def _get(stack: ShopStack, path: str) -> httpx.Response:
    return HTTP.get(stack.shop_url + path)


def _db_ms(response: httpx.Response, name: str) -> float:
    return float(response.headers[name])


def test_only_payment_and_the_shop_run_and_say_which_mode(stack):
    assert set(stack.processes) == {"payment", "shop"} and stack.mode == {"database": "sqlite", "kafka": False}
    assert stack.processes["shop"].ready_line.endswith("switches=- [SQLite, no Kafka]")
    assert _get(stack, "/health").json() == {"status": "ok", "database": "sqlite", "kafka": False}
    stats = _get(stack, "/admin/stats").json()
    assert stats["mode"] == {"database": "sqlite", "kafka": False} and stats["events"]["kafka"] is False


def test_routes_answer_on_sqlite(stack):
    product = _get(stack, "/products/123456").json()
    assert product["sku"] == "SKU-0123456" and product["currency"] == "EUR"
    assert _get(stack, "/recommendations/77").json()["items"]
    assert _get(stack, "/catalog/export?limit=100").json()["count"] == 100
    orders = _get(stack, "/orders?customer=customer-3&limit=5").json()["orders"]
    assert len(orders) == 5 and all(len(o["lines"]) == 4 and o["lines"][0]["name"] for o in orders)
    assert _get(stack, "/products/999999").status_code == 404


def test_orders_are_paid_without_kafka_and_counted_as_not_published(stack):
    before = _get(stack, "/admin/stats").json()["events"]["not_published"]
    response = HTTP.post(stack.shop_url + "/orders", json={"customer": "sqlite-it", "lines": [{"product_id": 101, "quantity": 2}]})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "paid" and body["event_published"] is False
    assert body["total_cents"] == 2 * db.seed_product(101)["price_cents"]
    assert _get(stack, f"/orders/{body['order_id']}").json()["status"] == "paid"  # no fulfilment worker
    assert _get(stack, "/admin/stats").json()["events"]["not_published"] == before + 1


def test_concurrent_orders_on_sqlite_all_succeed(stack):
    def order(i: int) -> httpx.Response:
        return HTTP.post(stack.shop_url + "/orders", json={"customer": f"burst-{i}", "lines": [{"product_id": 1 + i, "quantity": 1}]})

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(order, range(24)))
    assert [r.status_code for r in responses] == [201] * 24, [r.text for r in responses if r.status_code != 201]
    assert len({r.json()["order_id"] for r in responses}) == 24


def _switched(stack: ShopStack, **switches: bool):
    return stack.set_switches(**switches)["shop"]


def test_slow_query_on_sqlite_scans_instead_of_using_the_prefix_index(stack):
    path = "/search?q=steel+lamp"
    _get(stack, path)
    indexed = [_get(stack, path) for _ in range(5)]
    assert _switched(stack, slow_query=True)["slow_query"] is True
    try:
        scanned = [_get(stack, path) for _ in range(5)]
        contains = _get(stack, "/search?q=lamp").json()
    finally:
        _switched(stack, slow_query=False)
    assert indexed[0].json()["items"] == scanned[0].json()["items"]  # same answer, different plan
    assert _get(stack, "/search?q=lamp").json()["count"] == 0 and contains["count"] == 20  # "contains" really is the LIKE '%term%'
    indexed_ms = statistics.median(_db_ms(r, "x-db-time-ms") for r in indexed)
    scanned_ms = statistics.median(_db_ms(r, "x-db-time-ms") for r in scanned)
    assert scanned_ms >= 10 * indexed_ms, (indexed_ms, scanned_ms)


def _burst(stack: ShopStack, path: str, n: int) -> list[httpx.Response]:
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: _get(stack, path), range(n)))


def test_db_pool_saturation_on_sqlite_makes_requests_wait_for_a_pooled_connection(stack):
    _burst(stack, "/products/7", 12)  # warm the normal pool
    normal = _burst(stack, "/products/7", 12)
    _switched(stack, db_pool_saturation=True)
    try:
        saturated = _burst(stack, "/products/7", 12)
        assert _get(stack, "/admin/stats").json()["tiny_db_pool"]["size"] == 2
    finally:
        _switched(stack, db_pool_saturation=False)
    assert all(r.status_code == 200 for r in normal + saturated)
    normal_wait = max(_db_ms(r, "x-db-pool-wait-ms") for r in normal)
    saturated_wait = max(_db_ms(r, "x-db-pool-wait-ms") for r in saturated)
    # 12 requests, 2 connections each held 80 ms: the last waits 400 ms when all arrive at once,
    # two holds at least when a busy host spreads their arrival
    assert saturated_wait >= 2 * 80 and saturated_wait > 3 * normal_wait, (normal_wait, saturated_wait)
    assert statistics.median(_db_ms(r, "x-db-time-ms") for r in saturated) < saturated_wait


def test_consumer_lag_is_refused_with_the_reason_without_kafka(stack):
    with pytest.raises(SwitchUnavailable, match="'consumer_lag' is unavailable: it acts in the fulfilment process, which does not run without Kafka"):
        stack.set_switches(consumer_lag=True)
    response = HTTP.post(stack.shop_url + "/admin/switches", json={"consumer_lag": True, "slow_query": True})
    assert response.status_code == 422 and "runs without Kafka" in response.json()["detail"]
    state = _get(stack, "/admin/switches").json()
    assert state["switches"]["slow_query"] is False and "consumer_lag" in state["unavailable"]


def test_consumer_lag_at_start_without_kafka_stops_the_shop_with_the_reason(tmp_path):
    stack = ShopStack(f"sqlite:///{tmp_path / 'shop.sqlite'}", "none", switches="consumer_lag", log_dir=tmp_path, ready_timeout_s=60)
    with pytest.raises(LaunchError, match="exited with code 2") as info:
        stack.start()
    assert "'consumer_lag' is unavailable here: the shop runs without Kafka" in str(info.value)
    assert all(proc.proc.poll() is not None for proc in stack.processes.values())


def test_the_fulfilment_worker_refuses_to_run_without_kafka(tmp_path):
    argv = [sys.executable, "-m", "shop.fulfilment", "--db", f"sqlite:///{tmp_path / 'shop.sqlite'}", "--kafka", "none"]
    done = subprocess.run(argv, cwd=EXAMPLES, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "consumes Kafka and cannot run with --kafka 'none'" in done.stderr


def test_sqlite_file_is_shared_by_the_pooled_connections(stack):
    with httpx.Client(timeout=30) as http:
        created = http.post(stack.shop_url + "/orders", json={"customer": "shared", "lines": [{"product_id": 5, "quantity": 1}]}).json()
    engine = db.make_engine(stack.db, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT status FROM orders WHERE id = :id"), {"id": created["order_id"]}).scalar() == "paid"
    finally:
        engine.dispose()


def test_sqlite_with_kafka_runs_the_fulfilment_worker_on_the_same_file(kafka, tmp_path):
    """Each part falls back on its own: no PostgreSQL but Kafka → the worker fulfils orders in the SQLite file."""
    with (
        ShopStack(f"sqlite:///{tmp_path / 'shop.sqlite'}", kafka.bootstrap, topic=f"orders-{tmp_path.name[-12:]}", log_dir=tmp_path) as stack,
        httpx.Client(timeout=30) as http,
    ):
        assert stack.mode == {"database": "sqlite", "kafka": True} and set(stack.processes) == {"payment", "shop", "fulfilment"}
        ids = []
        for i in range(5):
            body = http.post(stack.shop_url + "/orders", json={"customer": "sqlite-kafka", "lines": [{"product_id": 3 + i, "quantity": 1}]}).json()
            assert body["status"] == "paid" and body["event_published"] is True
            ids.append(body["order_id"])
        deadline = time.monotonic() + 30
        statuses: list[str] = []
        while time.monotonic() < deadline:
            statuses = [http.get(f"{stack.shop_url}/orders/{i}").json()["status"] for i in ids]
            if set(statuses) == {"fulfilled"}:
                break
            time.sleep(0.3)
        assert statuses == ["fulfilled"] * 5
        assert http.get(stack.fulfilment_url + "/admin/stats").json()["errors"] == 0
