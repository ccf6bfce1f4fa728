"""The Dash dashboard in real headless Chromium (chromedriver + selenium), fed by a real collector.

The collector (store and REST API) holds synthetic history (``tests/synthetic_collector.py``).
Each page is loaded, its key elements and the numbers that history implies must appear, and
the browser console must have no errors.  Screenshots go to ``artifacts_dir``; with
``CHOKEPOINT_UPDATE_DOCS_IMAGES=1`` they also replace the README's ``docs/images/``.  Also: the red banner while the collector is unreachable, the empty state for a
collector nobody feeds, and new data shown by the live refresh without a page reload.
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
from chokepoint.dashboards.pages import dependencies, messaging, overview, resources, route
from devservices import CHROMIUM_FLAGS, free_port
from tests.synthetic_collector import DB_POOL, GROUP, KEPT_TRACES, POOL_WAIT_S, SERVICE, TOPIC, SyntheticCollector

CHROMEDRIVER = "/usr/bin/chromedriver"
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
WAIT_S = 60  # a busy host: the first load of a page can take tens of seconds
ROUTES = 200


def DashServer(api_url: str) -> DashboardServer:
    """The dashboard for ``api_url`` on a free loopback port (a context manager: ``with DashServer(url) as server``)."""
    return DashboardServer(api_url, port=0, timeout_s=30.0)  # the analyzer behind /bottlenecks takes seconds on a busy host


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    with SyntheticCollector(tmp_path_factory.mktemp("collector"), routes=ROUTES) as collector:
        yield collector


@pytest.fixture(scope="module")
def dashboard(collector):
    with DashServer(collector.url) as server:
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


def pages(collector: SyntheticCollector) -> dict[str, tuple[str, list[tuple[str, str]], int]]:
    """name → (path, [(element id, text that must appear)], plots), the figures from ``collector``'s data."""
    wait_ms = f"{POOL_WAIT_S * 1000:.0f}"
    return {
        "overview": (
            "/",
            [
                (overview.BOTTLENECK_BANNER, "DB connection pool exhausted"),
                (overview.BOTTLENECK_BANNER, f"wait p99: {wait_ms} ms"),  # evidence as people read it
                (overview.FINDINGS_LIST, "Circuit breaker open"),
                (overview.RED_TABLE, "/checkout"),
                (overview.STATUS, f"{ROUTES} routes, 3 findings"),  # the pool, the breaker, the lagging group
            ],
            2,
        ),
        "route": (
            "/route?service=shop&route=%2Fcheckout",
            [(route.STATUS, f"shop /checkout: {KEPT_TRACES} kept traces"), (route.TRACES_TABLE, "kept because")],
            3,
        ),
        "resources": ("/resources", [(resources.POOLS_TABLE, DB_POOL), (resources.POOLS_TABLE, wait_ms), (resources.STATUS, "2 pools")], 7),
        "dependencies": (
            "/dependencies",
            [
                (dependencies.DEPENDENCIES_TABLE, "payments.internal"),
                (dependencies.BREAKER_CARDS, "OPEN"),
                (dependencies.BREAKER_CARDS, f"rejected {collector.breaker_rejected()}"),
            ],
            2,
        ),
        "messaging": (
            "/messaging",
            [(messaging.LAG_TABLE, "STOP"), (messaging.LAG_TABLE, str(collector.lag(0))), (messaging.STATUS, f"worst: {GROUP}/{TOPIC}/0 STOP")],
            2,
        ),
    }


PAGES = ["overview", "route", "resources", "dependencies", "messaging"]


@pytest.mark.parametrize("name", PAGES)
def test_page_shows_its_data_without_console_errors(browser, collector, dashboard, artifacts_dir, name):
    path, expected, plots = pages(collector)[name]
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


def test_red_table_sorts_by_header_and_links_each_route_to_its_detail(browser, collector, dashboard):
    browser.get(dashboard.url + "/")
    wait_text(browser, overview.RED_TABLE, "/checkout")
    assert grid_column(browser, overview.RED_TABLE, "route")[0] == "/checkout"  # highest p99 first
    shown, exact = float(grid_column(browser, overview.RED_TABLE, "p99_ms")[0]), collector.p99_ms("/checkout")
    assert abs(shown - exact) <= 0.01 * exact + 0.05, (shown, exact)  # the sketch's 1 %, and the display's rounding
    header = f'#{overview.RED_TABLE} .ag-header-cell[col-id="p99_ms"]'
    click(browser, header)  # ascending
    WebDriverWait(browser, WAIT_S).until(lambda d: grid_column(d, overview.RED_TABLE, "route")[0] != "/checkout")
    p99 = [float(v) for v in grid_column(browser, overview.RED_TABLE, "p99_ms")]
    assert p99 == sorted(p99) and len(p99) == 20  # one page
    time.sleep(2.5)  # a live refresh replaces the rows; the sort stays
    WebDriverWait(browser, WAIT_S).until(lambda d: len(grid_column(d, overview.RED_TABLE, "p99_ms")) == 20)  # not while they are replaced
    assert [float(v) for v in grid_column(browser, overview.RED_TABLE, "p99_ms")] == p99
    click(browser, header)  # descending
    WebDriverWait(browser, WAIT_S).until(lambda d: grid_column(d, overview.RED_TABLE, "route")[0] == "/checkout")
    click(browser, f'#{overview.RED_TABLE} [col-id="route"] a[href="/route?service=shop&route=%2Fcheckout"]')
    wait_text(browser, route.STATUS, f"shop /checkout: {KEPT_TRACES} kept traces")
    assert grid_column(browser, route.TRACES_TABLE, "keep_reason")[0] == "error"


def test_lag_status_cells_are_coloured_by_status(browser, dashboard):
    browser.get(dashboard.url + "/messaging")
    wait_text(browser, messaging.LAG_TABLE, "STOP")
    assert grid_column(browser, messaging.LAG_TABLE, "status") == ["STOP", "WARN", "OK"]  # never commits, falls behind, keeps up
    colours = grid_column(browser, messaging.LAG_TABLE, "status", "backgroundColor")
    assert colours == ["rgb(198, 40, 40)", "rgb(249, 168, 37)", "rgb(46, 125, 50)"]


def test_pages_refresh_live_without_reload(browser, tmp_path):
    """Messages produced while the page is open show up as more lag, in the same document."""
    with SyntheticCollector(tmp_path, routes=3) as collector, DashServer(collector.url) as server:
        browser.get(server.url + "/messaging")
        wait_text(browser, messaging.LAG_TABLE, str(collector.lag(0)))
        browser.execute_script("window.__chokepointMarker = 1")
        committed, end = collector.offsets(0, collector.steps - 1)
        collector.store.record_consumer_offsets(GROUP, TOPIC, 0, committed, end + 5000, collector.now, service=SERVICE)
        wait_text(browser, messaging.LAG_TABLE, str(end + 5000 - committed))
        assert browser.execute_script("return window.__chokepointMarker") == 1  # same document: no reload


def test_navigation_between_pages_keeps_the_app_loaded(browser, dashboard):
    browser.get(dashboard.url + "/")
    wait_text(browser, overview.STATUS, "routes")
    browser.find_element(By.LINK_TEXT, "Dependencies").click()
    wait_text(browser, dependencies.BREAKER_CARDS, "payments")
    assert browser.current_url.endswith("/dependencies")


def test_unreachable_collector_shows_red_banner(browser, artifacts_dir):
    with DashServer(f"http://127.0.0.1:{free_port()}") as server:  # nothing listens there
        browser.get_log("browser")
        browser.get(server.url + "/")
        text = wait_text(browser, COLLECTOR_BANNER, "collector unreachable")
        assert "showing no data until it answers again" in text
        wait_text(browser, overview.STATUS, "collector unreachable")
        snap(browser, artifacts_dir, "unreachable")
        assert console_errors(browser) == []


def test_empty_collector_shows_no_data_yet(browser, tmp_path):
    with SyntheticCollector(tmp_path, empty=True) as collector, DashServer(collector.url) as server:
        browser.get(server.url + "/resources")
        wait_text(browser, resources.STATUS, NO_DATA)
        WebDriverWait(browser, WAIT_S).until(lambda d: NO_DATA in d.find_element(By.ID, resources.POOL_USED).text)
