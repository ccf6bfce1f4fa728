"""urllib3 in the library matrix: client spans, HTTP client metrics, breakdown and propagation (real local server)."""

import pytest
from instrumented_app import Downstream

from tests.matrix.harness import Traced, check_http_client, fastapi_app, installed

APP = fastapi_app(
    """import urllib3
DOWN = os.environ["APP_DOWNSTREAM"]
pool = urllib3.PoolManager(timeout=urllib3.Timeout(total=5))
""",
    """
@app.get("/urllib3/{n}")
def with_urllib3(n: int):
    return {"status": pool.request("GET", f"{DOWN}/stock/{n}?token=secret-token").status}
""",
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    installed("urllib3")
    with Downstream() as downstream, Traced(APP, tmp_path_factory.mktemp("urllib3"), {"APP_DOWNSTREAM": downstream.url}) as traced:
        yield traced, downstream


def test_urllib3(stack):
    check_http_client(*stack, "/urllib3/{n}", "/stock/")
