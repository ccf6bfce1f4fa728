"""``chokepoint grafana push`` with the real grafana-client, in its own venv, against a fake Grafana HTTP API.

grafana-client pulls urllib3-future, which replaces ``urllib3`` in the environment it is
installed in, so it lives in ``.venv-grafana`` (created here on first use with
``pip install -c constraints.txt -e ./semconv -e ./instrument -e ./collector -e './dashboards[grafana]'``,
reused afterwards) and never in the shared ``.venv``.  Grafana itself is not packaged
for Debian, so a small HTTP server speaks the part of its API the push uses
(``/api/folders``, ``/api/dashboards/db``) with bearer-token auth.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from chokepoint.dashboards.grafana.generate import all_dashboards
from devservices import free_port
from tests.json_server import send_json

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv-grafana"
GOOD_TOKEN = "glsa_test_token"


@pytest.fixture(scope="module")
def grafana_venv() -> Path:
    chokepoint = VENV / "bin" / "chokepoint"
    probe = [str(VENV / "bin" / "python"), "-c", "import grafana_client, chokepoint.dashboards.grafana.push"]
    if not chokepoint.exists() or subprocess.run(probe, capture_output=True).returncode != 0:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        install = subprocess.run(
            [
                str(VENV / "bin" / "pip"),
                "install",
                "-q",
                "--disable-pip-version-check",
                "-c",
                "constraints.txt",
                "-e",
                "./semconv",
                "-e",
                "./instrument",
                "-e",
                "./collector",
                "-e",
                "./dashboards[grafana]",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if install.returncode != 0:
            pytest.fail(f"could not build {VENV}: {install.stderr[-800:]}", pytrace=False)
    return chokepoint


class FakeGrafana:
    """Folders and dashboards by uid, bearer-token auth, Grafana's status codes."""

    def __init__(self) -> None:
        self.folders: dict[str, dict] = {}
        self.dashboards: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, body: dict) -> None:
                send_json(self, status, body)

            def _authorized(self) -> bool:
                outer.requests.append((self.command, self.path))
                if self.headers.get("Authorization") != f"Bearer {GOOD_TOKEN}":
                    self._reply(401, {"message": "invalid API key"})
                    return False
                return True

            def do_GET(self) -> None:
                if not self._authorized():
                    return
                if self.path.startswith("/api/folders/"):
                    uid = self.path.rsplit("/", 1)[1]
                    if uid in outer.folders:
                        return self._reply(200, outer.folders[uid])
                    return self._reply(404, {"message": "folder not found", "status": "not-found"})
                self._reply(404, {"message": "not found"})

            def do_POST(self) -> None:
                if not self._authorized():
                    return
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path == "/api/folders":
                    uid = body.get("uid") or f"f{len(outer.folders)}"
                    if uid in outer.folders:
                        return self._reply(409, {"message": "a folder with the same uid already exists"})
                    outer.folders[uid] = {"id": len(outer.folders) + 1, "uid": uid, "title": body["title"]}
                    return self._reply(200, outer.folders[uid])
                if self.path == "/api/dashboards/db":
                    dashboard = body["dashboard"]
                    uid = dashboard["uid"]
                    if uid in outer.dashboards and not body.get("overwrite"):
                        return self._reply(412, {"message": "The dashboard has been changed by someone else", "status": "version-mismatch"})
                    if body.get("folderUid") not in outer.folders:
                        return self._reply(400, {"message": "folder not found"})
                    version = outer.dashboards.get(uid, {}).get("version", 0) + 1
                    outer.dashboards[uid] = {"dashboard": dashboard, "folderUid": body["folderUid"], "version": version}
                    return self._reply(200, {"id": len(outer.dashboards), "uid": uid, "url": f"/d/{uid}/x", "status": "success", "version": version})
                self._reply(404, {"message": "not found"})

            def log_message(self, format, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def grafana():
    server = FakeGrafana()
    server.thread.start()
    yield server
    server.httpd.shutdown()


def push(chokepoint: Path, *args: str, token: str | None = GOOD_TOKEN) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "GRAFANA_TOKEN"}
    if token:
        env["GRAFANA_TOKEN"] = token
    return subprocess.run([str(chokepoint), "grafana", "push", *args], capture_output=True, text=True, timeout=120, env=env)


def test_push_creates_folder_and_every_dashboard_by_uid(grafana_venv, grafana):
    out = push(grafana_venv, "--url", grafana.url)
    assert out.returncode == 0, out.stderr
    expected = {d["uid"]: d for d in all_dashboards()}
    assert set(grafana.dashboards) == set(expected)
    assert grafana.folders["chokepoint"]["title"] == "chokepoint"
    for uid, stored in grafana.dashboards.items():
        assert stored["folderUid"] == "chokepoint" and stored["version"] == 1
        assert stored["dashboard"] == {**expected[uid], "id": None}
    assert out.stdout.count("pushed ") == 5 and f"{grafana.url}/d/chokepoint-overview/x" in out.stdout


def test_push_twice_is_idempotent(grafana_venv, grafana):
    assert push(grafana_venv, "--url", grafana.url).returncode == 0
    second = push(grafana_venv, "--url", grafana.url)
    assert second.returncode == 0, second.stderr
    assert len(grafana.dashboards) == 5 and len(grafana.folders) == 1
    assert {d["version"] for d in grafana.dashboards.values()} == {2}


def test_wrong_token_is_one_clear_line(grafana_venv, grafana):
    out = push(grafana_venv, "--url", grafana.url, "--token", "wrong", token=None)
    assert out.returncode == 1
    assert out.stderr == f"chokepoint grafana push: authentication failed at {grafana.url} (401): check GRAFANA_TOKEN or --token\n"
    assert grafana.dashboards == {}


def test_nothing_listening_is_one_clear_line(grafana_venv):
    url = f"http://127.0.0.1:{free_port()}"
    out = push(grafana_venv, "--url", url, "--timeout", "3")
    assert out.returncode == 1
    assert out.stderr.startswith(f"chokepoint grafana push: cannot talk to Grafana at {url}: ")
    assert out.stderr.count("\n") == 1


def test_grafana_client_stays_out_of_the_shared_venv(grafana_venv):
    """urllib3-future replaced urllib3 in .venv-grafana only; the shared venv keeps the real one."""
    probe = "import urllib3, importlib.metadata as m; print(m.version('urllib3-future') if 'future' in urllib3.__file__ or hasattr(urllib3, 'AsyncPoolManager') else 'real')"
    isolated = subprocess.run([str(VENV / "bin" / "python"), "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    shared = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert isolated != "real" and shared == "real"
