"""The demo shop end to end: payment + shop + fulfilment as real processes on real PostgreSQL and Kafka.

The three processes are started once for this module by ``shop.launch.ShopStack``
(``python -m shop.payment``, ``shop.app``, ``shop.fulfilment`` on free ports, with their
own database and topic) and killed by process group at the end.  The tests place real orders and check that each bottleneck
switch really injects its cause at the application level: query counts and DB time
(the shop's ``X-DB-*`` response headers), pool waits, breaker state, calls received by
the payment service, PostgreSQL's own ``pg_stat_activity``, bytes on the wire.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import statistics
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from shop.launch import LaunchError, ShopStack

LAG_SLEEP_S = 0.4
HANG_S = 1.5


class Stack:
    def __init__(self, dsn: str, launched: ShopStack) -> None:
        self.dsn, self.launched = dsn, launched
        self.shop, self.payment, self.fulfilment = launched.shop_url, launched.payment_url, launched.fulfilment_url
        self.ready_lines = {name: proc.ready_line or "" for name, proc in launched.processes.items()}
        self.shop_pid = launched.processes["shop"].pid
        self.http = httpx.Client(timeout=30)

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.http.get(self.shop + path, **kwargs)

    def order(self, customer: str = "it-customer", lines: list[tuple[int, int]] | None = None) -> httpx.Response:
        body = {"customer": customer, "lines": [{"product_id": p, "quantity": q} for p, q in (lines or [(11, 2), (12, 1)])]}
        return self.http.post(self.shop + "/orders", json=body)

    def stats(self, base: str) -> dict:
        return self.http.get(base + "/admin/stats").raise_for_status().json()

    @contextlib.contextmanager
    def switched(self, base: str, **switches: bool) -> Iterator[None]:
        """Turn switches on one process for the duration of a block (always turned back off)."""
        self.http.post(base + "/admin/switches", json=switches).raise_for_status()
        try:
            yield
        finally:
            self.http.post(base + "/admin/switches", json=dict.fromkeys(switches, False)).raise_for_status()

    def order_status(self, order_id: int) -> str:
        with psycopg.connect(self.dsn) as conn:
            return conn.execute("SELECT status FROM orders WHERE id = %s", (order_id,)).fetchone()[0]

    def wait_status(self, order_id: int, status: str, timeout_s: float = 30) -> str:
        deadline = time.monotonic() + timeout_s
        current = self.order_status(order_id)
        while current != status and time.monotonic() < deadline:
            time.sleep(0.1)
            current = self.order_status(order_id)
        return current


@pytest.fixture(scope="module")
def stack(postgres, kafka, tmp_path_factory) -> Iterator[Stack]:
    dbname = f"shop_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {dbname}")
    dsn = f"postgresql://postgres@127.0.0.1:{postgres.port}/{dbname}"
    launched = ShopStack(
        dsn,
        kafka.bootstrap,
        topic=f"orders-{uuid.uuid4().hex[:8]}",
        log_dir=tmp_path_factory.mktemp("shop-logs"),
        shop_args=["--breaker-reset-s", "2"],
        payment_args=["--hang-s", str(HANG_S)],
        fulfilment_args=["--lag-sleep-s", str(LAG_SLEEP_S)],
    )
    try:
        launched.start()
    except LaunchError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        stack = Stack(dsn, launched)
        yield stack
        stack.http.close()
    finally:
        launched.stop()
    assert all(proc.proc.poll() is not None for proc in launched.processes.values())


def _headers_ms(response: httpx.Response, name: str) -> float:
    return float(response.headers[name])


# --------------------------------------------------------------------------- healthy path


def test_each_process_prints_one_ready_line(stack):
    assert stack.ready_lines["shop"].startswith("shop ready http://127.0.0.1:")
    assert stack.ready_lines["payment"].startswith("payment ready http://127.0.0.1:")
    assert stack.ready_lines["fulfilment"].startswith("fulfilment ready http://127.0.0.1:")
    assert all(line.endswith("switches=-") for line in stack.ready_lines.values())


def test_schema_is_seeded_with_200k_products(stack):
    with psycopg.connect(stack.dsn) as conn:
        assert conn.execute("SELECT count(*) FROM products").fetchone()[0] == 200_000
        assert conn.execute("SELECT value FROM settings WHERE key = 'currency'").fetchone()[0] == "EUR"


def test_order_is_paid_published_and_fulfilled_by_the_worker(stack):
    before = stack.stats(stack.fulfilment)["fulfilled"]
    response = stack.order(lines=[(101, 2), (202, 1)])
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "paid" and body["event_published"] is True
    with psycopg.connect(stack.dsn) as conn:
        prices = dict(conn.execute("SELECT id, price_cents FROM products WHERE id IN (101, 202)").fetchall())
    assert body["total_cents"] == 2 * prices[101] + prices[202]
    assert stack.wait_status(body["order_id"], "fulfilled") == "fulfilled"
    assert stack.get(f"/orders/{body['order_id']}").json()["fulfilled_at"] is not None
    assert stack.stats(stack.fulfilment)["fulfilled"] >= before + 1


def test_bad_orders_are_refused_and_nothing_is_written(stack):
    with psycopg.connect(stack.dsn) as conn:
        count_before = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    assert stack.order(lines=[(999_999_999, 1)]).status_code == 422
    assert stack.http.post(stack.shop + "/orders", json={"customer": "x", "lines": []}).status_code == 422
    with psycopg.connect(stack.dsn) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == count_before


def test_all_switches_off_the_default_load_mix_runs_without_errors(stack):
    import asyncio

    from shop.load import run_load

    result = asyncio.run(run_load(stack.shop, rate_rps=20, duration_s=3, concurrency=16, seed=11, progress=None))
    assert result.sent == 60
    assert result.errors == 0, result.status_counts
    assert stack.stats(stack.shop)["view_history"] == 0


# --------------------------------------------------------------------------- switches


def test_n_plus_one_issues_one_query_per_order_and_per_line(stack):
    path = "/orders?customer=customer-1&limit=10"
    batched = stack.get(path)
    with stack.switched(stack.shop, n_plus_one=True):
        lazy = stack.get(path)
    assert batched.json() == lazy.json()
    orders = lazy.json()["orders"]
    distinct_products = {line["product_id"] for o in orders for line in o["lines"]}
    assert len(orders) == 10
    assert int(batched.headers["x-db-queries"]) <= 3
    assert int(lazy.headers["x-db-queries"]) >= 1 + len(orders) + len(distinct_products)


def test_slow_query_makes_search_db_time_ten_times_longer(stack):
    path = "/search?q=steel+lamp"
    stack.get(path)
    indexed = [stack.get(path) for _ in range(5)]
    with stack.switched(stack.shop, slow_query=True):
        scanned = [stack.get(path) for _ in range(5)]
    assert indexed[0].json()["items"] == scanned[0].json()["items"]  # same answer, different plan
    indexed_ms = statistics.median(_headers_ms(r, "x-db-time-ms") for r in indexed)
    scanned_ms = statistics.median(_headers_ms(r, "x-db-time-ms") for r in scanned)
    assert scanned_ms >= 10 * indexed_ms, (indexed_ms, scanned_ms)


def _burst(stack: Stack, path: str, n: int) -> list[httpx.Response]:
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: stack.get(path), range(n)))


def test_db_pool_saturation_makes_concurrent_requests_wait_for_a_connection(stack):
    _burst(stack, "/products/7", 12)  # warm the normal pool
    normal = _burst(stack, "/products/7", 12)
    with stack.switched(stack.shop, db_pool_saturation=True):
        saturated = _burst(stack, "/products/7", 12)
        assert stack.stats(stack.shop)["tiny_db_pool"]["size"] == 2
    assert all(r.status_code == 200 for r in normal + saturated)
    normal_wait = max(_headers_ms(r, "x-db-pool-wait-ms") for r in normal)
    saturated_wait = max(_headers_ms(r, "x-db-pool-wait-ms") for r in saturated)
    # 12 requests through 2 connections each held >= 50 ms: the last waits >= 250 ms
    assert saturated_wait >= 200
    assert saturated_wait > 3 * normal_wait
    # the queries themselves stay fast
    assert statistics.median(_headers_ms(r, "x-db-time-ms") for r in saturated) < saturated_wait


def test_circuit_open_opens_the_breaker_and_rejects_without_calling(stack):
    received_before = stack.stats(stack.payment)["payments_received"]
    with stack.switched(stack.payment, circuit_open=True):
        codes = [stack.order().status_code for _ in range(8)]
        shop_stats = stack.stats(stack.shop)["payment"]
        received = stack.stats(stack.payment)["payments_received"] - received_before
    assert codes == [502] * 5 + [503] * 3
    assert shop_stats["breaker_state"] == "open"
    assert shop_stats["rejected"] >= 3
    assert received == 5  # rejected calls never reach the payment service
    deadline = time.monotonic() + 15  # breaker reset timeout is 2 s in this module
    response = stack.order()
    while response.status_code != 201 and time.monotonic() < deadline:
        time.sleep(0.5)
        response = stack.order()
    assert response.status_code == 201
    assert stack.stats(stack.shop)["payment"]["breaker_state"] == "closed"


def test_retry_storm_multiplies_payment_calls(stack):
    def calls_for(orders: int) -> tuple[list[int], int]:
        before = stack.stats(stack.payment)["payments_received"]
        codes = [stack.order().status_code for _ in range(orders)]
        return codes, stack.stats(stack.payment)["payments_received"] - before

    with stack.switched(stack.payment, retry_storm=True):
        single_codes, single_calls = calls_for(3)
        with stack.switched(stack.shop, retry_storm=True):
            retried_codes, retried_calls = calls_for(6)
    assert single_calls == 3 and 502 in single_codes  # one attempt per order, failures surface
    assert retried_codes == [201] * 6  # retries hide the failures ...
    assert retried_calls >= 2 * 6  # ... by multiplying the calls


def test_missing_timeout_waits_out_a_hanging_payment_service(stack):
    with stack.switched(stack.payment, missing_timeout=True):
        with_timeout = stack.order()
        with stack.switched(stack.shop, missing_timeout=True):
            started = time.monotonic()
            without_timeout = stack.order()
            without_timeout_s = time.monotonic() - started
    assert with_timeout.status_code == 502 and "timed out" in with_timeout.json()["error"]
    assert without_timeout.status_code == 201
    assert without_timeout_s >= HANG_S  # waited the hang out instead of giving up after 1 s


def _idle_in_transaction(dsn: str) -> int:
    """Sessions of the shop's database sitting in an open transaction for over 100 ms."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'"
            " AND clock_timestamp() - state_change > interval '100 milliseconds' AND pid <> pg_backend_pid()"
        ).fetchone()[0]


def test_connection_held_during_external_call_keeps_a_transaction_open(stack):
    def max_idle_in_tx_while_ordering() -> tuple[int, int]:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            future = pool.submit(stack.order)
            seen = 0
            while not future.done():
                seen = max(seen, _idle_in_transaction(stack.dsn))
                time.sleep(0.02)
            return seen, future.result().status_code

    with stack.switched(stack.payment, external_dependency_slow=True):
        outside = max_idle_in_tx_while_ordering()
        with stack.switched(stack.shop, connection_held_during_external_call=True):
            inside = max_idle_in_tx_while_ordering()
    assert outside == (0, 201)
    assert inside[1] == 201 and inside[0] >= 1


def test_uncompressed_response_sends_the_export_without_gzip(stack):
    compressed = stack.get("/catalog/export", headers={"Accept-Encoding": "gzip"})
    with stack.switched(stack.shop, uncompressed_response=True):
        raw = stack.get("/catalog/export", headers={"Accept-Encoding": "gzip"})
    assert compressed.headers.get("content-encoding") == "gzip"
    assert "content-encoding" not in raw.headers
    assert compressed.json() == raw.json()
    assert len(raw.content) >= 200_000
    assert raw.num_bytes_downloaded >= 200_000 > 5 * compressed.num_bytes_downloaded


def test_cacheable_reads_repeats_the_settings_query_on_every_request(stack):
    stack.get("/products/5")
    cached = [int(stack.get("/products/5").headers["x-db-queries"]) for _ in range(3)]
    with stack.switched(stack.shop, cacheable_reads=True):
        uncached = [int(stack.get("/products/5").headers["x-db-queries"]) for _ in range(3)]
    assert cached == [1, 1, 1]
    assert uncached == [2, 2, 2]


def test_memory_pressure_keeps_growing_and_is_released_when_off(stack):
    with stack.switched(stack.shop, memory_pressure=True):
        for i in range(20):
            stack.get(f"/products/{i + 1}")
        assert stack.stats(stack.shop)["view_history"] == 20
    assert stack.stats(stack.shop)["view_history"] == 0


def test_worker_pool_saturation_shrinks_the_threadpool(stack):
    assert stack.stats(stack.shop)["threads"]["total"] == 16
    with stack.switched(stack.shop, worker_pool_saturation=True):
        assert stack.stats(stack.shop)["threads"]["total"] == 4
        responses = _burst(stack, "/orders/1", 8)
        assert all(r.status_code == 200 for r in responses)
    assert stack.stats(stack.shop)["threads"]["total"] == 16


def test_consumer_lag_makes_the_fulfilment_group_fall_behind(stack):
    with stack.switched(stack.fulfilment, consumer_lag=True):
        started = time.monotonic()
        ids = [r.json()["order_id"] for r in _burst_orders(stack, 8)]
        behind = sum(stack.order_status(i) != "fulfilled" for i in ids)
        elapsed = time.monotonic() - started
    at_most_done = int(elapsed / LAG_SLEEP_S) + 1  # the worker needs LAG_SLEEP_S per message
    assert behind >= max(1, 8 - at_most_done), (behind, elapsed)
    assert [stack.wait_status(i, "fulfilled") for i in ids] == ["fulfilled"] * 8


def test_switches_on_another_process_are_refused_with_the_owner_named(stack):
    response = stack.http.post(stack.shop + "/admin/switches", json={"circuit_open": True})
    assert response.status_code == 422
    assert "payment" in response.json()["detail"]
    assert stack.http.get(stack.payment + "/admin/switches").json()["switches"]["circuit_open"] is False


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_cpu_saturation_spends_cpu_in_the_recommendations_route(stack):
    def cpu_for_requests(n: int) -> float:
        before = _cpu_seconds(stack.shop_pid)
        for i in range(n):
            assert stack.get(f"/recommendations/{1000 + i}").status_code == 200
        return _cpu_seconds(stack.shop_pid) - before

    cheap = cpu_for_requests(10)
    with stack.switched(stack.shop, cpu_saturation=True):
        heavy = cpu_for_requests(10)
    assert heavy >= 0.15  # >= 15 ms of pure-Python work per request
    assert heavy > 2 * cheap


def test_event_loop_blocked_serialises_concurrent_async_requests(stack):
    with stack.switched(stack.shop, event_loop_blocked=True):
        started = time.monotonic()
        responses = _burst(stack, "/quote?amount_cents=1000&currency=USD", 6)
        elapsed = time.monotonic() - started
    assert all(r.status_code == 200 and r.json()["converted_cents"] == 1080 for r in responses)
    assert elapsed >= 6 * 0.02  # the blocking sleeps cannot overlap: the loop runs one at a time


def test_external_dependency_slow_delays_every_payment_call(stack):
    with stack.switched(stack.payment, external_dependency_slow=True):
        started = time.monotonic()
        response = stack.get("/quote?amount_cents=500&currency=GBP")
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed >= 0.3


def test_hot_endpoint_search_takes_every_worker_thread(stack):
    with stack.switched(stack.shop, hot_endpoint=True), concurrent.futures.ThreadPoolExecutor(17) as pool:
        searches = [pool.submit(stack.get, "/search?q=glass+vase") for _ in range(16)]
        busy = stack.stats(stack.shop)["threads"]
        while busy["borrowed"] < 16 and not all(f.done() for f in searches):
            time.sleep(0.02)
            busy = stack.stats(stack.shop)["threads"]
        product = pool.submit(stack.get, "/products/3")
        assert all(f.result().status_code == 200 for f in searches)
        assert product.result().status_code == 200
    assert busy == {"total": 16, "borrowed": 16}  # the other sync routes queue behind search


def test_concurrent_orders_pay_concurrently_through_the_breaker(stack):
    """pybreaker's call() would serialise payments behind its lock; the shop's must overlap."""
    with stack.switched(stack.payment, external_dependency_slow=True):
        responses = _burst_orders(stack, 4)
        max_in_flight = stack.stats(stack.payment)["max_in_flight"]
    assert [r.status_code for r in responses] == [201] * 4
    assert max_in_flight >= 2


def _burst_orders(stack: Stack, n: int) -> list[httpx.Response]:
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: stack.order(customer="burst"), range(n)))


def test_set_switches_reaches_every_owner(stack):
    try:
        state = stack.launched.set_switches(retry_storm=True, slow_query=True)
        assert state["shop"]["retry_storm"] and state["shop"]["slow_query"] and state["payment"]["retry_storm"]
        assert stack.http.get(stack.payment + "/admin/switches").json()["switches"]["retry_storm"] is True
    finally:
        stack.launched.set_switches(retry_storm=False, slow_query=False)
    assert stack.http.get(stack.shop + "/admin/switches").json()["switches"]["retry_storm"] is False
