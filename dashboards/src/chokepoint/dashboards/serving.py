"""``BackgroundServer``: a ``socketserver``-style HTTP server run on its own daemon thread.

The dashboard runs on it (:class:`chokepoint.dashboards.app.DashboardServer`, werkzeug);
any ``http.server.ThreadingHTTPServer`` runs the same way::

    with BackgroundServer(httpd, "name") as server:   # start() returns once it is serving
        requests.get(server.url)
    server.stop()                                       # idempotent
"""

from __future__ import annotations

import threading


class BackgroundServer:
    """``httpd`` (bound already; ``serve_forever``/``shutdown``/``server_close``) on a daemon thread."""

    def __init__(self, httpd, thread_name: str) -> None:
        self.httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name=thread_name, daemon=True)
        self._stopped = False

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
