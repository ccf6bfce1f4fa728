"""worker_pool_saturation: busy workers, the accept backlog by Little's law, processes × threads (issue 13 item 2)."""

from __future__ import annotations

import pytest

from chokepoint.collector.analysis.rules import worker_pool_saturation
from chokepoint.collector.analysis.snapshot import PoolStats, RuntimeStats
from tests.collector.analysis.fixtures import SVC, rows, service, snapshot

QUEUED = service(shares={"queue": 0.8, "self": 0.2}, worst=("/products", 500.0))
BASE_EVIDENCE = {"processes": None, "accept_backlog": None, "accept_backlog_wait_ms": None, "proxy_queue_wait_p99_ms": None, "run_queue_wait": None}

CASES = [
    (
        "all threads busy, requests queued, CPU low",
        QUEUED,
        [PoolStats(SVC, "worker", "anyio", used=4, max=4, pending=30, wait_p99_ms=400.0, wait_count=600)],
        RuntimeStats(cpu=0.2),
        [
            {
                "service": SVC,
                "target": "anyio",
                "explained": 0.8,
                "strength": 1.0,
                "severity": "critical",
                "evidence": {
                    **BASE_EVIDENCE,
                    "workers_busy": 4,
                    "workers_max": 4,
                    "queued": 30,
                    "queue_wait_p99_ms": 400.0,
                    "cpu_utilization": 0.2,
                    "cpu_demand": 0.2,
                },
            }
        ],
    ),
    (
        # gunicorn sync workers: 4 processes × 1 thread, the wait is in the listen queue
        "pre-fork workers, the wait in the accept backlog (Little's law)",
        service(worst=("/report", 300.0)),
        [PoolStats(SVC, "worker", "gunicorn", used=1, max=1, pending=0, processes=4)],
        RuntimeStats(cpu=0.1, accept_backlog=12.0, accept_backlog_max=2048.0, accept_rate=13.0),
        [
            {
                "service": SVC,
                "target": "gunicorn",
                "explained": 0.755,
                "strength": 1.0,
                "severity": "critical",
                "evidence": {
                    **BASE_EVIDENCE,
                    "processes": 4,
                    "accept_backlog": 12.0,
                    "accept_backlog_wait_ms": 923.1,
                    "workers_busy": 1,
                    "workers_max": 4,
                    "queued": 12.0,
                    "queue_wait_p99_ms": 0.0,
                    "cpu_utilization": 0.1,
                    "cpu_demand": 0.1,
                },
            }
        ],
    ),
    (
        "a proxy's X-Request-Start says requests wait before the app",
        service(worst=("/a", 100.0), queue_wait_count=500, queue_wait_p99_ms=300.0),
        [],
        RuntimeStats(cpu=0.2),
        [
            {
                "service": SVC,
                "target": "server",
                "explained": 0.75,
                "strength": 1.0,
                "severity": "critical",
                "evidence": {
                    **BASE_EVIDENCE,
                    "proxy_queue_wait_p99_ms": 300.0,
                    "workers_busy": 0.0,
                    "workers_max": 0.0,
                    "queued": 0.0,
                    "queue_wait_p99_ms": 0.0,
                    "cpu_utilization": 0.2,
                    "cpu_demand": 0.2,
                },
            }
        ],
    ),
    (
        # the scenario suite's healthy run on a host at load 22: the process runs 0.06 core and waits for 1.2
        "a wait for a worker in a process the host starves of CPU",
        QUEUED,
        [PoolStats(SVC, "worker", "anyio-default", used=10, max=16, pending=0, wait_p99_ms=170.0, wait_count=600)],
        RuntimeStats(cpu=0.06, run_queue_wait=1.2, accept_backlog=3.0, accept_rate=30.0),
        [],
    ),
    (
        # Django on gthread, 2 keep-alive clients: 6 accepts in the window, one connection seen queued
        "a backlog over a handful of accepts is no Little's-law wait",
        service(worst=("/api/articles/<int:n>", 30.0)),
        [PoolStats(SVC, "worker", "gunicorn", used=1, max=4, pending=0, processes=1)],
        RuntimeStats(cpu=0.02, accept_backlog=1.0, accept_backlog_max=256.0, accept_rate=0.1),
        [],
    ),
    (
        "an internal executor, no request waits for a worker",
        service(shares={"http:127.0.0.1": 0.9, "self": 0.1}),
        [PoolStats(SVC, "worker", "ThreadPoolExecutor-5", used=1, max=1, pending=4, wait_p99_ms=900.0, wait_count=40)],
        RuntimeStats(cpu=0.1),
        [],
    ),
    (
        "CPU-bound: threads would not help",
        QUEUED,
        [PoolStats(SVC, "worker", "anyio", used=4, max=4, pending=30, wait_p99_ms=400.0, wait_count=600)],
        RuntimeStats(cpu=0.97),
        [],
    ),
    (
        "a wait with idle workers (the process is not scheduled)",
        QUEUED,
        [PoolStats(SVC, "worker", "anyio", used=1, max=40, pending=0, wait_p99_ms=80.0, wait_count=60)],
        RuntimeStats(cpu=0.2),
        [],
    ),
    (
        "a short backlog drained fast",
        service(),
        [PoolStats(SVC, "worker", "gunicorn", used=2, max=4, processes=4)],
        RuntimeStats(cpu=0.1, accept_backlog=0.5, accept_rate=200.0),
        [],
    ),
]


@pytest.mark.parametrize(("name", "svc", "pools", "runtime", "expected"), CASES, ids=[c[0] for c in CASES])
def test_worker_pool_saturation(name, svc, pools, runtime, expected):
    assert rows(worker_pool_saturation.rule(snapshot([svc], pools=pools, runtime={SVC: runtime}))) == expected


def test_summary_states_processes_times_threads_and_the_estimated_wait():
    svc, pools, runtime, _ = CASES[1][1:]
    (c,) = worker_pool_saturation.rule(snapshot([svc], pools=pools, runtime={SVC: runtime}))
    assert c.summary == (
        "All 4 processes × 1 thread of 'gunicorn' busy, 12 requests queued (~923 ms wait in the accept backlog (12 connections / 13.0 accepted/s)) while CPU is 10% of a core"
    )
