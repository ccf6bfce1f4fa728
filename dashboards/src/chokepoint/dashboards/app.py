"""The Dash live dashboard: ``create_app(api_url)`` and ``run(api_url, host, port)``.

A multi-page Dash app (``use_pages=True``; one module per view in ``pages/``) that reads
the collector only through its REST API (:mod:`chokepoint.dashboards.client`).  Every
page refreshes itself every 2 s through a ``dcc.Interval`` (no page reload); a banner at
the top turns red while the collector is unreachable.

Usage::

    chokepoint dashboard --api http://127.0.0.1:8787 --port 8050
    python -c "from chokepoint.dashboards.app import run; run('http://127.0.0.1:8787')"

Embedding (what ``chokepoint serve`` does next to the API)::

    server = DashboardServer(api_url, host="127.0.0.1", port=8050).start()   # background thread
    ...
    server.stop()                                                            # idempotent

``create_app(api_url).server`` is the plain Flask app for any other WSGI host.
Environment: ``CHOKEPOINT_TOKEN`` is sent to the collector as a bearer token.
"""

from __future__ import annotations

import dash
from dash import Input, Output, dcc, html
from werkzeug.serving import make_server

from .client import ApiClient, api_client
from .components import REFRESH_MS, error_banner, tolerant
from .pages import dependencies, messaging, overview, resources, route
from .serving import BackgroundServer

PAGES = (overview, route, resources, dependencies, messaging)

NAV = "nav"
COLLECTOR_BANNER = "collector-banner"
HEALTH_INTERVAL = "health-interval"


@tolerant(lambda msg: error_banner(f"{msg} — showing no data until it answers again"))
def collector_banner(client: ApiClient):
    """Nothing while the collector answers ``/health``; a red banner otherwise."""
    health = client.health()
    if health.get("status") != "ok":
        return error_banner(f"collector status: {health.get('status')!r}")
    return None


def create_app(api_url: str, timeout_s: float = 2.0, token: str | None = None, requests_pathname_prefix: str | None = None) -> dash.Dash:
    """A Dash app reading the collector REST API at ``api_url``; ``.server`` is its Flask app."""
    client = api_client(api_url, timeout_s=timeout_s, token=token)  # several comma-separated URLs: merged
    kwargs = {"requests_pathname_prefix": requests_pathname_prefix} if requests_pathname_prefix else {}
    app = dash.Dash(__name__, use_pages=True, pages_folder="", title="chokepoint", update_title=None, **kwargs)
    for order, page in enumerate(PAGES):
        dash.register_page(page.__name__, path=page.PATH, name=page.NAME, title=f"chokepoint — {page.NAME}", order=order, layout=page.layout)
        page.register_callbacks(app, client)
    app.layout = html.Div(
        [
            dcc.Interval(id=HEALTH_INTERVAL, interval=REFRESH_MS),
            html.Div(
                [html.B("chokepoint", style={"marginRight": "24px", "fontSize": "18px"})]
                + [dcc.Link(page.NAME, href=app.get_relative_path(page.PATH), style={"marginRight": "16px"}) for page in PAGES],
                id=NAV,
                style={"padding": "8px 12px", "background": "#263238", "color": "white"},
            ),
            html.Div(id=COLLECTOR_BANNER),
            html.Div(dash.page_container, style={"padding": "0 12px"}),
        ],
        style={"fontFamily": "sans-serif"},
    )

    @app.callback(Output(COLLECTOR_BANNER, "children"), Input(HEALTH_INTERVAL, "n_intervals"))
    def _health(_n):
        return collector_banner(client)

    return app


class DashboardServer(BackgroundServer):
    """``create_app(api_url)`` served by werkzeug (threaded) in a background thread.

    ``port=0`` picks a free port (see ``.url``).  ``start()`` returns once the socket is
    listening; ``stop()`` is idempotent.
    """

    def __init__(self, api_url: str, host: str = "127.0.0.1", port: int = 8050, **app_kwargs) -> None:
        self.app = create_app(api_url, **app_kwargs)
        super().__init__(make_server(host, port, self.app.server, threaded=True), "chokepoint-dashboard")


def start_dashboard(api_url: str, host: str = "127.0.0.1", port: int = 8050, token: str | None = None) -> DashboardServer:
    """The started dashboard server ``chokepoint serve`` embeds (its ``chokepoint.serve`` entry point)."""
    return DashboardServer(api_url, host=host, port=port, token=token).start()


def run(api_url: str, host: str = "127.0.0.1", port: int = 8050, debug: bool = False) -> None:
    """Serve the dashboard (blocking)."""
    create_app(api_url).run(host=host, port=port, debug=debug)
