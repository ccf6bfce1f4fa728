"""The Dash dashboard in real headless Chromium (chromedriver + selenium), fed by a live REST server.

Each page is loaded, its key elements and numbers must appear, and the browser console
must have no errors.  Screenshots go to ``artifacts_dir``; with
``CHOKEPOINT_UPDATE_DOCS_IMAGES=1`` they also replace the README's ``docs/images/``.  Also: the red banner while the collector is unreachable, the empty state for a
collector nobody feeds, and live refresh without a page reload.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from chokepoint.dashboards.app import COLLECTOR_BANNER, DashboardServer
from chokepoint.dashboards.components import NO_DATA
from chokepoint.dashboards.fake_api import FakeApiServer, SyntheticData
from chokepoint.dashboards.pages import dependencies, messaging, overview, resources, route
from devservices import CHROMIUM_FLAGS

CHROMEDRIVER = "/usr/bin/chromedriver"
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
WAIT_S = 20


def DashServer(api_url: str) -> DashboardServer:
    """The dashboard for ``api_url`` on a free loopback port (a context manager: ``with DashServer(url) as server``)."""
    return DashboardServer(api_url, port=0, timeout_s=1.0)


@pytest.fixture(scope="module")
def api_server():
    with FakeApiServer(SyntheticData(routes=200)) as server:
        yield server


@pytest.fixture(scope="module")
def dashboard(api_server):
    with DashServer(api_server.url) as server:
        yield server


@pytest.fixture(scope="module")
def browser(chromium):
    if not Path(CHROMEDRIVER).exists():
        pytest.fail("chromedriver not found: sudo apt-get install -y chromium-driver", pytrace=False)
    options = Options()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag.replace("--headless", "--headless=new"))
    options.add_argument("--window-size=1400,1800")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def wait_text(driver, element_id: str, needle: str) -> str:
    """Text of ``#element_id`` once it contains ``needle`` (fails after WAIT_S)."""
    WebDriverWait(driver, WAIT_S).until(lambda d: needle in (d.find_element(By.ID, element_id).text if d.find_elements(By.ID, element_id) else ""))
    return driver.find_element(By.ID, element_id).text


def wait_plots(driver, count: int) -> None:
    WebDriverWait(driver, WAIT_S).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .main-svg")) >= count)


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def show_page(driver, url: str, expected: list[tuple[str, str]], plots: int = 0) -> None:
    """Load ``url`` with an emptied console log; wait for each ``(element id, text)`` and ``plots`` figures, and their drawing."""
    driver.get_log("browser")  # drop earlier entries
    driver.get(url)
    for element_id, needle in expected:
        wait_text(driver, element_id, needle)
    wait_plots(driver, plots)
    time.sleep(0.5)  # let the figures finish drawing (screenshots)


def assert_healthy_page(driver, context: str = "") -> None:
    """No collector banner and no browser console error since :func:`show_page`."""
    assert driver.find_element(By.ID, COLLECTOR_BANNER).text == "", context
    assert console_errors(driver) == [], context


def snap(driver, artifacts_dir: Path, name: str) -> None:
    out = artifacts_dir / f"dashboard-{name}.png"
    driver.save_screenshot(str(out))
    if os.environ.get("CHOKEPOINT_UPDATE_DOCS_IMAGES") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copy(out, DOCS_IMAGES / out.name)


PAGES = [
    # (name, path, [(element id, text that must appear)], plots)
    (
        "overview",
        "/",
        [
            (overview.BOTTLENECK_BANNER, "DB connection pool exhausted"),
            (overview.BOTTLENECK_BANNER, "wait p99: 410 ms"),  # evidence as people read it
            (overview.FINDINGS_LIST, "Circuit breaker open"),
            (overview.RED_TABLE, "/checkout"),
            (overview.RED_TABLE, "774"),  # p99 of /checkout: 180 ms × 4.3
            (overview.STATUS, "200 routes, 3 findings"),
        ],
        2,
    ),
    ("route", "/route?service=shop&route=%2Fcheckout", [(route.STATUS, "shop /checkout: 6 kept traces"), (route.TRACES_TABLE, "kept because")], 3),
    ("resources", "/resources", [(resources.POOLS_TABLE, "sqlalchemy:postgresql"), (resources.POOLS_TABLE, "410"), (resources.STATUS, "2 pools")], 7),
    (
        "dependencies",
        "/dependencies",
        [(dependencies.DEPENDENCIES_TABLE, "payments.internal"), (dependencies.BREAKER_CARDS, "OPEN"), (dependencies.BREAKER_CARDS, "rejected 812")],
        2,
    ),
    ("messaging", "/messaging", [(messaging.LAG_TABLE, "STALL"), (messaging.LAG_TABLE, "18250"), (messaging.STATUS, "worst: order-workers/orders/0 STALL")], 2),
]


@pytest.mark.parametrize(("name", "path", "expected", "plots"), PAGES, ids=[p[0] for p in PAGES])
def test_page_shows_its_data_without_console_errors(browser, dashboard, artifacts_dir, name, path, expected, plots):
    show_page(browser, dashboard.url + path, expected, plots)
    snap(browser, artifacts_dir, name)
    assert_healthy_page(browser)


GRID_COLUMN_JS = """
const [tableId, colId, property] = arguments;
const rows = [...document.querySelectorAll(`#${tableId} .ag-center-cols-container .ag-row`)];
rows.sort((a, b) => Number(a.getAttribute("row-index")) - Number(b.getAttribute("row-index")));
return rows.map((row) => {
  const cell = row.querySelector(`[col-id="${colId}"]`);
  return property ? getComputedStyle(cell)[property] : cell.innerText;
});
"""


def grid_column(driver, table_id: str, col_id: str, css_property: str | None = None) -> list[str]:
    """Texts (or a computed CSS property) of the rendered cells of column ``col_id`` in the AG Grid
    ``#table_id``, top to bottom; read in one script, so a live refresh cannot interleave."""
    return driver.execute_script(GRID_COLUMN_JS, table_id, col_id, css_property)


def click(driver, css: str) -> None:
    """Click the element matching ``css``, again if a live refresh replaced it meanwhile."""
    WebDriverWait(driver, WAIT_S, ignored_exceptions=(StaleElementReferenceException,)).until(lambda d: d.find_element(By.CSS_SELECTOR, css).click() or True)


def test_red_table_sorts_by_header_and_links_each_route_to_its_detail(browser, dashboard):
    browser.get(dashboard.url + "/")
    wait_text(browser, overview.RED_TABLE, "/checkout")
    assert grid_column(browser, overview.RED_TABLE, "route")[0] == "/checkout"  # highest p99 first
    header = f'#{overview.RED_TABLE} .ag-header-cell[col-id="p99_ms"]'
    click(browser, header)  # ascending
    WebDriverWait(browser, WAIT_S).until(lambda d: grid_column(d, overview.RED_TABLE, "route")[0] != "/checkout")
    p99 = [float(v) for v in grid_column(browser, overview.RED_TABLE, "p99_ms")]
    assert p99 == sorted(p99) and len(p99) == 20  # one page
    time.sleep(2.5)  # a live refresh replaces the rows; the sort stays
    assert [float(v) for v in grid_column(browser, overview.RED_TABLE, "p99_ms")] == p99
    click(browser, header)  # descending
    WebDriverWait(browser, WAIT_S).until(lambda d: grid_column(d, overview.RED_TABLE, "route")[0] == "/checkout")
    click(browser, f'#{overview.RED_TABLE} [col-id="route"] a[href="/route?service=shop&route=%2Fcheckout"]')
    wait_text(browser, route.STATUS, "shop /checkout: 6 kept traces")
    assert grid_column(browser, route.TRACES_TABLE, "keep_reason")[0] == "error"


def test_lag_status_cells_are_coloured_by_status(browser, dashboard):
    browser.get(dashboard.url + "/messaging")
    wait_text(browser, messaging.LAG_TABLE, "STALL")
    assert grid_column(browser, messaging.LAG_TABLE, "status") == ["STALL", "WARN", "OK"]
    colours = grid_column(browser, messaging.LAG_TABLE, "status", "backgroundColor")
    assert colours == ["rgb(239, 108, 0)", "rgb(249, 168, 37)", "rgb(46, 125, 50)"]


def test_pages_refresh_live_without_reload(browser, dashboard, api_server):
    browser.get(dashboard.url + "/messaging")
    wait_text(browser, messaging.LAG_TABLE, "STALL")
    browser.execute_script("window.__chokepointMarker = 1")
    before = api_server.requests_served
    time.sleep(4.5)  # two 2-s refresh ticks
    assert api_server.requests_served >= before + 6  # 3 API calls per messaging tick, plus /health
    assert browser.execute_script("return window.__chokepointMarker") == 1  # same document: no reload


def test_navigation_between_pages_keeps_the_app_loaded(browser, dashboard):
    browser.get(dashboard.url + "/")
    wait_text(browser, overview.STATUS, "routes")
    browser.find_element(By.LINK_TEXT, "Dependencies").click()
    wait_text(browser, dependencies.BREAKER_CARDS, "payments")
    assert browser.current_url.endswith("/dependencies")


def test_unreachable_collector_shows_red_banner(browser, artifacts_dir):
    with FakeApiServer(SyntheticData()) as doomed:
        url = doomed.url
    with DashServer(url) as server:  # its collector is gone
        browser.get_log("browser")
        browser.get(server.url + "/")
        text = wait_text(browser, COLLECTOR_BANNER, "collector unreachable")
        assert "showing no data until it answers again" in text
        wait_text(browser, overview.STATUS, "collector unreachable")
        snap(browser, artifacts_dir, "unreachable")
        assert console_errors(browser) == []


def test_empty_collector_shows_no_data_yet(browser):
    with FakeApiServer(SyntheticData(empty=True)) as api, DashServer(api.url) as server:
        browser.get(server.url + "/resources")
        wait_text(browser, resources.STATUS, NO_DATA)
        WebDriverWait(browser, WAIT_S).until(lambda d: NO_DATA in d.find_element(By.ID, resources.POOL_USED).text)
