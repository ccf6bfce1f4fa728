"""Unit tests for shop.load: mix parsing, percentiles, request specs, and a real run against an in-process ASGI app."""

from __future__ import annotations

import asyncio
import collections
import json
import random
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from shop.load import DEFAULT_MIX, ROUTES, parse_mix, percentile_ms, run_load
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_parse_mix():
    assert parse_mix("product=3, search=1.5,health") == {"product": 3.0, "search": 1.5, "health": 1.0}


@pytest.mark.parametrize(
    ("text", "message"),
    [("nope=1", "unknown route 'nope'"), ("product=x", "not a number"), ("product=-1", ">= 0"), ("product=0", "positive weight"), ("", "positive weight")],
)
def test_parse_mix_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_mix(text)


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile_ms(values, 50) == 50.0
    assert percentile_ms(values, 99) == 99.0
    assert percentile_ms(values, 100) == 100.0
    assert percentile_ms([7.0], 99) == 7.0
    assert percentile_ms([], 99) != percentile_ms([], 99)  # NaN


def test_every_route_builds_a_request_the_shop_understands():
    rng = random.Random(3)
    for name, build in ROUTES.items():
        spec = build(rng)
        assert spec.route == name
        assert spec.path.startswith("/")
        assert spec.method in ("GET", "POST")
    order = ROUTES["place_order"](rng).json
    assert order["customer"].startswith("customer-") and 1 <= len(order["lines"]) <= 3
    assert set(DEFAULT_MIX) <= set(ROUTES)


def _fake_shop() -> Starlette:
    async def ok(request):
        return JSONResponse({"ok": True})

    async def broken(request):
        return JSONResponse({"error": "boom"}, status_code=500)

    return Starlette(routes=[Route("/products/{id}", ok), Route("/search", broken), Route("/health", ok), Route("/orders", ok, methods=["GET", "POST"])])


def test_run_load_sends_at_the_fixed_rate_and_counts_errors_per_route():
    lines: list[str] = []
    result = asyncio.run(
        run_load(
            "http://shop.test",
            rate_rps=40,
            duration_s=1.5,
            concurrency=4,
            mix={"product": 2, "search": 1, "place_order": 1},
            seed=7,
            progress=lines.append,
            transport=httpx.ASGITransport(app=_fake_shop()),
        )
    )
    assert result.sent == 60
    assert result.completed == 60
    assert result.errors == result.per_route["search"].count > 0
    assert result.per_route["product"].errors == 0 and result.per_route["place_order"].errors == 0
    assert result.per_route["product"].count > result.per_route["search"].count
    assert result.status_counts["500"] == result.per_route["search"].count
    assert result.p99_ms() >= result.p50_ms() > 0
    assert lines and lines[0].startswith("[load]") and "p99=" in lines[0]
    assert "search" in result.summary()


def test_a_cancelled_load_leaves_no_task_behind():
    """A background load stopped early (the scenario suite's ``BackgroundLoad.stop``) ends its reporter and requests too."""

    async def main() -> set[asyncio.Task]:
        load = asyncio.create_task(
            run_load("http://shop.test", rate_rps=50, duration_s=30, concurrency=4, seed=1, progress=None, transport=httpx.ASGITransport(app=_fake_shop()))
        )
        await asyncio.sleep(1.3)  # the reporter ran once, requests are under way
        load.cancel()
        with pytest.raises(asyncio.CancelledError):
            await load
        return asyncio.all_tasks() - {asyncio.current_task()}

    assert asyncio.run(main()) == set()


def test_run_load_rejects_unknown_routes():
    with pytest.raises(ValueError, match="unknown route"):
        asyncio.run(run_load("http://shop.test", 10, 1, mix={"checkout": 1}, progress=None))


def test_locustfile_uses_the_same_mix():
    code = "import collections, json, locustfile; print(json.dumps(collections.Counter(f.__name__ for f in locustfile.ShopUser.tasks)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=EXAMPLES, capture_output=True, text=True, timeout=60, check=True).stdout
    counts = json.loads(out.strip().splitlines()[-1])
    assert collections.Counter({k.removeprefix("request_"): v for k, v in counts.items()}) == collections.Counter({k: int(v) for k, v in DEFAULT_MIX.items()})


def test_every_switch_has_a_focus_mix_of_known_routes():
    from shop.load import SWITCH_MIX, mix_for
    from shop.switches import SWITCH_NAMES

    assert set(SWITCH_MIX) == set(SWITCH_NAMES)
    assert all(set(mix) <= set(ROUTES) for mix in SWITCH_MIX.values())
    assert mix_for([]) == DEFAULT_MIX
    assert mix_for(["slow_query", "n_plus_one"]) == {"search": 60, "product": 80, "orders": 60}
    with pytest.raises(ValueError, match="no focus mix"):
        mix_for(["nope"])
