"""SQLite persistence of closed store buckets (24 h on disk, 1 h reloaded into memory).

Usage::

    persistence = SqlitePersistence("~/.local/state/chokepoint/store.sqlite3")
    persistence.load_into(store)       # at start: buckets within the memory retention
    persistence.flush(store)           # every bucket: writes closed buckets not yet written
    persistence.close(store)           # at stop: flushes, and saves the open bucket too

One table ``buckets(start REAL PRIMARY KEY, data BLOB, written_at REAL)``; ``data`` is a
zlib-compressed JSON document of the bucket with sketches as base64 of
``Sketch.to_bytes()``.  ``flush`` writes each closed bucket once (upsert, so a repeated
write is harmless), then deletes rows older than ``StoreConfig.disk_retention_s``.  A
crash therefore loses at most the open bucket (and whatever arrived since the last
flush — the service loop flushes every bucket); a graceful ``close(store)`` also saves the
open bucket (table ``open_bucket``), which the next ``load_into`` merges back as live data
if its interval is still running, or restores as a closed bucket.  A row that fails to decode is skipped
and counted in ``load_errors``; it never stops the load.  The path may be ``:memory:``.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import zlib
from pathlib import Path

from chokepoint.collector.protocol import RUNTIME_EXTRA_GAUGES, BreakdownAgg, BreakerAgg, Bucket, LagPoint, PoolAgg, RouteAgg, RuntimeAgg
from chokepoint.collector.sketch import Sketch
from chokepoint.collector.store import Store

SCHEMA = "CREATE TABLE IF NOT EXISTS buckets (start REAL PRIMARY KEY, data BLOB NOT NULL, written_at REAL NOT NULL)"
# the bucket that was open at a graceful shutdown (at most one row)
OPEN_SCHEMA = "CREATE TABLE IF NOT EXISTS open_bucket (start REAL PRIMARY KEY, data BLOB NOT NULL, written_at REAL NOT NULL)"
FORMAT_VERSION = 1


def _sk(s: Sketch) -> str:
    return base64.b64encode(s.to_bytes()).decode("ascii")


def _unsk(text: str) -> Sketch:
    return Sketch.from_bytes(base64.b64decode(text))


def _extra_gauges(r: RuntimeAgg) -> dict:
    return {name: getattr(r, name) for name in RUNTIME_EXTRA_GAUGES if getattr(r, name) is not None}


def bucket_to_bytes(b: Bucket) -> bytes:
    doc = {
        "v": FORMAT_VERSION,
        "start": b.start,
        "routes": [[k[0], k[1], _sk(a.sketch), a.errors] for k, a in b.routes.items()],
        "deps": [[k[0], k[1], k[2], _sk(a.sketch), a.errors] for k, a in b.deps.items()],
        "breakdown": [[k[0], k[1], a.all, a.slow, a.requests, a.slow_requests] for k, a in b.breakdown.items()],
        "pools": [[k[0], k[1], k[2], p.used, p.max, p.pending, p.idle, _sk(p.wait), p.timeouts, p.updated_s, p.processes] for k, p in b.pools.items()],
        "breakers": [[k[0], k[1], br.state, br.transitions, br.calls, br.updated_s] for k, br in b.breakers.items()],
        "lag": [[k[0], k[1], k[2], vars(lp)] for k, lp in b.lag.items()],
        "runtime": [
            [k, r.cpu, r.rss, r.threads, _sk(r.gc_pause), _sk(r.loop_lag), r.updated_s, r.run_queue_wait, _extra_gauges(r)] for k, r in b.runtime.items()
        ],
        "queue_waits": [[k[0], k[1], _sk(a.sketch), a.errors] for k, a in b.queue_waits.items()],
        "counters": [[k[0], k[1], k[2], v] for k, v in b.counters.items()],
    }
    return zlib.compress(json.dumps(doc, separators=(",", ":")).encode("utf-8"), 6)


def bucket_from_bytes(blob: bytes) -> Bucket:
    try:
        doc = json.loads(zlib.decompress(blob))
    except (zlib.error, ValueError) as exc:
        raise ValueError(f"corrupt bucket row: {exc}") from exc
    if doc.get("v") != FORMAT_VERSION:
        raise ValueError(f"unsupported bucket format {doc.get('v')!r}")
    b = Bucket(float(doc["start"]))
    for svc, route, sk, errors in doc["routes"]:
        b.routes[(svc, route)] = RouteAgg(_unsk(sk), int(errors))
    for svc, kind, target, sk, errors in doc["deps"]:
        b.deps[(svc, kind, target)] = RouteAgg(_unsk(sk), int(errors))
    for svc, route, all_, slow, requests, slow_requests in doc["breakdown"]:
        a = BreakdownAgg()
        a.all, a.slow, a.requests, a.slow_requests = dict(all_), dict(slow), int(requests), int(slow_requests)
        b.breakdown[(svc, route)] = a
    for svc, kind, name, used, pmax, pending, idle, sk, timeouts, updated, *rest in doc["pools"]:  # rows before processes have 10 fields
        p = PoolAgg(_unsk(sk))
        p.used, p.max, p.pending, p.idle, p.timeouts, p.updated_s = used, pmax, pending, idle, timeouts, updated
        p.processes = rest[0] if rest else None
        b.pools[(svc, kind, name)] = p
    for svc, name, state, transitions, calls, updated in doc["breakers"]:
        br = BreakerAgg()
        br.state, br.transitions, br.calls, br.updated_s = state, dict(transitions), dict(calls), updated
        b.breakers[(svc, name)] = br
    for group, topic, partition, fields in doc["lag"]:
        b.lag[(group, topic, int(partition))] = LagPoint(**fields)
    for svc, cpu, rss, threads, gc, loop, updated, *rest in doc["runtime"]:  # rows before run-queue wait have 7 fields
        r = RuntimeAgg(_unsk(gc), _unsk(loop))
        r.cpu, r.rss, r.threads, r.updated_s = cpu, rss, threads, updated
        r.run_queue_wait = rest[0] if rest else None
        for name, v in (rest[1] if len(rest) > 1 else {}).items():  # rows before the accept backlog have 8 fields
            if name in RUNTIME_EXTRA_GAUGES:
                setattr(r, name, v)
        b.runtime[svc] = r
    for svc, route, sk, errors in doc.get("queue_waits", ()):
        b.queue_waits[(svc, route)] = RouteAgg(_unsk(sk), int(errors))
    for svc, name, key, v in doc["counters"]:
        b.counters[(svc, name, key)] = float(v)
    return b


class SqlitePersistence:
    """Closed buckets to/from one SQLite file; see the module docstring."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path) if str(path) == ":memory:" else str(Path(path).expanduser())
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(SCHEMA)
        self._db.execute(OPEN_SCHEMA)
        row = self._db.execute("SELECT MAX(start) FROM buckets").fetchone()
        self._written_upto = row[0] if row and row[0] is not None else float("-inf")
        self.load_errors = 0
        self._closed = False

    def load_into(self, store: Store) -> int:
        """Restore buckets within the store's memory retention; returns how many were restored."""
        horizon = store.clock() - store.config.memory_retention_s - store.config.bucket_seconds
        with self._lock:
            rows = self._db.execute("SELECT start, data FROM buckets WHERE start >= ? ORDER BY start", (horizon,)).fetchall()
        restored = 0
        for _start, data in rows:
            try:
                bucket = bucket_from_bytes(data)
            except (ValueError, KeyError, TypeError):
                self.load_errors += 1
                continue
            if store.restore_bucket(bucket):
                restored += 1
        restored += self._load_open(store)
        return restored

    def _load_open(self, store: Store) -> int:
        """The bucket saved open at the last graceful shutdown: live again if its interval is
        still running, else a closed bucket (written to ``buckets`` right away)."""
        with self._lock:
            rows = self._db.execute("SELECT start, data FROM open_bucket").fetchall()
            self._db.execute("DELETE FROM open_bucket")
        loaded = 0
        for _start, data in rows:
            try:
                bucket = bucket_from_bytes(data)
            except (ValueError, KeyError, TypeError):
                self.load_errors += 1
                continue
            if bucket.start + store.config.bucket_seconds <= store.clock() - store.config.memory_retention_s:
                continue
            if not store.merge_into_open(bucket):
                with self._lock:
                    self._db.execute(
                        "INSERT INTO buckets (start, data, written_at) VALUES (?, ?, ?) ON CONFLICT(start) DO UPDATE SET data=excluded.data",
                        (bucket.start, data, store.clock()),
                    )
                    self._written_upto = max(self._written_upto, bucket.start)
            loaded += 1
        return loaded

    def flush(self, store: Store) -> int:
        """Write closed buckets not yet written, prune rows past the disk retention; returns rows written."""
        if self._closed:
            return 0
        buckets = store.closed_buckets(after_start=self._written_upto)
        now = store.clock()
        rows = [(b.start, bucket_to_bytes(b), now) for b in buckets if not b.is_empty()]
        with self._lock:
            if rows:
                self._db.execute("BEGIN")
                try:
                    self._db.executemany(
                        "INSERT INTO buckets (start, data, written_at) VALUES (?, ?, ?) ON CONFLICT(start) DO UPDATE SET data=excluded.data, written_at=excluded.written_at",
                        rows,
                    )
                    self._db.execute("COMMIT")
                except sqlite3.Error:
                    self._db.execute("ROLLBACK")
                    raise
            if buckets:
                self._written_upto = max(self._written_upto, buckets[-1].start)
            self._db.execute("DELETE FROM buckets WHERE start < ?", (now - store.config.disk_retention_s,))
        return len(rows)

    def _save_open(self, store: Store) -> None:
        bucket = store.open_bucket()
        with self._lock:
            self._db.execute("DELETE FROM open_bucket")
            if bucket is not None and not bucket.is_empty():
                self._db.execute("INSERT INTO open_bucket (start, data, written_at) VALUES (?, ?, ?)", (bucket.start, bucket_to_bytes(bucket), store.clock()))

    def bucket_count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM buckets").fetchone()[0]

    def close(self, store: Store | None = None) -> None:
        """Flush (when given the store) and close; idempotent."""
        if self._closed:
            return
        if store is not None:
            store.flush_due()
            self.flush(store)
            self._save_open(store)
        self._closed = True
        with self._lock:
            self._db.close()
