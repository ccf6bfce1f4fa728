"""Every Dash page in Chromium, fed by a real collector receiving from a real instrumented app.

The app is a FastAPI service over real PostgreSQL, run as ``chokepoint-instrument python
app.py PORT`` (zero code change) and exporting OTLP/HTTP to the ``collector`` fixture;
its route, DB pool, runtime and DB dependency must show on the pages, with no browser
console error on any of them.  Screenshots go to ``artifacts_dir``.
"""

from __future__ import annotations

import psycopg
import pytest
import requests
from instrumented_app import InstrumentedApp

from chokepoint.dashboards.client import ApiClient
from chokepoint.dashboards.pages import dependencies, messaging, overview, resources, route
from tests.integration.collector_probe import wait_for
from tests.integration.test_dashboards_browser import DashServer, assert_healthy_page, browser, show_page  # noqa: F401 - browser is a fixture

APP = """
import os, sys
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI

engine = sa.create_engine(os.environ["APP_DB_URL"], pool_size=3, max_overflow=0)
app = FastAPI()

@app.get("/health")
def health():
    return {"ok": True}

@app.get("/widgets/{widget_id}")
def widget(widget_id: int):
    with engine.connect() as conn:
        name = conn.execute(sa.text("SELECT name FROM widgets WHERE id = :id"), {"id": widget_id}).scalar_one()
    return {"name": name}

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


@pytest.fixture
def widgets_db(postgres):
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS widgets")
        conn.execute("CREATE TABLE widgets (id int PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO widgets SELECT g, 'widget-' || g FROM generate_series(0, 49) g")
    return postgres


@pytest.mark.parametrize("collector", [{"bucket_seconds": 1.0}], indirect=True)
def test_every_page_shows_the_instrumented_apps_data(collector, widgets_db, browser, artifacts_dir, tmp_path):  # noqa: F811 - fixture
    env = {
        "APP_DB_URL": widgets_db.url,
        "OTEL_SERVICE_NAME": "widgets",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_http,
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
    }
    with InstrumentedApp(APP, tmp_path, env) as app:
        for i in range(120):
            assert requests.get(app.url(f"/widgets/{i % 50}"), timeout=10).status_code == 200
        client = ApiClient(collector.api, timeout_s=5)
        widgets = wait_for(lambda: [e for e in client.endpoints() if e["service"] == "widgets" and e["route"] == "/widgets/{widget_id}" and e["count"] >= 120])
        assert widgets, client.endpoints()
        assert wait_for(lambda: any(p["service"] == "widgets" and p["kind"] == "db" for p in client.pools())), client.pools()

        with DashServer(collector.api) as server:
            pages = [
                ("overview", "/", [(overview.RED_TABLE, "/widgets/{widget_id}"), (overview.RED_TABLE, "widgets")]),
                ("route", "/route?service=widgets&route=%2Fwidgets%2F%7Bwidget_id%7D", [(route.STATUS, "widgets /widgets/{widget_id}")]),
                ("resources", "/resources", [(resources.POOLS_TABLE, "widgets")]),
                ("dependencies", "/dependencies", [(dependencies.DEPENDENCIES_TABLE, "widgets")]),
                ("messaging", "/messaging", [(messaging.STATUS, "No consumer groups reported")]),
            ]
            for name, path, expected in pages:
                show_page(browser, server.url + path, expected)
                browser.save_screenshot(str(artifacts_dir / f"instrumented-{name}.png"))
                assert_healthy_page(browser, name)
