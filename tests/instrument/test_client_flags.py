import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import requests
import urllib3
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from urllib3.util.retry import Retry
from urllib3.util.timeout import _DEFAULT_TIMEOUT, Timeout

from chokepoint.instrument import context, signals
from chokepoint.instrument.client_flags import RepeatedReads, install_client_flags, urllib3_timeout_missing
from chokepoint.instrument.config import AgentConfig
from chokepoint.instrument.instruments import AgentInstruments


@pytest.mark.parametrize(
    ("timeout", "pool_timeout", "missing"),
    [
        (_DEFAULT_TIMEOUT, _DEFAULT_TIMEOUT, True),  # socket default is None
        (_DEFAULT_TIMEOUT, Timeout(connect=2, read=5), False),
        (Timeout(connect=None, read=None), _DEFAULT_TIMEOUT, True),  # what requests passes for timeout=None
        (Timeout(connect=3, read=None), _DEFAULT_TIMEOUT, True),
        (Timeout(connect=None, read=5), _DEFAULT_TIMEOUT, False),
        (Timeout(total=3), _DEFAULT_TIMEOUT, False),
        (5, _DEFAULT_TIMEOUT, False),
        (None, _DEFAULT_TIMEOUT, True),
    ],
)
def test_urllib3_effective_timeout(timeout, pool_timeout, missing):
    assert urllib3_timeout_missing(timeout, pool_timeout) is missing


class Flags:
    def __init__(self, window_s=10.0, httpx="upstream", http_semconv="http"):
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])
        self.instruments = AgentInstruments(self.provider.get_meter("chokepoint.instrument"))
        self.instruments.lean.attach(self.provider, [self.reader], Resource.create({}))  # as the agent does
        self.undo = install_client_flags(self.instruments, AgentConfig(repeated_read_window_s=window_s, httpx=httpx, http_semconv=http_semconv))

    def values(self, name):
        data = self.reader.get_metrics_data()
        out = {}
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            out[frozenset(point.attributes.items())] = point.value
        return out

    def close(self):
        for undo in self.undo:
            undo()
        self.provider.shutdown()


@pytest.fixture
def flags():
    f = Flags()
    yield f
    f.close()


@pytest.fixture
def server():
    state = {"fail_first": 0, "calls": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            state["calls"] += 1
            status = 503 if state["calls"] <= state["fail_first"] else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", state
    httpd.shutdown()
    httpd.server_close()


HOST = frozenset({(signals.ATTR_SERVER_ADDRESS, "127.0.0.1")})


def test_requests_without_timeout_is_counted_with_timeout_is_not(flags, server):
    url, _ = server
    requests.get(url, timeout=5)
    assert flags.values(signals.HTTP_CLIENT_CALLS_WITHOUT_TIMEOUT) == {}
    requests.get(url)
    requests.get(url)
    assert flags.values(signals.HTTP_CLIENT_CALLS_WITHOUT_TIMEOUT) == {HOST: 2}


def test_route_of_the_current_request_is_attached(flags, server):
    url, _ = server
    token = context.start_request("/checkout")
    try:
        requests.get(url)
    finally:
        context.end_request(token)
    assert flags.values(signals.HTTP_CLIENT_CALLS_WITHOUT_TIMEOUT) == {HOST | {(signals.ATTR_HTTP_ROUTE, "/checkout")}: 1}


def test_httpx_timeout_none_is_counted_default_timeout_is_not(flags, server):
    url, _ = server
    with httpx.Client() as client:  # httpx default: 5 s
        client.get(url)
    assert flags.values(signals.HTTP_CLIENT_CALLS_WITHOUT_TIMEOUT) == {}
    with httpx.Client(timeout=None) as client:
        client.get(url)
    assert flags.values(signals.HTTP_CLIENT_CALLS_WITHOUT_TIMEOUT) == {HOST: 1}


def test_httpx_flag_left_to_the_lean_transport_wrapper(monkeypatch):
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    monkeypatch.delenv("CHOKEPOINT_HTTPX", raising=False)
    monkeypatch.delenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", raising=False)
    f = Flags(httpx="lean")  # chokepoint.instrument.httpx_lean counts it (tests/instrument/test_httpx_lean.py)
    try:
        assert not hasattr(httpx.Client.send, "__wrapped__")
    finally:
        f.close()
    f = Flags(httpx="lean", http_semconv="http/dup")  # the upstream instrumentor: the flag patches send
    try:
        assert hasattr(httpx.Client.send, "__wrapped__")
    finally:
        f.close()
    assert not hasattr(httpx.Client.send, "__wrapped__")


def test_urllib3_retries_are_counted(flags, server):
    url, state = server
    state["fail_first"] = 2
    with urllib3.PoolManager() as pool:
        response = pool.request("GET", url, timeout=5, retries=Retry(total=3, status_forcelist=[503], backoff_factor=0))
    assert response.status == 200 and state["calls"] == 3
    assert flags.values(signals.HTTP_CLIENT_RETRIES) == {HOST: 2}
    assert flags.values(signals.HTTP_CLIENT_CALLS_WITHOUT_TIMEOUT) == {}


def test_uninstall_restores_the_libraries(server):
    url, _ = server
    f = Flags()
    f.close()
    requests.get(url)
    assert f.values(signals.HTTP_CLIENT_CALLS_WITHOUT_TIMEOUT) == {}
    assert not hasattr(urllib3.connectionpool.HTTPConnectionPool.urlopen, "__wrapped__")


def test_repeated_reads_within_the_window():
    now = [100.0]
    flags = Flags()
    reads = RepeatedReads(flags.instruments, window_s=10.0, clock=lambda: now[0])
    statement = "SELECT name FROM items WHERE id = %(id)s"
    assert reads.seen(statement, {"id": 1}) is False
    assert reads.seen(statement, {"id": 2}) is False  # other parameters: another read
    now[0] += 5
    assert reads.seen(statement, {"id": 1}) is True
    now[0] += 30
    assert reads.seen(statement, {"id": 1}) is False  # outside the window
    assert reads.seen("UPDATE items SET n = 1", {}) is False
    assert reads.seen("UPDATE items SET n = 1", {}) is False  # writes are never "repeated reads"
    assert flags.values(signals.DB_REPEATED_READS) == {frozenset({(signals.ATTR_DB_STATEMENT, statement)}): 1}
    flags.close()


def test_repeated_reads_through_sqlalchemy(flags):
    import sqlalchemy as sa

    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        for _ in range(3):
            conn.execute(sa.text("SELECT 1 WHERE 2 = :x"), {"x": 2})
        conn.execute(sa.text("SELECT 1 WHERE 2 = :x"), {"x": 3})
    assert flags.values(signals.DB_REPEATED_READS) == {frozenset({(signals.ATTR_DB_STATEMENT, "SELECT ? WHERE ? = ?")}): 2}


def test_repeated_reads_without_parameters_and_no_engine_listener(flags):
    """Counted from the dialect: the engine keeps SQLAlchemy's fast path (no event listener)."""
    import sqlalchemy as sa

    engine = sa.create_engine("sqlite://")
    assert not engine._has_events and not engine.dispatch.before_cursor_execute
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE t (n INTEGER)")
        for _ in range(2):
            conn.exec_driver_sql("SELECT 7")
            conn.exec_driver_sql("UPDATE t SET n = 1")
            conn.execution_options(no_parameters=True).exec_driver_sql("SELECT n FROM t")  # do_execute_no_params
    assert flags.values(signals.DB_REPEATED_READS) == {
        frozenset({(signals.ATTR_DB_STATEMENT, "SELECT ?")}): 1,
        frozenset({(signals.ATTR_DB_STATEMENT, "SELECT n FROM t")}): 1,
    }
    for undo in flags.undo:  # uninstalled: the dialect is SQLAlchemy's own again
        undo()
    flags.undo = []
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 7")
    assert flags.values(signals.DB_REPEATED_READS)[frozenset({(signals.ATTR_DB_STATEMENT, "SELECT ?")})] == 1
