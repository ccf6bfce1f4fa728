"""The dashboards' ``chokepoint`` subcommands: dashboard, rules, grafana push/generate."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time

import pytest
import requests

from chokepoint.collector.cli import build_parser, main
from chokepoint.dashboards.grafana import generate
from chokepoint.dashboards.rules import rules_yaml


def test_subcommands_are_registered():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert {"dashboard", "rules", "grafana"} <= set(sub.choices)


def test_rules_prints_the_generated_yaml(capsys):
    assert main(["rules"]) == 0
    assert capsys.readouterr().out == rules_yaml()


def test_rules_output_file(tmp_path):
    out = tmp_path / "rules.yml"
    assert main(["rules", "-o", str(out)]) == 0
    assert out.read_text() == rules_yaml()


def test_grafana_generate_writes_every_file(tmp_path, capsys):
    assert main(["grafana", "generate", "--output", str(tmp_path)]) == 0
    for rel, text in generate.rendered_files().items():
        assert (tmp_path / rel).read_text() == text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--url", "not a url", "--token", "t"], "bad Grafana URL 'not a url'"),
        (["--url", "http://127.0.0.1:99999", "--token", "t"], "bad Grafana URL"),
        (["--url", "http://127.0.0.1:3000"], "no Grafana token: set GRAFANA_TOKEN or pass --token"),
    ],
)
def test_grafana_push_rejects_bad_input_in_one_line(argv, message, capsys, monkeypatch):
    monkeypatch.delenv("GRAFANA_TOKEN", raising=False)
    assert main(["grafana", "push", *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_grafana_push_without_the_extra_says_how_to_install(capsys, monkeypatch):
    # the shared .venv deliberately lacks grafana-client (it would replace urllib3)
    assert importlib.util.find_spec("grafana_client") is None
    monkeypatch.setenv("GRAFANA_TOKEN", "t")
    assert main(["grafana", "push", "--url", "http://127.0.0.1:3000"]) == 1
    assert "pip install 'chokepoint-dashboards[grafana]'" in capsys.readouterr().err


def test_dashboard_command_serves_the_app(real_collector):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "chokepoint.collector.cli", "dashboard", "--api", real_collector.url, "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                resp = requests.get(f"http://127.0.0.1:{port}/_dash-layout", timeout=1)
                break
            except requests.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() is not None else "timeout"
                time.sleep(0.2)
        assert resp.status_code == 200 and "Overview" in resp.text
    finally:
        proc.terminate()
        proc.wait(10)
