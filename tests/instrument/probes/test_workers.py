"""Worker-pool probes with real executors, anyio limiters, sockets and an ASGI app."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import anyio
import anyio.to_thread

from chokepoint.instrument import signals
from chokepoint.instrument.probes.workers import AnyioThreadPoolProbe, AsgiInflightProbe, ThreadPoolProbe, listen_backlog, wrap_asgi_inflight

KIND, NAME = signals.ATTR_WORKER_POOL_KIND, signals.ATTR_POOL_NAME


def _wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_threadpool_busy_max_queued_and_wait(metrics, installed):
    installed.append(ThreadPoolProbe(metrics.meter))
    release = threading.Event()
    attrs = {KIND: "threadpool", NAME: "probe-test"}
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="probe-test") as pool:
        futures = [pool.submit(release.wait, 5) for _ in range(5)]
        assert _wait_until(lambda: metrics.value(signals.WORKER_POOL_BUSY, attrs) == 2)
        got = metrics.collect()
        assert metrics.value(signals.WORKER_POOL_MAX, attrs, got) == 2
        assert metrics.value(signals.WORKER_POOL_QUEUED, attrs, got) == 3
        release.set()
        assert [f.result() for f in futures] == [True] * 5
        got = metrics.collect()
        assert metrics.value(signals.WORKER_POOL_BUSY, attrs, got) == 0
        assert metrics.value(signals.WORKER_POOL_QUEUED, attrs, got) == 0
        assert metrics.point(signals.WORKER_POOL_QUEUE_WAIT_TIME, attrs, got).count == 5


def test_threadpool_task_exception_reaches_caller_and_frees_worker(metrics, installed):
    installed.append(ThreadPoolProbe(metrics.meter))
    attrs = {KIND: "threadpool", NAME: "failing"}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="failing") as pool:
        future = pool.submit(lambda: 1 / 0)
        assert isinstance(future.exception(timeout=5), ZeroDivisionError)
        assert metrics.value(signals.WORKER_POOL_BUSY, attrs) == 0


def test_anyio_limiter_statistics_and_token_wait(metrics, installed):
    installed.append(AnyioThreadPoolProbe(metrics.meter))
    release = threading.Event()
    seen: dict = {}

    async def main():
        limiter = anyio.CapacityLimiter(2)
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(lambda: anyio.to_thread.run_sync(release.wait, 5, limiter=limiter))
            attrs = {KIND: "anyio", NAME: "anyio-limiter-1"}
            while metrics.points(signals.WORKER_POOL_QUEUED, attrs) == [] or metrics.value(signals.WORKER_POOL_QUEUED, attrs) != 3:
                await anyio.sleep(0.01)
            got = metrics.collect()
            seen.update(
                busy=metrics.value(signals.WORKER_POOL_BUSY, attrs, got),
                max=metrics.value(signals.WORKER_POOL_MAX, attrs, got),
                queued=metrics.value(signals.WORKER_POOL_QUEUED, attrs, got),
            )
            release.set()
        seen["waits"] = metrics.point(signals.WORKER_POOL_QUEUE_WAIT_TIME, attrs).count

    anyio.run(main)
    assert seen == {"busy": 2, "max": 2, "queued": 3, "waits": 5}


def test_listen_backlog_counts_unaccepted_connections():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    clients = [socket.create_connection(server.getsockname()) for _ in range(3)]
    try:
        assert _wait_until(lambda: listen_backlog(server) == 3)
        server.accept()[0].close()
        assert listen_backlog(server) == 2
        assert listen_backlog(clients[0]) is None  # not a listening socket
    finally:
        for c in clients:
            c.close()
        server.close()


def test_asgi_inflight_counts_http_requests_only(metrics, installed):
    installed.append(AsgiInflightProbe(metrics.meter))
    seen: dict = {}

    async def main():
        release = anyio.Event()

        async def app(scope, receive, send):
            await release.wait()

        wrapped = wrap_asgi_inflight(app, name="shop")
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(wrapped, {"type": "http"}, None, None)
            tg.start_soon(wrapped, {"type": "lifespan"}, None, None)
            await anyio.sleep(0.05)
            seen["during"] = metrics.value(signals.WORKER_POOL_BUSY, {KIND: "asgi", NAME: "shop"})
            release.set()
        seen["after"] = metrics.value(signals.WORKER_POOL_BUSY, {KIND: "asgi", NAME: "shop"})

    anyio.run(main)
    assert seen == {"during": 3, "after": 0}


def test_uninstalled_threadpool_probe_stops_wrapping(metrics):
    original = ThreadPoolExecutor.submit
    probe = ThreadPoolProbe(metrics.meter)
    probe.uninstall()
    assert ThreadPoolExecutor.submit is original
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="after") as pool:
        assert pool.submit(lambda: 7).result() == 7
    assert signals.WORKER_POOL_QUEUE_WAIT_TIME not in metrics.collect()


def test_threadpool_probe_failures_never_reach_the_application(metrics, installed):
    probe = ThreadPoolProbe(metrics.meter)
    installed.append(probe)
    probe.wait_time = None  # break the probe's own bookkeeping
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="robust") as pool:
        assert pool.submit(sum, [1, 2]).result() == 3
        assert _wait_until(lambda: metrics.value(signals.WORKER_POOL_BUSY, {KIND: "threadpool", NAME: "robust"}) == 0)


def test_anyio_token_wait_goes_to_the_request_breakdown(metrics, installed):
    from chokepoint.instrument import context

    installed.append(AnyioThreadPoolProbe(metrics.meter))

    async def main():
        token = context.start_request("/report")
        try:
            assert await anyio.to_thread.run_sync(lambda: context.current().route) == "/report"
            return dict(context.current().component_seconds)
        finally:
            context.end_request(token)

    components = anyio.run(main)
    assert components["queue"] > 0


def _anyio_calls():
    """Two event loops; in each: two calls on the default limiter, then limiters A, B, A."""

    async def main():
        a, b = anyio.CapacityLimiter(3), anyio.CapacityLimiter(4)
        for limiter in (None, None, a, b, a):
            assert await anyio.to_thread.run_sync(int, "7", limiter=limiter) == 7

    anyio.run(main)
    anyio.run(main)


def test_anyio_waits_are_counted_per_limiter_across_loops(metrics, installed):
    installed.append(AnyioThreadPoolProbe(metrics.meter))
    _anyio_calls()
    got = metrics.collect()
    counts = {p.attributes[NAME]: p.count for p in metrics.points(signals.WORKER_POOL_QUEUE_WAIT_TIME, {KIND: "anyio"}, got)}
    assert counts == {"anyio-default": 4, "anyio-limiter-1": 2, "anyio-limiter-2": 1, "anyio-limiter-3": 2, "anyio-limiter-4": 1}


def test_anyio_waits_go_to_the_lean_registry(metrics, installed):
    from chokepoint.instrument.lean_metrics import LeanMetrics
    from chokepoint.instrument.probes import install_all

    lean = LeanMetrics("chokepoint.test")
    installed.extend(install_all(metrics.meter, enabled={"anyio"}, lean=lean))
    _anyio_calls()
    [histogram] = [i for i in lean._instruments if i.name == signals.WORKER_POOL_QUEUE_WAIT_TIME]
    counts = {p.attributes[NAME]: p.count for p in histogram.points(0, 1)}
    assert counts == {"anyio-default": 4, "anyio-limiter-1": 2, "anyio-limiter-2": 1, "anyio-limiter-3": 2, "anyio-limiter-4": 1}
    assert {p.attributes[KIND] for p in histogram.points(0, 1)} == {"anyio"}


def test_anyio_default_limiter_is_in_the_gauges_while_its_loop_runs(metrics, installed):
    installed.append(AnyioThreadPoolProbe(metrics.meter))
    seen = {}

    async def main():
        await anyio.to_thread.run_sync(int, "1")
        seen["max"] = metrics.value(signals.WORKER_POOL_MAX, {KIND: "anyio", NAME: "anyio-default"})

    anyio.run(main)
    assert seen == {"max": 40}


def test_anyio_waits_are_counted_on_the_trio_backend_too(metrics, installed):
    installed.append(AnyioThreadPoolProbe(metrics.meter))

    async def main():
        limiter = anyio.CapacityLimiter(2)
        for given in (None, None, limiter):
            assert await anyio.to_thread.run_sync(int, "5", limiter=given) == 5

    anyio.run(main, backend="trio")
    got = metrics.collect()
    counts = {p.attributes[NAME]: p.count for p in metrics.points(signals.WORKER_POOL_QUEUE_WAIT_TIME, {KIND: "anyio"}, got)}
    assert counts == {"anyio-default": 2, "anyio-limiter-1": 1}
