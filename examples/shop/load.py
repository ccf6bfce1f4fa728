"""An async load generator for the demo shop: fixed rate, bounded concurrency, fixed duration.

Usage::

    python -m shop.load --url http://127.0.0.1:8000 --rate 50 --duration 30 \\
        [--concurrency 32] [--mix product=35,search=20,place_order=10 | --focus slow_query] [--seed 1]

or from Python (tests, the demo launcher)::

    result = asyncio.run(run_load("http://127.0.0.1:8000", rate_rps=50, duration_s=30))
    result.p99_ms("search"), result.errors, result.per_route["product"].count

Requests are started on a fixed schedule (``rate_rps``, open model) for ``duration_s``
seconds, each picking a route by the weights of ``mix`` (default :data:`DEFAULT_MIX`,
the same mix as ``examples/locustfile.py``; ``--focus SWITCH`` / :func:`mix_for` use a
mix that puts that switch's route in focus, :data:`SWITCH_MIX`).  At most ``concurrency`` requests are in
flight; a request that has to wait for a free slot is counted as ``late``.  Latency is
measured from the request's *scheduled* start, so waiting for a slot counts (no
coordinated omission).  A response with status >= 400, a timeout or a connection
error counts as an error.  Every second a progress line is printed::

    [load]   3s sent=150 rps=50.0 p50=4.1ms p99=12.3ms errors=0 inflight=2 late=0

and the run stops by itself, waiting at most ``timeout_s`` for the last requests.

Routes (:data:`ROUTES`): ``product``, ``search``, ``recommendations``, ``export``,
``quote``, ``place_order``, ``orders``, ``order``, ``health``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

PRODUCTS = 200_000
CUSTOMERS = 20
#: What the load searches for: each prefix matches at most 400 of the 200 000 names (an index range,
#: a few ms), so a healthy shop has no slow search.  A one-word prefix ("leather") matches 10 000
#: rows, and reading and sorting them takes ~50 ms on PostgreSQL: the analyzer's slow_query bar.
SEARCH_TERMS = (
    "steel lamp",
    "wooden chair",
    "glass vase",
    "paper box",
    "copper kettle",
    "cotton bag",
    "stone bowl",
    "silver ring",
    "bamboo mat",
    "leather hat",
)
CURRENCIES = ("USD", "GBP", "JPY", "CHF")


@dataclass(frozen=True)
class RequestSpec:
    """One request to make: ``route`` is the mix name, ``path`` includes the query string."""

    route: str
    method: str
    path: str
    json: dict | None = None


def _customer(rng: random.Random) -> str:
    return f"customer-{rng.randint(1, CUSTOMERS)}"


ROUTES: dict[str, Callable[[random.Random], RequestSpec]] = {
    "product": lambda rng: RequestSpec("product", "GET", f"/products/{rng.randint(1, PRODUCTS)}"),
    "search": lambda rng: RequestSpec("search", "GET", f"/search?q={rng.choice(SEARCH_TERMS).replace(' ', '+')}"),
    "recommendations": lambda rng: RequestSpec("recommendations", "GET", f"/recommendations/{rng.randint(1, PRODUCTS)}"),
    "export": lambda rng: RequestSpec("export", "GET", "/catalog/export"),
    "quote": lambda rng: RequestSpec("quote", "GET", f"/quote?amount_cents={rng.randint(100, 100_000)}&currency={rng.choice(CURRENCIES)}"),
    "place_order": lambda rng: RequestSpec(
        "place_order",
        "POST",
        "/orders",
        {"customer": _customer(rng), "lines": [{"product_id": rng.randint(1, PRODUCTS), "quantity": rng.randint(1, 3)} for _ in range(rng.randint(1, 3))]},
    ),
    "orders": lambda rng: RequestSpec("orders", "GET", f"/orders?customer={_customer(rng)}&limit=10"),
    "order": lambda rng: RequestSpec("order", "GET", f"/orders/{rng.randint(1, 200)}"),
    "health": lambda rng: RequestSpec("health", "GET", "/health"),
}

#: Relative weights of the default route mix (shared with examples/locustfile.py).
DEFAULT_MIX: dict[str, float] = {"product": 35, "search": 20, "recommendations": 10, "quote": 10, "orders": 10, "place_order": 10, "export": 5}


#: Route mixes that put a switch's route in focus (for demos and scenario tests), so its
#: effect dominates at a moderate rate (~40 rps); :func:`mix_for` combines them.
SWITCH_MIX: dict[str, dict[str, float]] = {
    "worker_pool_saturation": {"product": 50, "search": 20, "orders": 20, "quote": 10},
    "cpu_saturation": {"recommendations": 60, "product": 30, "quote": 10},
    "event_loop_blocked": {"quote": 50, "product": 40, "search": 10},
    "db_pool_saturation": {"product": 60, "search": 20, "orders": 20},
    "slow_query": {"search": 50, "product": 40, "orders": 10},
    "n_plus_one": {"orders": 50, "product": 40, "search": 10},
    "connection_held_during_external_call": {"place_order": 50, "product": 50},
    "external_dependency_slow": {"place_order": 40, "quote": 20, "product": 40},
    "circuit_open": {"place_order": 50, "product": 50},
    "retry_storm": {"place_order": 50, "product": 50},
    "missing_timeout": {"place_order": 50, "product": 50},
    "consumer_lag": {"place_order": 60, "product": 40},
    "http_pool_saturation": {"product": 70, "search": 15, "orders": 15},
    "hot_endpoint": {"search": 60, "product": 30, "orders": 10},
    "memory_pressure": {"product": 80, "search": 20},
    "uncompressed_response": {"export": 30, "product": 60, "search": 10},
    "cacheable_reads": {"product": 60, "search": 20, "recommendations": 20},
}


def mix_for(switches: list[str] | tuple[str, ...]) -> dict[str, float]:
    """The focus mix of the given switches (summed), or :data:`DEFAULT_MIX` for none."""
    if not switches:
        return dict(DEFAULT_MIX)
    mix: dict[str, float] = {}
    for name in switches:
        if name not in SWITCH_MIX:
            raise ValueError(f"no focus mix for {name!r}; known: {', '.join(SWITCH_MIX)}")
        for route, weight in SWITCH_MIX[name].items():
            mix[route] = mix.get(route, 0.0) + weight
    return mix


def parse_mix(text: str) -> dict[str, float]:
    """``"product=3,search=1"`` -> ``{"product": 3.0, "search": 1.0}``; ``ValueError`` on bad input."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, weight = part.partition("=")
        name = name.strip()
        if name not in ROUTES:
            raise ValueError(f"unknown route {name!r} in mix; known routes: {', '.join(ROUTES)}")
        try:
            value = float(weight) if sep else 1.0
        except ValueError:
            raise ValueError(f"weight of {name!r} is not a number: {weight!r}") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"weight of {name!r} must be a finite number >= 0, got {weight!r}")
        mix[name] = value
    if not mix or sum(mix.values()) <= 0:
        raise ValueError("the mix needs at least one route with a positive weight")
    return mix


def percentile_ms(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of ascending values; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class RouteResult:
    count: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)


@dataclass
class LoadResult:
    duration_s: float = 0.0
    sent: int = 0
    late: int = 0
    errors: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)
    per_route: dict[str, RouteResult] = field(default_factory=dict)

    @property
    def completed(self) -> int:
        return sum(r.count for r in self.per_route.values())

    def p_ms(self, q: float, route: str | None = None) -> float:
        routes = [self.per_route[route]] if route is not None else list(self.per_route.values())
        return percentile_ms(sorted(v for r in routes for v in r.latencies_ms), q)

    def p50_ms(self, route: str | None = None) -> float:
        return self.p_ms(50, route)

    def p99_ms(self, route: str | None = None) -> float:
        return self.p_ms(99, route)

    def summary(self) -> str:
        lines = [f"{'route':<16}{'count':>7}{'errors':>8}{'p50_ms':>10}{'p99_ms':>10}"]
        for name, r in sorted(self.per_route.items()):
            lines.append(f"{name:<16}{r.count:>7}{r.errors:>8}{self.p50_ms(name):>10.1f}{self.p99_ms(name):>10.1f}")
        rps = self.completed / self.duration_s if self.duration_s else 0.0
        lines.append(
            f"{'all':<16}{self.completed:>7}{self.errors:>8}{self.p50_ms():>10.1f}{self.p99_ms():>10.1f}"
            f"   ({rps:.1f} rps over {self.duration_s:.1f}s, late={self.late}, status={self.status_counts})"
        )
        return "\n".join(lines)


async def run_load(
    base_url: str,
    rate_rps: float,
    duration_s: float,
    concurrency: int = 32,
    mix: dict[str, float] | None = None,
    timeout_s: float = 10.0,
    seed: int | None = None,
    progress: Callable[[str], None] | None = print,
    transport: httpx.AsyncBaseTransport | None = None,
) -> LoadResult:
    """Send ``rate_rps`` requests per second for ``duration_s`` seconds; returns what happened."""
    if rate_rps <= 0 or duration_s <= 0 or concurrency < 1:
        raise ValueError("rate_rps and duration_s must be > 0 and concurrency >= 1")
    mix = dict(mix or DEFAULT_MIX)
    for name in mix:
        if name not in ROUTES:
            raise ValueError(f"unknown route {name!r} in mix; known routes: {', '.join(ROUTES)}")
    names = [n for n, w in mix.items() if w > 0]
    weights = [mix[n] for n in names]
    rng = random.Random(seed)
    result = LoadResult(per_route={n: RouteResult() for n in names})
    slots = asyncio.Semaphore(concurrency)
    window: list[float] = []  # latencies completed since the last progress line
    inflight = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=base_url, timeout=timeout_s, limits=limits, transport=transport) as client:

        async def one(spec: RequestSpec, scheduled: float) -> None:
            nonlocal inflight
            try:
                response = await client.request(spec.method, spec.path, json=spec.json)
                status = str(response.status_code)
                failed = response.status_code >= 400
            except httpx.HTTPError as exc:
                status, failed = type(exc).__name__, True
            finally:
                inflight -= 1
                slots.release()
            latency_ms = (time.perf_counter() - scheduled) * 1000
            route = result.per_route[spec.route]
            route.count += 1
            route.latencies_ms.append(latency_ms)
            window.append(latency_ms)
            result.status_counts[status] = result.status_counts.get(status, 0) + 1
            if failed:
                route.errors += 1
                result.errors += 1

        async def reporter(started: float) -> None:
            errors_before = 0
            while True:
                await asyncio.sleep(1.0)
                batch = sorted(window)
                window.clear()
                if progress is not None:
                    progress(
                        f"[load] {time.perf_counter() - started:>4.0f}s sent={result.sent} rps={len(batch):.1f} "
                        f"p50={percentile_ms(batch, 50):.1f}ms p99={percentile_ms(batch, 99):.1f}ms "
                        f"errors={result.errors - errors_before} inflight={inflight} late={result.late}"
                    )
                errors_before = result.errors

        started = time.perf_counter()
        report_task = asyncio.create_task(reporter(started))
        tasks: set[asyncio.Task] = set()
        try:
            total = int(rate_rps * duration_s)
            for i in range(total):
                scheduled = started + i / rate_rps
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                if slots.locked():
                    result.late += 1
                await slots.acquire()
                inflight += 1
                spec = ROUTES[rng.choices(names, weights)[0]](rng)
                result.sent += 1
                task = asyncio.create_task(one(spec, scheduled))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                _, unfinished = await asyncio.wait(set(tasks), timeout=timeout_s)
                for task in unfinished:
                    task.cancel()
                if unfinished:
                    result.errors += len(unfinished)
                    result.status_counts["unfinished"] = len(unfinished)
        finally:
            # also when the caller cancels the load (a stopped background load): no task outlives it
            pending = [report_task, *tasks]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        result.duration_s = time.perf_counter() - started
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shop.load", description="fixed-rate load on the demo shop")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds")
    parser.add_argument("--concurrency", type=int, default=32, help="max requests in flight")
    parser.add_argument("--mix", default="", help="route weights, e.g. product=35,search=20 (default: the standard mix)")
    parser.add_argument("--focus", default="", help="comma-separated switches: use their focus mix (SWITCH_MIX) instead of --mix")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, seconds")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        focus = [name.strip() for name in args.focus.split(",") if name.strip()]
        mix = mix_for(focus) if focus else parse_mix(args.mix) if args.mix else None
        result = asyncio.run(
            run_load(args.url, args.rate, args.duration, args.concurrency, mix, args.timeout, args.seed, progress=lambda s: print(s, flush=True))
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.summary(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
