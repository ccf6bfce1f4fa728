"""requests in the library matrix: client spans, HTTP client metrics, breakdown and propagation (real local server)."""

import pytest
from instrumented_app import Downstream

from tests.matrix.harness import Traced, check_http_client, fastapi_app, installed

APP = fastapi_app(
    """import requests
DOWN = os.environ["APP_DOWNSTREAM"]
session = requests.Session()
""",
    """
@app.get("/requests/{n}")
def with_requests(n: int):
    return {"status": session.get(f"{DOWN}/stock/{n}?token=secret-token", timeout=5).status_code}
""",
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    installed("requests")
    with Downstream() as downstream, Traced(APP, tmp_path_factory.mktemp("requests"), {"APP_DOWNSTREAM": downstream.url}) as traced:
        yield traced, downstream


def test_requests(stack):
    check_http_client(*stack, "/requests/{n}", "/stock/")
