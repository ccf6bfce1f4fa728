"""redis-py in the library matrix: command spans, DB metrics and breakdown (real redis-server)."""

import pytest

from tests.matrix.harness import Traced, check_route, fastapi_app, installed

APP = fastapi_app(
    """import redis
cache = redis.Redis.from_url(os.environ["APP_REDIS_URL"])
""",
    """
@app.get("/redis/{n}")
def with_redis(n: int):
    cache.set(f"cart:{n}", "secret-cart", ex=60)
    return {"cart": cache.get(f"cart:{n}").decode()}
""",
)


@pytest.fixture(scope="module")
def traced(redis, tmp_path_factory):
    installed("redis")
    with Traced(APP, tmp_path_factory.mktemp("redis"), {"APP_REDIS_URL": redis.url}) as traced:
        yield traced


def test_redis(traced, redis):
    common = {"db.system.name": "redis", "server.port": redis.port}
    check_route(traced, "/redis/{n}", [{"db.query.text": "SET ? ? ? ?", **common}, {"db.query.text": "GET ?", **common}], component="db")
