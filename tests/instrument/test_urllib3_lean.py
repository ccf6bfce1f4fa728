"""The lean urllib3 path makes the spans the upstream urllib3 instrumentor (with chokepoint's
``request_hook``) makes under stable HTTP semconv, and sends the same headers, against a real
local HTTP server: pool managers and pools, headers or none, a 500, a redirect, retries, a
read timeout, a refused connection, an unknown method, captured headers, propagators,
suppression."""

from __future__ import annotations

import urllib3
from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor
from opentelemetry.instrumentation.utils import suppress_http_instrumentation
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, StatusCode
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.util.retry import Retry

from chokepoint.instrument.distro import urllib3_server_address
from chokepoint.instrument.urllib3_lean import install_lean_urllib3
from tests.instrument import shared
from tests.instrument.shared import refused_url_fixture, server_fixture, stable_http_fixture  # noqa: F401 - fixtures


def install(traced: shared.Traced, lean: bool) -> list:
    """The lean urllib3 path, or the upstream instrumentor with chokepoint's request hook."""
    if lean:
        return [shared.lean_installed(install_lean_urllib3(traced.provider))]
    return [shared.upstream_installed(URLLib3Instrumentor(), traced.provider, request_hook=urllib3_server_address)]


def traced(lean: bool) -> shared.Traced:
    return shared.Traced(lean, install)


def calls(base: str, refused: str) -> list:
    port = int(base.rsplit(":", 1)[1])
    outcomes = []
    manager = urllib3.PoolManager(timeout=5, headers={"X-Pool": "manager"})
    pool = urllib3.HTTPConnectionPool("127.0.0.1", port, timeout=5, headers={"X-Pool": "pool"})
    for call in [
        lambda: manager.request("GET", f"{base}/stock?sku=1", headers={"X-Order": "42"}),
        lambda: manager.request("POST", f"{base}/fail", body=b"{}", retries=False),
        lambda: manager.request("PURGE", f"{base}/cache"),
        lambda: manager.request("GET", f"{base}/redirect"),
        lambda: pool.urlopen("GET", "/direct?x=1"),  # no headers: what the pool sends is upstream's choice too
        lambda: pool.urlopen("GET", "/positional", None, {"X-Order": "7"}),
        lambda: pool.request("GET", "/fail/retried", retries=Retry(total=2, status_forcelist=[500], raise_on_status=False)),
        lambda: manager.request("GET", f"{base}/slow", timeout=0.2, retries=False),
        lambda: manager.request("GET", refused, retries=False),
    ]:
        try:
            outcomes.append(call().status)
        except urllib3.exceptions.HTTPError as exc:
            outcomes.append(type(exc).__name__)
    manager.clear()
    pool.close()
    return outcomes


def test_calls_make_the_upstream_spans_and_headers(stable_http, server, refused_url):
    spans, arrived, outcomes, _ = shared.same_as_upstream(server, refused_url, calls, traced)
    assert outcomes == [200, 500, 200, 200, 200, 200, 500, "ReadTimeoutError", "NewConnectionError"]
    assert all(s["scope"][0] == "opentelemetry.instrumentation.urllib3" and s["kind"] is SpanKind.CLIENT for s in spans)
    by_url = {s["attributes"]["url.full"].replace("http://127.0.0.1:PORT", ""): s for s in spans}
    ok = by_url["/stock?sku=1"]
    assert ok["parent"] == "request" and ok["attributes"] == {
        "http.request.method": "GET",
        "url.full": "http://127.0.0.1:PORT/stock?sku=1",
        "server.address": "127.0.0.1",
        "server.port": "PORT",
        "http.response.status_code": "200",
    }
    assert by_url["/fail"]["status"] == (StatusCode.ERROR, None) and by_url["/fail"]["attributes"]["error.type"] == "500"
    assert by_url["/cache"]["name"] == "HTTP" and by_url["/cache"]["attributes"]["http.request.method_original"] == "PURGE"
    slow = by_url["/slow"]
    assert slow["status"][0] is StatusCode.ERROR and slow["events"][0][0] == "exception" and "error.type" not in slow["attributes"]
    assert {(a["trace"], a["tracestate"], a["baggage"]) for a in arrived} == {(shared.INCOMING.split("-")[1], "vendor=x,other=y", "tenant=t1")}
    assert [a["path"] for a in arrived].count("/fail/retried") == 3  # retries inside one call: one span
    assert len([s for s in spans if s["attributes"]["url.full"].endswith("/fail/retried")]) == 1


def test_captured_headers_as_upstream(stable_http, monkeypatch, server, refused_url):
    monkeypatch.setenv(shared.CAPTURE + "CLIENT_REQUEST", "x-order,x-pool")
    monkeypatch.setenv(shared.CAPTURE + "CLIENT_RESPONSE", "content-type,x-served-by")
    lean = shared.same_as_upstream(server, refused_url, calls, traced)
    captured = {k: v for k, v in lean[0][0]["attributes"].items() if ".header." in k}
    assert captured["http.request.header.x_order"] == "('42',)"
    assert captured["http.response.header.content_type"] == "('application/json',)"


def test_suppressed_calls_make_no_span(stable_http, server, refused_url):
    def quiet(base, refused):
        with suppress_http_instrumentation():
            return [urllib3.request("GET", f"{base}/quiet", timeout=5).status]

    spans, arrived, outcomes, _ = shared.run_calls(True, server, refused_url, quiet, traced)
    assert outcomes == [200] and spans == [] and [a["trace"] for a in arrived] == [None]


def test_undo_and_not_over_the_upstream_instrumentor(stable_http):
    shared.assert_installs_once(lambda: install_lean_urllib3(TracerProvider(shutdown_on_exit=False)), [(HTTPConnectionPool, "urlopen")], URLLib3Instrumentor())
