"""The store's query views: the JSON the REST API serves, the series the dashboards draw,
and the snapshot ``/metrics`` exports.

Usage (methods of ``Store``; shapes of ../shared/CONTRACT.md, strict JSON)::

    store.endpoints("shop", window_s=60)     # [{"service", "route", "rps", "error_rate", "p50_ms", ...}]
    store.timeseries("latency_p99_ms", service="shop", window_s=3600)
    store.exposition_snapshot()              # (running totals, latest gauges) for /metrics

Views: ``health``, ``services``, ``endpoints``, ``dependencies``, ``pools`` and ``breakers``
(latest gauges; waits, timeouts, calls over the last ``window_s``), ``queue_waits``,
``consumer_lag`` (and ``lag_statuses``), ``breakdown``; series for dashboards:
``timeseries`` (``TIMESERIES_METRICS``, one point per bucket), ``histogram`` and ``heatmap``
(counts on the log-spaced ``HISTOGRAM_LE_MS`` ladder, 0.1 ms .. 100 s, trimmed to the
data).  A view over a window merges the buckets that overlap it (the open bucket
included); rates divide by the time those buckets cover (``BucketRing.effective_window``).
Latencies are milliseconds rounded to the microsecond; rates and ratios to 6 decimals.

Relies on ``Store`` for ``config``, ``clock``, ``_lock``, ``_ring``, ``kept``, ``monitoring``,
``_new_sketch`` and the state ``StoreWrites`` owns (services, lag samples and sources).
"""

from __future__ import annotations

import bisect
import math

from chokepoint.collector import lag as lag_rules
from chokepoint.collector.catalog import BREAKER_STATES, TIMESERIES_METRICS
from chokepoint.collector.protocol import RUNTIME_GAUGES, BreakdownAgg, BreakerAgg, Bucket, LagPoint, PoolAgg, RouteAgg, RuntimeAgg
from chokepoint.collector.sketch import Sketch

SLOW_FLOOR_S = 1.0  # the agent's CHOKEPOINT_SLOW_FLOOR_MS default: a request above it is always "slow"

# log-spaced latency ladder for histogram()/heatmap(): 10 steps per decade, 0.1 ms .. 100 s
HISTOGRAM_LE_MS: tuple[float, ...] = tuple(float(f"{10 ** (e / 10):.4g}") for e in range(-10, 51))


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def _rate(n: float, d: float) -> float:
    return round(n / d, 6) if d > 0 else 0.0


class StoreViews:
    """The read half of ``Store``; see the module docstring."""

    def health(self) -> dict:
        # lazy: native_ingest imports the span path, which imports the store
        from chokepoint.collector.native_ingest import status as ingest_core_status

        with self._lock:
            return {
                "status": "ok",
                "services": len(self._services),
                "spans_total": sum(self.monitoring.ingested_spans.values()),
                "metric_points_total": sum(self.monitoring.ingested_points.values()),
                "rejected_total": sum(self.monitoring.rejected.values()),
                "dropped_total": sum(self.monitoring.dropped.values()),
                "buckets_in_memory": len(self._ring),
                "kept_traces": len(self.kept),
                "uptime_s": round(self.clock() - self._started_s, 3),
                "blind_spots": self.blind_spots(),
                **ingest_core_status(),  # native_ingest: "on" or "off (why)", its request and fallback counts
            }

    def _merged_routes(self, window_s: float, table: str = "routes") -> dict[tuple, RouteAgg]:
        """Copies of one latency table (``routes``, ``deps``, ``queue_waits``) merged over a window."""
        out: dict[tuple, RouteAgg] = {}
        for b in self._ring.window_list(window_s):
            for k, v in getattr(b, table).items():
                mine = out.get(k)
                if mine is None:
                    out[k] = v.copy()
                else:
                    mine.merge(v)
        return out

    def services(self, window_s: float = 60) -> list[dict]:
        with self._lock:
            routes = self._merged_routes(window_s)
            span = self._ring.effective_window(window_s)
            per: dict[str, list[float]] = {s: [0, 0, 0] for s in self._services}
            for (svc, _route), agg in routes.items():
                p = per.setdefault(svc, [0, 0, 0])
                p[0] += 1
                p[1] += agg.count
                p[2] += agg.errors
            return [{"name": svc, "endpoints": int(p[0]), "rps": _rate(p[1], span), "error_rate": _rate(p[2], p[1])} for svc, p in sorted(per.items())]

    def endpoints(self, service: str | None = None, window_s: float = 60) -> list[dict]:
        with self._lock:
            routes = self._merged_routes(window_s)
            span = self._ring.effective_window(window_s)
            out = []
            for (svc, route), agg in sorted(routes.items()):
                if service is not None and svc != service:
                    continue
                s = agg.sketch
                p50, p90, p99, p999 = s.quantiles((0.5, 0.9, 0.99, 0.999))
                out.append(
                    {
                        "service": svc,
                        "route": route,
                        "rps": _rate(s.count, span),
                        "error_rate": _rate(agg.errors, s.count),
                        "p50_ms": _ms(p50),
                        "p90_ms": _ms(p90),
                        "p99_ms": _ms(p99),
                        "p999_ms": _ms(p999),
                        "count": s.count,
                    }
                )
            return out

    def dependencies(self, window_s: float = 60) -> list[dict]:
        with self._lock:
            deps = self._merged_routes(window_s, "deps")
            span = self._ring.effective_window(window_s)
            return [
                {
                    "service": svc,
                    "kind": kind,
                    "target": target,
                    "rps": _rate(agg.count, span),
                    "error_rate": _rate(agg.errors, agg.count),
                    "p50_ms": _ms(agg.sketch.quantile(0.5)),
                    "p99_ms": _ms(agg.sketch.quantile(0.99)),
                    "count": agg.count,
                }
                for (svc, kind, target), agg in sorted(deps.items())
            ]

    def pools(self, window_s: float = 60) -> list[dict]:
        """Latest gauges; ``wait_p99_ms`` and ``timeouts`` over the last ``window_s`` (60 s)."""
        with self._lock:
            latest = Bucket(0.0)
            for b in self._ring.window_list(self.config.memory_retention_s):
                for k, v in b.pools.items():
                    mine = latest.pools.get(k)
                    if mine is None:
                        latest.pools[k] = PoolAgg(self._new_sketch())
                        mine = latest.pools[k]
                    mine.used = v.used if v.used is not None else mine.used
                    mine.max = v.max if v.max is not None else mine.max
                    mine.pending = v.pending if v.pending is not None else mine.pending
                    mine.idle = v.idle if v.idle is not None else mine.idle
                    mine.processes = v.processes if v.processes is not None else mine.processes
                    if b.start + self.config.bucket_seconds > self.clock() - window_s:
                        mine.wait.merge(v.wait)
                        mine.timeouts += v.timeouts
            return [
                {
                    "service": svc,
                    "kind": kind,
                    "name": name,
                    "used": p.used,
                    "max": p.max,
                    "pending": p.pending,
                    "idle": p.idle,
                    "processes": p.processes,
                    "wait_p99_ms": _ms(p.wait.quantile(0.99)),
                    "wait_count": p.wait.count,
                    "timeouts": p.timeouts,
                }
                for (svc, kind, name), p in sorted(latest.pools.items())
                # a pool with no gauge and no checkout (an internal executor, a folded name) tells nothing
                if p.used is not None or p.max is not None or p.pending is not None or p.wait.count
            ]

    def queue_waits(self, window_s: float = 60) -> list[dict]:
        """Per service and route: the wait before the server saw a request over ``window_s``
        (``count``, ``p50_ms`` / ``p95_ms`` / ``p99_ms``, ``mean_ms``), from ``X-Request-Start``."""
        with self._lock:
            merged = self._merged_routes(window_s, "queue_waits")
            return [
                {
                    "service": svc,
                    "route": route,
                    "count": agg.count,
                    "p50_ms": _ms(agg.sketch.quantile(0.5)),
                    "p95_ms": _ms(agg.sketch.quantile(0.95)),
                    "p99_ms": _ms(agg.sketch.quantile(0.99)),
                    "mean_ms": _ms(agg.sketch.sum / agg.count) if agg.count else None,
                }
                for (svc, route), agg in sorted(merged.items())
                if agg.count
            ]

    def breakers(self, window_s: float = 60) -> list[dict]:
        """Latest state; transitions, rejected, calls and error rate over the last ``window_s`` (60 s)."""
        with self._lock:
            state: dict[tuple[str, str], int | None] = {}
            agg: dict[tuple[str, str], BreakerAgg] = {}
            lo = self.clock() - window_s
            for b in self._ring.window_list(self.config.memory_retention_s):
                for k, v in b.breakers.items():
                    if v.state is not None or k not in state:
                        state[k] = v.state if v.state is not None else state.get(k)
                    a = agg.setdefault(k, BreakerAgg())
                    if b.start + self.config.bucket_seconds > lo:
                        a.merge(v)
            out = []
            for (svc, name), a in sorted(agg.items()):
                st = state.get((svc, name))
                calls = {r: a.calls.get(r, 0.0) for r in ("success", "failure", "rejected")}
                for r, v in a.calls.items():
                    calls.setdefault(r, v)
                judged = calls["success"] + calls["failure"]
                out.append(
                    {
                        "service": svc,
                        "name": name,
                        "state": BREAKER_STATES[st] if st is not None else "closed",
                        "transitions": sum(a.transitions.values()),
                        "transitions_to": dict(a.transitions),
                        "rejected": calls["rejected"],
                        "calls": calls,
                        "error_rate": _rate(calls["failure"], judged),
                    }
                )
            return out

    def consumer_lag(self) -> list[dict]:
        """One row per partition.  When both the pull monitor and the agent report a
        partition, the pull monitor's row wins while it is fresh (< 5 min; it reads the
        broker, like Burrow), and a missing time lag is taken from the other source."""
        with self._lock:
            latest: dict[tuple[str, str, int], LagPoint] = {}
            for b in self._ring.window_list(self.config.memory_retention_s):
                for k, v in b.lag.items():
                    latest[k] = v
            now = self.clock()
            for (group, topic, partition, source), lp in self._lag_latest.items():
                if now - lp.timestamp_s > self.config.memory_retention_s:
                    continue
                key = (group, topic, partition)
                have = latest.get(key)
                if (
                    have is None
                    or source == have.source
                    or (source == "pull" and now - lp.timestamp_s < 300)
                    or (have.source != "pull" and lp.timestamp_s > have.timestamp_s)
                ):
                    other = have
                    latest[key] = lp
                else:
                    other = lp
                if latest[key].time_lag_s is None and other is not None and other.time_lag_s is not None:
                    latest[key] = LagPoint(**{**vars(latest[key]), "time_lag_s": other.time_lag_s})
            out = []
            for (group, topic, partition), lp in sorted(latest.items()):
                samples = self._lag_samples.get((group, topic, partition, lp.source))
                status = lag_rules.evaluate(list(samples), now, self.config.lag_rules) if samples else lp.status
                out.append(
                    {
                        "group": group,
                        "topic": topic,
                        "partition": partition,
                        "lag": lp.lag,
                        "time_lag_s": None if lp.time_lag_s is None else round(lp.time_lag_s, 3),
                        "status": status,
                        "committed_offset": lp.committed_offset,
                        "log_end_offset": lp.log_end_offset,
                        "source": lp.source,
                        "service": self._consumer_services.get((group, topic)),
                        "updated": lp.timestamp_s,
                    }
                )
            return out

    # ------------------------------------------------------------ series for dashboards
    def timeseries(self, metric: str, service: str | None = None, target: str | None = None, window_s: float = 3600) -> list[dict]:
        """``[{"labels": {...}, "points": [[ts, value], ...]}]``, one point per bucket, oldest first."""
        if metric not in TIMESERIES_METRICS:
            raise ValueError(f"unknown metric {metric!r}; one of {', '.join(TIMESERIES_METRICS)}")
        size = self.config.bucket_seconds
        series: dict[tuple, list] = {}

        now = self.clock()

        def elapsed(ts: float) -> float:
            """A closed bucket spans ``size``; the open one only up to now."""
            return max(min(size, now - ts), 1.0)

        def point(labels: tuple, ts: float, value: float | None) -> None:
            if value is not None:
                series.setdefault(labels, []).append([ts, round(value, 6)])

        with self._lock:
            for b in self._ring.window_list(window_s):
                ts = b.start
                if metric in ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_p999_ms", "rps", "error_rate"):
                    for (svc, route), agg in b.routes.items():
                        if (service is not None and svc != service) or (target is not None and route != target):
                            continue
                        lab = (("service", svc), ("route", route))
                        if metric == "rps":
                            point(lab, ts, agg.count / elapsed(ts))
                        elif metric == "error_rate":
                            point(lab, ts, agg.errors / agg.count if agg.count else 0.0)
                        else:
                            q = {"latency_p50_ms": 0.5, "latency_p90_ms": 0.9, "latency_p99_ms": 0.99, "latency_p999_ms": 0.999}[metric]
                            point(lab, ts, _ms(agg.sketch.quantile(q)))
                elif metric in ("dependency_p99_ms", "dependency_rps"):
                    for (svc, kind, tgt), agg in b.deps.items():
                        if (service is not None and svc != service) or (target is not None and tgt != target):
                            continue
                        lab = (("service", svc), ("kind", kind), ("target", tgt))
                        point(lab, ts, agg.count / elapsed(ts) if metric == "dependency_rps" else _ms(agg.sketch.quantile(0.99)))
                elif metric.startswith("pool_"):
                    for (svc, kind, name), p in b.pools.items():
                        if (service is not None and svc != service) or (target is not None and name != target):
                            continue
                        lab = (("service", svc), ("kind", kind), ("pool", name))
                        v = {"pool_used": p.used, "pool_max": p.max, "pool_pending": p.pending}.get(metric)
                        point(lab, ts, _ms(p.wait.quantile(0.99)) if metric == "pool_wait_p99_ms" else v)
                elif metric in ("cpu_utilization", "cpu_run_queue_wait", "rss_bytes", "gc_pause_p99_ms", "event_loop_lag_p99_ms", "threads"):
                    for svc, r in b.runtime.items():
                        if service is not None and svc != service:
                            continue
                        lab = (("service", svc),)
                        v = {
                            "cpu_utilization": r.cpu,
                            "cpu_run_queue_wait": r.run_queue_wait,
                            "rss_bytes": r.rss,
                            "threads": r.threads,
                            "gc_pause_p99_ms": _ms(r.gc_pause.quantile(0.99)),
                            "event_loop_lag_p99_ms": _ms(r.loop_lag.quantile(0.99)),
                        }[metric]
                        point(lab, ts, v)
                elif metric == "breaker_state":
                    for (svc, name), br in b.breakers.items():
                        if (service is not None and svc != service) or (target is not None and name != target):
                            continue
                        point((("service", svc), ("breaker", name)), ts, br.state)
                else:  # consumer_lag, consumer_time_lag_s
                    for (group, topic, partition), lp in b.lag.items():
                        if target is not None and target != f"{group}/{topic}/{partition}":
                            continue
                        lab = (("group", group), ("topic", topic), ("partition", str(partition)))
                        point(lab, ts, lp.lag if metric == "consumer_lag" else lp.time_lag_s)
        return [{"labels": dict(lab), "points": pts} for lab, pts in sorted(series.items())]

    def _route_sketches(self, service: str, route: str, window_s: float) -> list[tuple[float, Sketch]]:
        out = []
        for b in self._ring.window_list(window_s):
            agg = b.routes.get((service, route))
            if agg is not None:
                out.append((b.start, agg.sketch))
        return out

    @staticmethod
    def _ladder_counts(sketch: Sketch) -> list[int]:
        counts = [0] * (len(HISTOGRAM_LE_MS) + 1)
        for k, c in sketch.items():
            ms = sketch.value_of(k) * 1000.0
            ms = min(max(ms, sketch.min * 1000.0), sketch.max * 1000.0)
            counts[bisect.bisect_left(HISTOGRAM_LE_MS, ms)] += c
        counts[0] += sketch.zero_count + sum(sketch.negative_bins.values())
        return counts

    def histogram(self, service: str, route: str, window_s: float = 60) -> list[dict]:
        """Per-bucket (not cumulative) counts on the log-spaced ``HISTOGRAM_LE_MS`` ladder, trimmed to the data."""
        with self._lock:
            s = self._new_sketch()
            for _ts, sk in self._route_sketches(service, route, window_s):
                s.merge(sk)
        if s.count == 0:
            return []
        counts = self._ladder_counts(s)
        nz = [i for i, c in enumerate(counts) if c]
        les = [*list(HISTOGRAM_LE_MS), math.inf]
        return [{"le_ms": les[i] if les[i] != math.inf else None, "count": counts[i]} for i in range(nz[0], nz[-1] + 1)]

    def heatmap(self, service: str, route: str, window_s: float = 3600) -> dict:
        """Counts per bucket time and latency band (``le_ms`` ladder trimmed to the data)."""
        with self._lock:
            rows = [(ts, self._ladder_counts(sk)) for ts, sk in self._route_sketches(service, route, window_s)]
        if not rows:
            return {"times": [], "le_ms": [], "counts": []}
        used = [i for _ts, c in rows for i, n in enumerate(c) if n]
        lo, hi = min(used), max(used)
        les = [*list(HISTOGRAM_LE_MS), None]
        return {"times": [ts for ts, _c in rows], "le_ms": les[lo : hi + 1], "counts": [c[lo : hi + 1] for _ts, c in rows]}

    def breakdown(self, service: str, route: str, window_s: float = 60) -> dict:
        """Average milliseconds per request by component, for all requests and for slow ones."""
        with self._lock:
            agg = BreakdownAgg()
            count = 0
            sk = self._new_sketch()
            for b in self._ring.window_list(window_s):
                bd = b.breakdown.get((service, route))
                if bd is not None:
                    agg.merge(bd)
                r = b.routes.get((service, route))
                if r is not None:
                    count += r.count
                    sk.merge(r.sketch)
        requests = agg.requests or count
        slow_requests = agg.slow_requests
        if not slow_requests and agg.slow and sk.count:
            # metric-fed breakdown (no per-request count): the agent marks as slow the requests
            # above the route's rolling p95 and every request above its floor (1 s), so the slow
            # requests are the more of those two counts (all of them when every request is slow)
            above_p95 = sk.count - sk.count_le(sk.quantile(0.95) or 0.0)
            above_floor = sk.count - sk.count_le(SLOW_FLOOR_S)
            slow_requests = max(1, above_p95, above_floor)
        return {
            "all": {c: round(v * 1000.0 / requests, 3) for c, v in sorted(agg.all.items())} if requests else {},
            "slow": {c: round(v * 1000.0 / slow_requests, 3) for c, v in sorted(agg.slow.items())} if slow_requests else {},
            "requests": requests,
            "slow_requests": slow_requests,
        }

    # ------------------------------------------------------------ for /metrics
    def exposition_snapshot(self) -> tuple[Bucket, Bucket]:
        """(running totals: closed buckets + open ones merged; latest gauges) — copies.

        The second bucket carries only the newest gauge values (pool used/max/pending/idle,
        breaker state, runtime CPU/RSS/threads) with empty sketches and zero counters.
        """
        with self._lock:
            totals = self._ring.totals_with_open()
            latest = Bucket(0.0)
            for s in sorted(self._ring.by_start):
                b = self._ring.by_start[s]
                for k, v in b.pools.items():
                    p = latest.pools.get(k)
                    if p is None:
                        p = latest.pools[k] = PoolAgg(self._new_sketch())
                    for name in ("used", "max", "pending", "idle"):
                        val = getattr(v, name)
                        if val is not None:
                            setattr(p, name, val)
                for k, v in b.breakers.items():
                    br = latest.breakers.get(k)
                    if br is None:
                        br = latest.breakers[k] = BreakerAgg()
                    if v.state is not None:
                        br.state = v.state
                for k, v in b.runtime.items():
                    r = latest.runtime.get(k)
                    if r is None:
                        r = latest.runtime[k] = RuntimeAgg(self._new_sketch(), self._new_sketch())
                    for name in RUNTIME_GAUGES:
                        val = getattr(v, name)
                        if val is not None:
                            setattr(r, name, val)
            return totals, latest

    def lag_statuses(self) -> dict[tuple[str, str, int], str]:
        return {(r["group"], r["topic"], r["partition"]): r["status"] for r in self.consumer_lag()}
