"""``chokepoint grafana push --url URL``: create or overwrite the generated dashboards in a Grafana.

Idempotent: dashboards are written by their stable uid with ``overwrite=True`` into a
folder (uid ``chokepoint``, created when missing), so pushing twice changes nothing but
Grafana's version counter.  Uses ``grafana-client``, an optional extra::

    pip install 'chokepoint-dashboards[grafana]'

It is optional because it pulls ``niquests`` → ``urllib3-future``, which replaces the
``urllib3`` module of the environment it is installed in (see the project's FACTS).

Authentication: ``--token`` or ``GRAFANA_TOKEN`` (service-account token / API key).
Every failure (missing extra, bad URL, unreachable, 401/403, other HTTP errors) is a
:class:`GrafanaPushError` with a one-line message; the CLI prints it and exits 1.
"""

from __future__ import annotations

from urllib.parse import urlparse

from .generate import all_dashboards

FOLDER_UID = "chokepoint"


class GrafanaPushError(RuntimeError):
    """The push failed; the message is one line meant for the user."""


def _check_url(url: str) -> None:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise GrafanaPushError(f"bad Grafana URL {url!r}: expected http(s)://host[:port][/path]")
    try:
        parsed.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise GrafanaPushError(f"bad Grafana URL {url!r}: {exc}") from None


def push_dashboards(url: str, token: str | None, folder: str = "chokepoint", timeout_s: float = 10.0) -> list[tuple[str, str]]:
    """Push every generated dashboard; ``[(uid, dashboard URL), ...]``."""
    _check_url(url)
    if not token:
        raise GrafanaPushError("no Grafana token: set GRAFANA_TOKEN or pass --token")
    try:
        from grafana_client import GrafanaApi
        from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaUnauthorizedError
    except ImportError:
        raise GrafanaPushError("grafana-client is not installed: pip install 'chokepoint-dashboards[grafana]'") from None

    api = GrafanaApi.from_url(url, credential=token, timeout=timeout_s)
    pushed = []
    try:
        try:
            folder_uid = api.folder.get_folder(FOLDER_UID)["uid"]
        except GrafanaClientError as exc:
            if exc.status_code != 404:
                raise
            folder_uid = api.folder.create_folder(folder, uid=FOLDER_UID)["uid"]
        for dashboard in all_dashboards():
            answer = api.dashboard.update_dashboard(
                {"dashboard": {**dashboard, "id": None}, "folderUid": folder_uid, "overwrite": True, "message": "chokepoint grafana push"}
            )
            pushed.append((dashboard["uid"], url.rstrip("/") + (answer.get("url") or f"/d/{dashboard['uid']}")))
    except GrafanaUnauthorizedError:
        raise GrafanaPushError(f"authentication failed at {url} (401): check GRAFANA_TOKEN or --token") from None
    except GrafanaException as exc:
        if exc.status_code == 403:
            raise GrafanaPushError(f"permission denied at {url} (403): the token needs the Editor role on dashboards and folders") from None
        raise GrafanaPushError(f"Grafana at {url} answered {exc.status_code}: {exc.message}".replace("\n", " ")[:300]) from None
    except Exception as exc:  # niquests connection errors, timeouts, non-Grafana answers
        raise GrafanaPushError(f"cannot talk to Grafana at {url}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}") from None
    return pushed
