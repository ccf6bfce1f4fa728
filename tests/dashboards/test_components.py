"""chokepoint.dashboards.components: figures, tables, empty states, and tolerance of bad collector answers."""

from __future__ import annotations

import json
import subprocess
import sys

import dash_ag_grid as dag
import plotly.utils
import pytest

from chokepoint.dashboards.app import collector_banner
from chokepoint.dashboards.client import ApiClient
from chokepoint.dashboards.components import NO_DATA, cell_colours, empty_figure, keep_choice, lines_figure, table, tolerant
from chokepoint.dashboards.pages import dependencies, messaging, overview, resources, route
from tests.json_server import JsonServer

MALFORMED = {  # a collector answering the right endpoints with the wrong shapes
    "/api/v1/endpoints": {"endpoints": [{"route": 5}]},
    "/api/v1/bottlenecks": {"findings": [{"kind": "cpu_saturation", "score": "high"}]},
    "/api/v1/pools": {"pools": [None]},
    "/api/v1/breakers": {"breakers": [{"name": "x", "calls": 3}]},
    "/api/v1/consumer-lag": {"consumer_lag": [{"partition": 0, "lag": "many"}]},
    "/api/v1/health": {"status": "degraded"},
    "/api/v1/timeseries": {"metric": "any", "series": [{"labels": {}, "points": [[1.0]]}]},
    # the rest well-formed and empty, as a collector answers for a route it has not seen
    "/api/v1/services": {"services": []},
    "/api/v1/dependencies": {"dependencies": []},
    "/api/v1/traces": {"traces": []},
    "/api/v1/histogram": {"buckets": []},
    "/api/v1/heatmap": {"times": [], "le_ms": [], "counts": []},
    "/api/v1/breakdown": {"all": {}, "slow": {}, "requests": 0, "slow_requests": 0},
}


@pytest.fixture(scope="module")
def malformed():
    with JsonServer(MALFORMED) as server:
        yield ApiClient(server.url)


def test_lines_figure_uses_epoch_ms_on_a_date_axis():
    fig = lines_figure([{"labels": {"route": "/a"}, "points": [[1700000000, 1.5], [1700000010, 2.5]]}], "t", "ms", ["route"])
    assert fig.layout.xaxis.type == "date"
    assert list(fig.data[0].x) == [1700000000000.0, 1700000010000.0] and fig.data[0].name == "/a"
    encoded = json.loads(json.dumps(fig, cls=plotly.utils.PlotlyJSONEncoder))
    assert encoded["data"][0]["type"] == "scatter"


def test_no_points_is_the_empty_state():
    assert lines_figure([{"labels": {}, "points": []}], "t", "ms", []).layout.annotations[0].text == NO_DATA
    assert empty_figure("boom").layout.annotations[0].text == "boom"


def test_tolerant_turns_bad_shapes_into_the_error_outputs():
    @tolerant(lambda msg: ("failed", msg))
    def refresh(payload):
        return payload["missing"]

    status, message = refresh({})
    assert status == "failed" and message == "unexpected answer from the collector (KeyError: 'missing')"


def test_every_page_survives_a_malformed_collector(malformed, texts):
    assert "unexpected answer" in texts(overview.refresh(malformed)[0])
    assert "unexpected answer" in overview.refresh_route_charts(malformed, "shop|/x")[1].layout.annotations[0].text
    assert "unexpected answer" in texts(route.refresh(malformed, "shop|/x")[0])
    assert "unexpected answer" in texts(resources.refresh(malformed)[0])
    assert "unexpected answer" in texts(dependencies.refresh(malformed)[0])
    assert "unexpected answer" in texts(messaging.refresh(malformed)[0])
    assert "collector status: 'degraded'" in texts(collector_banner(malformed))


def test_table_is_a_sortable_paginated_grid_keyed_by_its_rows():
    grid = table(
        "t",
        [("route", "route", "markdown"), ("name", "name", "text"), ("p99_ms", "p99 ms", "numeric")],
        [{"route": "[/a](/route)"}],
        row_key=("name", "route"),
        page_size=7,
    )
    assert isinstance(grid, dag.AgGrid) and grid.rowData == [{"route": "[/a](/route)"}]
    route, name, p99 = grid.columnDefs
    assert route == {"field": "route", "headerName": "route", "cellRenderer": "markdown"}
    assert name["cellDataType"] == "text" and p99["type"] == "numericColumn" and p99["cellDataType"] == "number"
    assert grid.defaultColDef["sortable"] is True
    assert grid.dashGridOptions["pagination"] is True and grid.dashGridOptions["paginationPageSize"] == 7
    assert grid.getRowId == "params.data.name + '|' + params.data.route"


def test_table_refuses_unknown_column_kinds_and_styles():
    with pytest.raises(ValueError, match="unknown kind 'date'"):
        table("t", [("ts", "time", "date")], [], row_key=("ts",))
    with pytest.raises(ValueError, match=r"unknown columns: \['state'\]"):
        table("t", [("name", "name", "text")], [], row_key=("name",), cell_styles={"state": cell_colours({"open": "red"})})
    with pytest.raises(ValueError, match="row_key must name some of the table's columns"):
        table("t", [("name", "name", "text")], [], row_key=("id",))
    with pytest.raises(ValueError, match="row_key"):
        table("t", [("name", "name", "text")], [], row_key=())


def test_every_page_table_is_an_ag_grid():
    tables = {
        overview: overview.RED_TABLE,
        route: route.TRACES_TABLE,
        resources: resources.POOLS_TABLE,
        dependencies: dependencies.DEPENDENCIES_TABLE,
        messaging: messaging.LAG_TABLE,
    }
    for page, table_id in tables.items():
        assert isinstance(page.layout()[table_id], dag.AgGrid), page.__name__


def test_the_app_and_its_pages_raise_no_deprecation_warning():
    # Dash warns when a dash_table.DataTable is built (a layout), not when it is imported
    build = "from chokepoint.dashboards.app import PAGES, create_app; create_app('http://127.0.0.1:9'); [page.layout() for page in PAGES]"
    run = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", build], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_keep_choice_keeps_a_pick_still_offered():
    options = [{"label": "a", "value": "shop|/a"}, {"label": "b", "value": "shop|/b"}]
    assert keep_choice("shop|/b", options, "shop|/a") == "shop|/b"
    assert keep_choice("shop|/gone", options, "shop|/a") == "shop|/a"
    assert keep_choice(None, options, "shop|/a") == "shop|/a"
    assert keep_choice("shop|/b", [], None) is None
