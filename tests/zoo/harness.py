"""The zoo harness: each small app under ``chokepoint-instrument``, its real services, closed-loop load,
a ground truth measured outside chokepoint, and chokepoint's top finding for the app's service.

Run by ``tests/zoo/test_zoo.py`` (the CI subset in the default run, the whole zoo with ``-m zoo``;
``make accuracy`` writes ``docs/ACCURACY.md``).  One app, one attempt (:func:`run_attempt`):

1. its PostgreSQL / MariaDB database is created empty (the app makes its own schema at start-up, as
   users' apps do), its Kafka topic created and filled, the stand-in dependency
   (``apps/dependency.py``) started with the app's settings;
2. the app is started under ``chokepoint-instrument`` with ``OTEL_SERVICE_NAME`` = the app's name,
   exporting every second to the shared collector; one client then times a few requests alone
   (``single_ms``: the handler's own time, no queueing);
3. :class:`ClosedLoop` load (``concurrency`` clients, each sending its next request when the last
   one answered, optional think time and bursts) while :class:`Sampler` records the ground truth
   twice a second: PostgreSQL's ``pg_stat_activity`` and ``pg_stat_user_tables``, MariaDB's global
   status, Redis ``INFO commandstats``, the listening socket's accept backlog (``ss -ltn``), the
   app's processes' CPU time and RSS (``/proc``), the consumer group's lag from Kafka's own
   offsets (an AdminClient), and the dependency's own call counts and times;
4. ``GET /api/v1/bottlenecks`` (the API's default window) every two seconds, the findings of the
   app's service only: *detection* is the first poll whose top finding is the expected kind and
   target at ``warning`` or ``critical``; a healthy app runs :data:`HEALTHY_RUN_S` and must show no
   finding above ``info``;
5. in a whole-zoo run, where the app has a fix (the dependency recovers, or the app's feature flag
   file), it is applied under the same load and *clear* is the time until no finding above ``info``
   is left.

Progress lines go to ``test-artifacts/zoo-progress.log``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from devservices import free_port, wait_for_port
from tests.scenarios.harness import ABOVE_INFO, host_pressure

ZOO = Path(__file__).resolve().parent
APPS = ZOO / "apps"
BIN = Path(sys.executable).parent
#: Seconds of load before findings count (the agent's first exports, the app's first requests).
WARMUP_S = 6.0
#: How long a faulty app may take to lead with its kind (the issue's target is 30 s; the run records the time).
DETECT_LIMIT_S = 60.0
HEALTHY_RUN_S = 40.0
CLEAR_LIMIT_S = 120.0
POLL_S = 2.0
#: Seconds of loaded run (after the warm-up) the ground truth is measured over, at least.
MIN_TRUTH_S = 12.0
START_LIMIT_S = 120.0
#: Relative tolerance of an evidence number against its ground truth.
TOLERANCE = 0.25


# ---------------------------------------------------------------- load


class ClosedLoop:
    """``concurrency`` clients, each with its own keep-alive connection, sending the next request as the
    last one answers (after ``think_s``); with ``burst=(on_s, off_s)`` they pause ``off_s`` every ``on_s``."""

    def __init__(self, port: int, paths: dict[str, float], concurrency: int, think_s: float = 0.0, burst: tuple | None = None, headers=None):
        self.port, self.paths, self.think_s, self.burst = port, paths, think_s, burst
        self.headers = {"Accept-Encoding": "gzip", **(headers or {})}
        self.records: list[tuple] = []  # (t_end, path, ms, status, bytes, encoded)
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(concurrency)]
        for t in self._threads:
            t.start()

    def _client(self, i: int) -> None:
        rnd = random.Random(i)
        names, weights = list(self.paths), list(self.paths.values())
        conn = None
        while not self._stop.is_set():
            if self.burst:
                on, off = self.burst
                if (time.monotonic() - self._started) % (on + off) >= on:
                    self._stop.wait(0.1)
                    continue
            name = rnd.choices(names, weights)[0]
            path = name.replace("{n}", str(rnd.randint(1, 500)))
            started = time.monotonic()
            for fresh in (conn is None, True):  # a keep-alive connection the server closed while idle: once more on a new one
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                    conn.request("GET", path, headers=self.headers)
                    resp = conn.getresponse()
                    body = resp.read()
                    status, size, encoded = resp.status, len(body), bool(resp.getheader("Content-Encoding"))
                    break
                except (OSError, http.client.HTTPException):
                    with contextlib.suppress(Exception):
                        conn.close()
                    conn, status, size, encoded = None, 0, 0, False
                    if fresh:
                        self._stop.wait(0.2)
                        break
            self.records.append((time.monotonic(), name, (time.monotonic() - started) * 1000, status, size, encoded))
            if self.think_s:
                self._stop.wait(self.think_s * rnd.uniform(0.5, 1.5))

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(35)


def single_client_ms(port: int, path: str, n: int = 7) -> float:
    """Median time of ``n`` requests sent one at a time: the handler's own time, no queueing."""
    times = []
    with httpx.Client(timeout=30, headers={"Accept-Encoding": "gzip"}) as client:
        for _ in range(n):
            started = time.monotonic()
            client.get(f"http://127.0.0.1:{port}{path.replace('{n}', '7')}")
            times.append((time.monotonic() - started) * 1000)
    return statistics.median(times)


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---------------------------------------------------------------- ground truth


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (gunicorn's workers)."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in (task / "children").read_text().split()]
    return pids


def proc_sample(pid: int) -> tuple[float, float]:
    """(CPU seconds, RSS MB) of the process tree."""
    tick, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
    cpu = rss = 0.0
    for p in process_tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / tick
            rss += int(fields[21]) * page / 2**20
    return cpu, rss


def accept_backlog(port: int) -> int | None:
    """Connections waiting in the listening socket's accept queue (``ss -ltn``'s Recv-Q)."""
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, timeout=10).stdout
    rows = [line.split() for line in out.splitlines() if line.strip()]
    return sum(int(r[1]) for r in rows) if rows else None


class Sampler:
    """Samples the ground-truth sources of one app twice a second in a thread."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.samples.append(self.run.sample())
            self._stop.wait(0.5)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


# ---------------------------------------------------------------- results


@dataclass
class Result:
    app: str
    stack: str
    expected: str | None
    target: str
    hit: bool = False
    attempts: int = 0
    detection_s: float | None = None
    clear_s: float | None = None
    top: dict | None = None
    expected_finding: dict | None = None  # the last finding of the expected kind and target, led or not (its rank in ``rank``)
    rank: int | None = None
    above_info: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    truth: dict = field(default_factory=dict)
    real: str | None = "not measured"  # None = the bottleneck is real and dominant (or a healthy app is healthy)
    evidence: dict = field(default_factory=dict)  # key -> [chokepoint, truth, within]
    error: str = ""
    host: str = ""
    wall_s: float = 0.0

    @property
    def evidence_ok(self) -> bool:
        return all(v[2] for v in self.evidence.values())

    @property
    def top_kind(self) -> str:
        if self.expected is None:
            return "(none above info)" if not self.above_info else self.above_info[0].split("(")[0]
        return self.top["kind"] if self.top else "(no finding)"

    def as_json(self) -> dict:
        return {**asdict(self), "top_kind": self.top_kind, "evidence_ok": self.evidence_ok}


def brief(findings: list[dict], n: int = 3) -> str:
    return "; ".join(f"{f['kind']}({f['target']}) {f['score']:.2f} {f['severity']}" for f in findings[:n]) or "none"


# ---------------------------------------------------------------- one app


class Run:
    """One attempt of one app: its services, its processes, its probes."""

    def __init__(self, app, zoo) -> None:
        self.app, self.zoo = app, zoo
        self.tag = f"{app.name}_{uuid.uuid4().hex[:6]}"
        self.procs: list[subprocess.Popen] = []
        self.env = zoo.agent_env(app.name)
        self.port = free_port()
        self.env["PORT"] = str(self.port)
        self.logs = zoo.artifacts / "zoo-logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.flag = self.logs / f"{self.tag}.fix"
        self.env["FIX_FLAG"] = str(self.flag)
        self.dep_port = None
        self.pg = self.my = None

    # -- set-up
    def setup(self) -> None:
        app, zoo = self.app, self.zoo
        if "postgres" in app.needs:
            import psycopg

            with psycopg.connect(zoo.postgres.dsn, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {self.tag}")
            self.env["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:{zoo.postgres.port}/{self.tag}"
            self.pg = psycopg.connect(self.env["DATABASE_URL"], autocommit=True)
        if "mariadb" in app.needs:
            import pymysql

            self.my = pymysql.connect(host="127.0.0.1", port=zoo.mariadb.port, user=zoo.mariadb.user, autocommit=True)
            self.my.cursor().execute(f"CREATE DATABASE {self.tag}")
            self.env.update(MYSQL_HOST="127.0.0.1", MYSQL_PORT=str(zoo.mariadb.port), MYSQL_USER=zoo.mariadb.user, MYSQL_DB=self.tag)
        if "redis" in app.needs:
            self.env["REDIS_URL"] = zoo.redis.url
            import redis

            self.redis = redis.Redis.from_url(zoo.redis.url)
        if "kafka" in app.needs:
            self._kafka_setup()
        if app.dep is not None:
            self.dep_port = free_port()
            self._spawn([sys.executable, str(APPS / "dependency.py"), str(self.dep_port)], "dep", instrument=False)
            wait_for_port(self.dep_port, 30)
            self.dep_set(app.dep)
            self.env["DEP_URL"] = f"http://127.0.0.1:{self.dep_port}"

    def _kafka_setup(self) -> None:
        self.topic, self.group = f"{self.tag}-events", f"{self.tag}-workers"
        self.env.update(KAFKA_BOOTSTRAP=self.zoo.kafka.bootstrap, KAFKA_TOPIC=self.topic, KAFKA_GROUP=self.group)
        self.lag_file = self.logs / f"{self.tag}.lag.jsonl"
        k = self.app.kafka
        argv = [
            sys.executable,
            str(ZOO / "kafka_probe.py"),
            self.zoo.kafka.bootstrap,
            self.topic,
            self.group,
            str(k.get("prefill", 0)),
            str(k.get("rate", 20)),
            str(self.lag_file),
        ]
        probe = self._spawn(argv, "kafka", instrument=False)
        deadline = time.monotonic() + START_LIMIT_S
        while not (self.lag_file.exists() and self.lag_file.read_text().strip()):
            if time.monotonic() > deadline or probe.poll() is not None:
                raise RuntimeError(f"kafka probe not ready: {(self.logs / f'{self.tag}.kafka.log').read_text()[-1500:]}")
            time.sleep(0.5)

    def _spawn(self, argv: list[str], label: str, instrument: bool = True) -> subprocess.Popen:
        log = (self.logs / f"{self.tag}.{label}.log").open("w")
        cmd = [str(BIN / "chokepoint-instrument"), *argv] if instrument else argv
        proc = subprocess.Popen(cmd, cwd=APPS, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def start_app(self) -> None:
        argv = [a.format(port=self.port, python=sys.executable, bin=BIN) for a in self.app.argv]
        argv[0] = str(BIN / argv[0]) if (BIN / argv[0]).exists() else argv[0]
        self.proc = self._spawn(argv, "app")
        if self.app.http:
            wait_for_port(self.port, START_LIMIT_S, self.proc, self.logs / f"{self.tag}.app.log")
            deadline = time.monotonic() + START_LIMIT_S
            while True:  # the port may be bound before the app (its schema, its pools) is ready
                try:
                    if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=30).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"{self.app.name} not healthy: {(self.logs / f'{self.tag}.app.log').read_text()[-1500:]}")
                time.sleep(1)

    # -- the dependency
    def dep_set(self, settings: dict) -> None:
        httpx.post(f"http://127.0.0.1:{self.dep_port}/_set", params=settings, timeout=10).raise_for_status()

    def dep_stats(self) -> dict:
        return httpx.get(f"http://127.0.0.1:{self.dep_port}/_stats", timeout=10).json()

    # -- sampling
    def sample(self) -> dict:
        s: dict = {"t": time.monotonic()}
        s["cpu_s"], s["rss_mb"] = proc_sample(self.proc.pid)
        if self.app.http:
            s["backlog"] = accept_backlog(self.port)
        if self.pg is not None:
            rows = self.pg.execute(
                "SELECT state, count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() GROUP BY state"
            ).fetchall()
            s["pg"] = {state or "none": n for state, n in rows}
            s["pg_scans"] = self.pg.execute("SELECT coalesce(sum(coalesce(seq_scan,0) + coalesce(idx_scan,0)),0)::bigint FROM pg_stat_user_tables").fetchone()[
                0
            ]
        if self.my is not None:
            cur = self.my.cursor()
            cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN ('Com_select', 'Questions')")
            s["my"] = {k: int(v) for k, v in cur.fetchall()}
            cur.execute("SELECT count(*) FROM information_schema.processlist WHERE db = %s AND command <> 'Sleep'", (self.tag,))
            s["my_active"] = cur.fetchone()[0]
        if "redis" in self.app.needs:
            stats = self.redis.info("commandstats")
            s["redis"] = {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()}
        if "kafka" in self.app.needs:
            s["lag"] = self.kafka_lag()
        return s

    def kafka_lag(self) -> int | None:
        """The group's lag as Kafka sees it, the probe's latest sample (None before the group has offsets)."""
        for line in reversed(self.lag_file.read_text().splitlines()):
            with contextlib.suppress(ValueError):  # the line the probe is writing right now
                row = json.loads(line)
                if "lag" in row:
                    return row["lag"]
        return None

    def time_statement(self, sql: str, n: int = 5) -> float:
        """The statement's median time as the database runs it now (under the same load), from the harness's own connection."""
        times = []
        for _ in range(n):
            started = time.monotonic()
            if self.pg is not None:
                self.pg.execute(sql).fetchall()
            else:  # a connection of its own: the sampler's is used from another thread
                import pymysql

                with pymysql.connect(host="127.0.0.1", port=self.zoo.mariadb.port, user=self.zoo.mariadb.user, database=self.tag) as conn, conn.cursor() as cur:
                    started = time.monotonic()
                    cur.execute(sql)
                    cur.fetchall()
            times.append((time.monotonic() - started) * 1000)
        return round(statistics.median(times), 2)

    # -- tear-down
    def stop(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        for conn in (self.pg, self.my):
            with contextlib.suppress(Exception):
                conn.close()


def ground_truth(run: Run, load: ClosedLoop | None, samples: list[dict], single_ms: float | None, started: float, at: float | None = None) -> dict:
    """The app's bottleneck as the outside world sees it, over the loaded stretch (after warm-up); gauges
    that move (the consumer lag) at ``at``, the moment chokepoint's finding was read."""
    t: dict = {"single_ms": single_ms, **run.app.facts}
    samples = [s for s in samples if s["t"] >= started + WARMUP_S] or samples
    if load is not None:
        recs = [r for r in load.records if r[0] >= started + WARMUP_S]
        span = max(1e-6, (recs[-1][0] - recs[0][0])) if len(recs) > 1 else 1.0
        ok = [r for r in recs if 200 <= r[3] < 400]
        t.update(requests=len(recs), errors=len(recs) - len(ok), rps=len(recs) / span)
        t["client_p50_ms"] = quantile([r[2] for r in recs], 0.5)
        t["client_p99_ms"] = quantile([r[2] for r in recs], 0.99)
        if ok:
            t["bytes_avg"] = sum(r[4] for r in ok) / len(ok)
            t["encoded_fraction"] = sum(r[5] for r in ok) / len(ok)
        for path in {r[1] for r in recs}:
            mine = [r for r in recs if r[1] == path]
            t[f"rps {path}"] = len(mine) / span
            t[f"p50_ms {path}"] = quantile([r[2] for r in mine], 0.5)
    if len(samples) > 1:
        a, b = samples[0], samples[-1]
        dt = b["t"] - a["t"]
        t["cpu_cores"] = (b["cpu_s"] - a["cpu_s"]) / dt
        xs, ys = [s["t"] for s in samples], [s["rss_mb"] for s in samples]
        t["rss_growth_mb_per_min"] = statistics.linear_regression(xs, ys).slope * 60
        t["rss_mb"] = ys[-1]
        if "backlog" in b:
            backlogs = [s["backlog"] or 0 for s in samples]
            t["backlog_mean"], t["backlog_max"] = statistics.fmean(backlogs), max(backlogs)
        if "pg" in b:
            t["pg_conns_max"] = max(sum(s["pg"].values()) for s in samples)
            t["pg_active_mean"] = statistics.fmean(s["pg"].get("active", 0) for s in samples)
            t["pg_idle_in_tx_mean"] = statistics.fmean(s["pg"].get("idle in transaction", 0) for s in samples)
            t["pg_scans_per_s"] = (b["pg_scans"] - a["pg_scans"]) / dt
            if t.get("requests"):
                t["pg_scans_per_request"] = (b["pg_scans"] - a["pg_scans"]) / max(1, _requests_between(load, a["t"], b["t"]))
        if "my" in b and load is not None:
            n = max(1, _requests_between(load, a["t"], b["t"]))
            t["my_selects_per_request"] = (b["my"]["Com_select"] - a["my"]["Com_select"]) / n
            t["my_active_mean"] = statistics.fmean(s["my_active"] for s in samples)
        if "redis" in b and load is not None:
            n = max(1, _requests_between(load, a["t"], b["t"]))
            for cmd in ("get", "hget", "hgetall", "mget"):
                if cmd in b["redis"]:
                    t[f"redis_{cmd}_per_request"] = (b["redis"][cmd] - a["redis"].get(cmd, 0)) / n
                    t[f"redis_{cmd}_per_s"] = (b["redis"][cmd] - a["redis"].get(cmd, 0)) / dt
        lags = [s for s in samples if s.get("lag") is not None]
        if len(lags) > 1:
            t["lag"] = min(lags, key=lambda s: abs(s["t"] - (at or lags[-1]["t"])))["lag"]
            t["lag_growth_per_s"] = (lags[-1]["lag"] - lags[0]["lag"]) / (lags[-1]["t"] - lags[0]["t"])
    if run.dep_port:
        stats = run.dep_stats()
        times = stats["times_ms"]
        t.update(dep_calls=stats["calls"], dep_errors=stats["errors"], dep_p50_ms=quantile(times, 0.5), dep_p99_ms=quantile(times, 0.99))
        if load is not None and load.records:
            t["dep_calls_per_request"] = stats["calls"] / len(load.records)
            t["dep_retries_per_call"] = t["dep_calls_per_request"] - 1
            t["dep_rejected"] = len(load.records) - stats["calls"]  # requests answered without reaching the dependency
    return derived({k: (round(v, 3) if isinstance(v, float) else v) for k, v in t.items()})


def derived(t: dict) -> dict:
    """Figures computed from the measured ones (also applied to a saved run's truth when it is re-rendered)."""
    single, p50, p99 = t.get("single_ms"), t.get("client_p50_ms"), t.get("client_p99_ms")
    if single and p50 and p99:
        t["queueing_ratio"] = round(p50 / single, 3)
        # what a request waits before it is handled (what a loop's lag or a worker queue costs it)
        t["client_wait_p50_ms"] = round(max(0.0, p50 - single), 3)
        t["client_wait_p99_ms"] = round(max(0.0, p99 - single), 3)
        t["loop_busy_share"] = round(t["rps"] * single / 1000, 3)  # each request blocks a loop for its own time
    return t


def _requests_between(load: ClosedLoop | None, t0: float, t1: float) -> int:
    return sum(1 for r in load.records if t0 <= r[0] <= t1) if load else 0


def compare_evidence(app, top: dict | None, truth: dict) -> dict:
    """``{evidence key: [chokepoint's number, ground truth, within TOLERANCE]}``."""
    out = {}
    for key, truth_key in app.evidence.items():
        mine = (top or {}).get("evidence", {}).get(key)
        real = truth.get(truth_key)
        within = isinstance(mine, int | float) and isinstance(real, int | float) and abs(mine - real) <= TOLERANCE * max(abs(real), 1e-9)
        out[key] = [mine, real, bool(within)]
    return out


def run_attempt(app, zoo, result: Result) -> None:
    """One attempt of ``app``: fills ``result`` (hit, detection, truth, evidence, clear)."""
    run = Run(app, zoo)
    zoo.live.add(run)
    load = sampler = hogs = None
    try:
        run.setup()
        run.start_app()
        if app.settle_s:
            zoo.progress(f"{app.name}: idle {app.settle_s:.0f} s before the load")
            time.sleep(app.settle_s)
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(app.hog)]
        single = single_client_ms(run.port, next(iter(app.paths))) if app.http else None  # the first path: the one whose wait is measured
        zoo.progress(f"{app.name}: started (port {run.port}, single {single and round(single)} ms) [{host_pressure()}]")
        started = time.monotonic()
        if app.http:
            load = ClosedLoop(run.port, app.paths, app.concurrency, app.think_s, app.burst)
        sampler = Sampler(run)
        limit = HEALTHY_RUN_S if app.expected is None else DETECT_LIMIT_S
        hit_top = hit_at = None
        while time.monotonic() - started < WARMUP_S + limit:
            time.sleep(POLL_S)
            findings = [f for f in zoo.findings() if f["service"] == app.name]
            elapsed = time.monotonic() - started
            zoo.progress(f"{app.name} t={elapsed:.0f}s [{host_pressure()}] {brief(findings)}")
            if elapsed < WARMUP_S:
                continue
            for rank, f in enumerate(findings, 1):
                if app.expected and f["kind"] == app.expected and re.search(app.target, str(f["target"])):
                    result.expected_finding, result.rank = f, rank
                if f["severity"] in ABOVE_INFO:
                    label = f"{f['kind']}({f['target']})"
                    if app.expected is None and not any(seen.startswith(label) for seen in result.above_info):
                        result.above_info.append(f"{label} {f['severity']}: {f['summary']}")
            if findings:
                label = f"{findings[0]['kind']}:{findings[0]['target']}"
                if label not in result.seen:
                    result.seen.append(label)
                result.top = findings[0]
            if app.expected and findings and is_hit(app, findings[0]):
                result.detection_s, hit_top, hit_at = elapsed, findings[0], time.monotonic()
                break
        while time.monotonic() - started < WARMUP_S + MIN_TRUTH_S:  # an early hit: enough load for the ground truth
            time.sleep(1.0)
        result.top = hit_top or result.top
        result.hit = (not result.above_info) if app.expected is None else hit_top is not None
        result.truth = ground_truth(run, load, sampler.samples, single, started, hit_at)
        if app.probe_sql:
            result.truth["stmt_ms"] = run.time_statement(app.probe_sql)
        result.real = app.real(result.truth)
        result.evidence = compare_evidence(app, hit_top or result.expected_finding, result.truth) if app.expected else {}
        if app.fix is not None and result.hit and zoo.measure_clear:
            result.clear_s = clear(app, zoo, run)
    finally:
        if load is not None:
            load.stop()
        if sampler is not None:
            sampler.stop()
        for hog in hogs or []:
            hog.kill()
            hog.wait()
        run.stop()
        zoo.live.discard(run)


def is_hit(app, finding: dict) -> bool:
    return finding["kind"] == app.expected and re.search(app.target, str(finding["target"])) is not None and finding["severity"] in ABOVE_INFO


def clear(app, zoo, run: Run) -> float | None:
    """Apply the app's fix under the same load; seconds until no finding above ``info`` (None: not within the limit)."""
    if app.fix == "flag":
        run.flag.write_text("on")
    else:
        run.dep_set(app.fix)
    started = time.monotonic()
    while time.monotonic() - started < CLEAR_LIMIT_S:
        time.sleep(POLL_S)
        above = [f for f in zoo.findings() if f["service"] == app.name and f["severity"] in ABOVE_INFO]
        zoo.progress(f"{app.name} fixed t={time.monotonic() - started:.0f}s {brief(above)}")
        if not above:
            return time.monotonic() - started
    return None
