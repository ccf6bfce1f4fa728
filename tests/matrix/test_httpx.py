"""httpx in the library matrix (sync and async clients): client spans, HTTP client metrics,
breakdown and propagation (real local server)."""

import pytest
from instrumented_app import Downstream

from tests.matrix.harness import Traced, check_http_client, fastapi_app, installed

APP = fastapi_app(
    """import httpx
DOWN = os.environ["APP_DOWNSTREAM"]
client = httpx.Client(timeout=5)
""",
    """
@app.get("/httpx/{n}")
def with_httpx(n: int):
    return {"status": client.get(f"{DOWN}/stock/{n}?token=secret-token").status_code}

@app.get("/httpx-async/{n}")
async def with_httpx_async(n: int):
    async with httpx.AsyncClient(timeout=5) as session:
        return {"status": (await session.get(f"{DOWN}/price/{n}?token=secret-token")).status_code}
""",
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    installed("httpx")
    with Downstream() as downstream, Traced(APP, tmp_path_factory.mktemp("httpx"), {"APP_DOWNSTREAM": downstream.url}) as traced:
        yield traced, downstream


def test_httpx_client(stack):
    check_http_client(*stack, "/httpx/{n}", "/stock/")


def test_httpx_async_client(stack):
    check_http_client(*stack, "/httpx-async/{n}", "/price/")
