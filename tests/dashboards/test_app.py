"""chokepoint.dashboards.app: the multi-page app, its navigation and the collector banner."""

from __future__ import annotations

import dash
import pytest
import requests

from chokepoint.dashboards.app import PAGES, DashboardServer, collector_banner, create_app
from chokepoint.dashboards.pages import overview


def test_every_view_is_a_registered_page(real_collector):
    app = create_app(real_collector.url)
    paths = {p["path"] for p in dash.page_registry.values()}
    assert paths >= {"/", "/route", "/resources", "/dependencies", "/messaging"}
    assert len(PAGES) == 5
    client = app.server.test_client()
    assert client.get("/").status_code == 200
    layout = client.get("/_dash-layout").get_json()
    assert "Overview" in str(layout) and "Messaging" in str(layout)
    deps = client.get("/_dash-dependencies").get_json()
    outputs = " ".join(d["output"] for d in deps)
    assert overview.RED_TABLE in outputs and "collector-banner" in outputs


def test_banner_is_empty_while_the_collector_answers(api, unreachable, texts):
    assert collector_banner(api) is None
    assert "collector unreachable" in texts(collector_banner(unreachable))


def test_dashboard_server_runs_in_a_thread_and_stops_twice(real_collector):
    with DashboardServer(real_collector.url, port=0) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert requests.get(server.url + "/_dash-layout", timeout=5).status_code == 200
    server.stop()  # idempotent
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/", timeout=1)
