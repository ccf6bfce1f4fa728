"""The zoo run: one collector shared by every app (each app is its own service), the apps scheduled
a few at a time, results collected for the tests and for ``docs/ACCURACY.md``.

Apps run :data:`PARALLEL` at a time (``CHOKEPOINT_ZOO_PARALLEL``); an app marked ``exclusive`` (it
loads the host's CPU, or it is about a CPU-starved host) runs alone; apps naming the same
``shared`` resource (MariaDB's and Redis's global counters are their ground truth) run one after
another.  An app that misses (or whose bottleneck did not show in its ground truth) gets one more
attempt from a fresh start (:data:`ATTEMPTS`).
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import httpx

from tests.scenarios.harness import agent_env, host_pressure, start_collector
from tests.zoo.harness import Result, run_attempt

PARALLEL = int(os.environ.get("CHOKEPOINT_ZOO_PARALLEL", "3"))
ATTEMPTS = 2
#: The findings window the zoo reads (``GET /api/v1/bottlenecks`` without ``window``: the API's default).
FINDINGS_CACHE_S = 1.0


class Zoo:
    def __init__(self, services: dict, artifacts: Path, tmp: Path, measure_clear: bool = True) -> None:
        self.measure_clear = measure_clear  # time the clear after each fix (the whole zoo; the CI subset skips it)
        self.postgres, self.mariadb = services.get("postgres"), services.get("mariadb")
        self.redis, self.kafka = services.get("redis"), services.get("kafka")
        self.artifacts = artifacts
        self.collector = start_collector(self.kafka.bootstrap if self.kafka else "", tmp)
        self.http = httpx.Client(timeout=30)
        self._lock = threading.Lock()
        self._cached: tuple[float, list] = (0.0, [])
        self._log = artifacts / "zoo-progress.log"
        self.futures: dict[str, Future] = {}
        self.started = time.monotonic()
        self.wall_s = 0.0
        self.load_samples: list[float] = []
        self.live: set = set()  # the runs under way (stopped at shutdown, e.g. on Ctrl-C)
        self.closing = threading.Event()

    def agent_env(self, service: str) -> dict[str, str]:
        env = agent_env(self.collector.otlp_http_url)
        env["OTEL_SERVICE_NAME"] = service
        env.pop("PYTHONPATH", None)
        return env

    def progress(self, line: str) -> None:
        with self._lock, self._log.open("a") as f:
            f.write(f"{time.strftime('%H:%M:%S')} [{os.getpid()}] {line}\n")

    def findings(self) -> list[dict]:
        with self._lock:
            at, cached = self._cached
            if time.monotonic() - at < FINDINGS_CACHE_S:
                return cached
            response = self.http.get(self.collector.api_url + "/api/v1/bottlenecks")
            response.raise_for_status()
            self._cached = (time.monotonic(), response.json()["findings"])
            return self._cached[1]

    # -- scheduling
    def start(self, apps: list) -> None:
        for app in apps:
            self.futures[app.name] = Future()
        threading.Thread(target=self._schedule, args=(apps,), daemon=True).start()
        threading.Thread(target=self._watch_load, daemon=True).start()

    def _watch_load(self) -> None:
        while any(not f.done() for f in self.futures.values()):
            self.load_samples.append(float(Path("/proc/loadavg").read_text().split()[0]))
            time.sleep(10)

    def _schedule(self, apps: list) -> None:
        slots = threading.Semaphore(PARALLEL)
        shared = {name: threading.Lock() for app in apps for name in app.shared}
        threads = []

        def one(app) -> None:
            try:
                if self.closing.is_set():
                    raise RuntimeError("the zoo was shut down before this app ran")
                for name in sorted(app.shared):
                    shared[name].acquire()
                try:
                    self.futures[app.name].set_result(self.run_app(app))
                finally:
                    for name in app.shared:
                        shared[name].release()
            except BaseException as exc:  # the test reports it
                self.futures[app.name].set_exception(exc)
            finally:
                slots.release()

        for app in [a for a in apps if not a.exclusive]:
            slots.acquire()
            thread = threading.Thread(target=one, args=(app,), daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
        for app in [a for a in apps if a.exclusive]:
            slots.acquire()
            one(app)
        self.wall_s = time.monotonic() - self.started

    def run_app(self, app) -> Result:
        started = time.monotonic()
        result = Result(app.name, app.stack, app.expected, app.target)
        for attempt in range(1, ATTEMPTS + 1):
            result.attempts = attempt
            result.above_info, result.seen, result.top, result.detection_s, result.clear_s = [], [], None, None, None
            result.expected_finding = result.rank = None
            try:
                run_attempt(app, self, result)
                result.error = ""
            except Exception as exc:  # a broken start-up is reported, and tried once more
                result.error = f"{type(exc).__name__}: {exc}"[:600]
            result.host = host_pressure()
            self.progress(
                f"{app.name}: attempt {attempt} hit={result.hit} top={result.top_kind} detection={result.detection_s} "
                f"clear={result.clear_s} real={result.real} evidence={result.evidence} error={result.error[:200]}"
            )
            if result.hit and result.real is None and result.evidence_ok and not result.error:
                break
        result.wall_s = time.monotonic() - started
        return result

    def result(self, name: str, timeout_s: float = 3600.0) -> Result:
        return self.futures[name].result(timeout_s)

    def shutdown(self) -> None:
        self.closing.set()
        for run in list(self.live):
            run.stop()
        self.collector.shutdown()
        self.http.close()
