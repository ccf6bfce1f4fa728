import os
from importlib.metadata import version

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


def test_plan_prints_the_plan_and_runs_nothing(monkeypatch, capsys):
    monkeypatch.setattr(os, "execv", lambda *a: (_ for _ in ()).throw(AssertionError("ran the command")))
    monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    assert cli.main(["--plan", "python", "app.py"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "chokepoint plan for: python app.py"
    rows = {line.split()[0]: line.split()[2] for line in out[2:]}
    assert rows["httpx"] == "chokepoint" and rows["flask"] == "upstream" and rows["system_metrics"] == "off"


def test_bootstrap_dry_run_prints_the_pip_command(monkeypatch, capsys):
    from chokepoint.instrument import plan

    monkeypatch.setattr(plan, "upstream_instrumentors", lambda: frozenset({"flask"}))  # as if only flask's were installed
    assert cli.main(["bootstrap", "--dry-run"]) == 0
    command = capsys.readouterr().out.split()
    pin = version("opentelemetry-instrumentation")
    assert command[1:4] == ["-m", "pip", "install"]
    assert f"opentelemetry-instrumentation-requests=={pin}" in command and f"opentelemetry-instrumentation-sqlalchemy=={pin}" in command
    assert not any(p.startswith(("opentelemetry-instrumentation-flask", "opentelemetry-instrumentation-system-metrics")) for p in command)
