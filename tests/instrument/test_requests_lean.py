"""The lean ``requests`` path makes the spans the upstream requests instrumentor makes (stable
HTTP semconv, the urllib3 instrumentor installed too) and sends the same headers, against a
real local HTTP server: successes, a 500, a redirect, a read timeout, a refused connection,
credentials and signed-URL query values, an unknown method, user agents, captured headers,
propagators, suppression."""

from __future__ import annotations

import requests
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor
from opentelemetry.instrumentation.utils import suppress_http_instrumentation
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, StatusCode

from chokepoint.instrument.requests_lean import install_lean_requests
from tests.instrument import shared
from tests.instrument.shared import refused_url_fixture, server_fixture, stable_http_fixture  # noqa: F401 - fixtures


def install(traced: shared.Traced, lean: bool) -> list:
    """The lean requests path or the upstream requests instrumentor; the urllib3 instrumentor under both."""
    undo = [shared.upstream_installed(URLLib3Instrumentor(), traced.provider)]
    if lean:
        return [*undo, shared.lean_installed(install_lean_requests(traced.provider))]
    return [*undo, shared.upstream_installed(RequestsInstrumentor(), traced.provider)]


def traced(lean: bool) -> shared.Traced:
    return shared.Traced(lean, install)


def calls(base: str, refused: str) -> list:
    port = base.rsplit(":", 1)[1]
    outcomes = []
    with requests.Session() as session:
        for call in [
            lambda: session.get(f"{base}/stock?sku=1", headers={"X-Order": "42", "Authorization": "secret"}, timeout=5),
            lambda: session.post(f"{base}/fail", json={"n": 1}, timeout=5),
            lambda: session.request("PURGE", f"{base}/cache", timeout=5),
            lambda: session.get(f"http://user:pw@127.0.0.1:{port}/signed?Signature=abc&x=1", timeout=5),
            lambda: session.get(f"http://localhost:{port}/host?sig=a%20b", headers={"User-Agent": "Googlebot/2.1"}, timeout=5),
            lambda: session.get(f"{base}/redirect", timeout=5),
            lambda: session.get(f"{base}/slow", timeout=0.2),
            lambda: session.get(refused, timeout=5),
        ]:
            try:
                outcomes.append(call().status_code)
            except requests.RequestException as exc:
                outcomes.append(type(exc).__name__)
    return outcomes


def test_calls_make_the_upstream_spans_and_headers(stable_http, server, refused_url):
    spans, arrived, outcomes, _ = shared.same_as_upstream(server, refused_url, calls, traced)
    assert outcomes == [200, 500, 200, 200, 200, 200, "ReadTimeout", "ConnectionError"]
    # one span per call, none from urllib3 underneath; the redirect is followed inside the
    # first send, where HTTP instrumentation is suppressed (as upstream): one span for both hops
    assert len(spans) == 8 and all(s["scope"][0] == "opentelemetry.instrumentation.requests" for s in spans)
    ok, fail, purge, signed, host, redirect, slow, refused = spans
    assert ok["name"] == "GET" and ok["kind"] is SpanKind.CLIENT and ok["parent"] == "request" and ok["trace"]
    assert ok["attributes"]["url.full"] == "http://127.0.0.1:PORT/stock?sku=1"
    assert ok["attributes"]["user_agent.original"].startswith("python-requests/")
    assert {k: ok["attributes"][k] for k in ("server.address", "network.peer.address", "server.port", "http.response.status_code")} == {
        "server.address": "127.0.0.1",
        "network.peer.address": "127.0.0.1",
        "server.port": "PORT",
        "http.response.status_code": "200",
    }
    assert fail["status"] == (StatusCode.ERROR, None) and fail["attributes"]["error.type"] == "500"
    assert purge["name"] == "HTTP" and purge["attributes"]["http.request.method_original"] == "PURGE"
    assert signed["attributes"]["url.full"] == "http://REDACTED:REDACTED@127.0.0.1:PORT/signed?Signature=REDACTED&x=1"
    assert host["attributes"]["url.full"] == "http://localhost:PORT/host?sig=REDACTED"
    assert host["attributes"]["user_agent.synthetic.type"] == "bot"
    assert redirect["attributes"]["http.response.status_code"] == "200"  # the final response's, as upstream
    assert slow["attributes"]["error.type"] == "ReadTimeout" and slow["status"][0] is StatusCode.ERROR
    assert refused["attributes"]["error.type"] == "ConnectionError" and refused["events"][0][0] == "exception"
    assert {(a["trace"], a["tracestate"], a["baggage"]) for a in arrived} == {(shared.INCOMING.split("-")[1], "vendor=x,other=y", "tenant=t1")}
    hops = [ok, fail, purge, signed, host, redirect, redirect, slow]  # /redirect, then /stock with the same context
    assert [(a["path"].split("?")[0], a["traceparent_span"]) for a in arrived] == [
        (path, s["id"]) for path, s in zip(["/stock", "/fail", "/cache", "/signed", "/host", "/redirect", "/stock", "/slow"], hops, strict=True)
    ]


def test_captured_headers_as_upstream(stable_http, monkeypatch, server, refused_url):
    monkeypatch.setenv(shared.CAPTURE + "CLIENT_REQUEST", "x-order,authorization")
    monkeypatch.setenv(shared.CAPTURE + "CLIENT_RESPONSE", "content-type,x-served-by")
    monkeypatch.setenv(shared.CAPTURE + "SANITIZE_FIELDS", "authorization")
    lean = shared.same_as_upstream(server, refused_url, calls, traced)
    captured = {k: v for k, v in lean[0][0]["attributes"].items() if ".header." in k}
    assert captured["http.request.header.x_order"] == "('42',)"
    assert captured["http.request.header.authorization"] == "('[REDACTED]',)"
    assert captured["http.response.header.content_type"] == "('application/json',)"


def test_suppressed_calls_make_no_span(stable_http, server, refused_url):
    def quiet(base, refused):
        with suppress_http_instrumentation():
            return [requests.get(f"{base}/quiet", timeout=5).status_code]

    spans, arrived, outcomes, _ = shared.run_calls(True, server, refused_url, quiet, traced)
    assert outcomes == [200] and spans == [] and [a["trace"] for a in arrived] == [None]


def test_undo_and_not_over_the_upstream_instrumentor(stable_http):
    shared.assert_installs_once(lambda: install_lean_requests(TracerProvider(shutdown_on_exit=False)), [(requests.Session, "send")], RequestsInstrumentor())
