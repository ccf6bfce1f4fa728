import os

from chokepoint.instrument import cli


def test_usage_without_arguments(capsys):
    assert cli.main([]) == 2
    assert "chokepoint-instrument python app.py" in capsys.readouterr().out


def test_help(capsys):
    assert cli.main(["--help"]) == 0
    assert "OTEL_PYTHON_DISTRO" in capsys.readouterr().out


def test_runs_the_command_through_the_opentelemetry_launcher_with_chokepoint_selected(monkeypatch):
    calls = []
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_PYTHON_")}
    monkeypatch.setattr(os, "environ", environ)  # restored after the test
    monkeypatch.setattr(os, "execv", lambda path, argv: calls.append((path, argv)))
    cli.main(["python", "app.py"])
    ((path, argv),) = calls
    assert path.endswith("opentelemetry-instrument") and argv[1:] == ["python", "app.py"]
    assert environ["OTEL_PYTHON_DISTRO"] == "chokepoint" and environ["OTEL_PYTHON_CONFIGURATOR"] == "chokepoint"
