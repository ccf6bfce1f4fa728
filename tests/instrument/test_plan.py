"""plan: one table decides chokepoint / upstream / off per library, from AgentConfig only."""

from __future__ import annotations

import logging
from importlib.metadata import version

import pytest

from chokepoint.instrument.config import AgentConfig
from chokepoint.instrument.plan import BY_NAME, LIBRARIES, OFF, OWN, UPSTREAM, log_plan, make_plan

EVERY_UPSTREAM = frozenset(row.name for row in LIBRARIES)
STABLE = AgentConfig(http_semconv="http")


def test_defaults_give_chokepoint_its_own_hot_libraries_and_upstream_the_rest():
    plan = make_plan(STABLE, EVERY_UPSTREAM)
    assert {lib: plan.path(lib) for lib in ("fastapi", "starlette", "httpx", "requests", "urllib3", "sqlalchemy")} == dict.fromkeys(
        ("fastapi", "starlette", "httpx", "requests", "urllib3", "sqlalchemy"), OWN
    )
    assert plan.path("flask") == plan.path("psycopg") == plan.path("sqlite3") == UPSTREAM
    assert plan.path("system_metrics") == OFF
    # "X replaces Y" is data: own ASGI spans replace both server instrumentors, own clients their upstream one
    assert not plan.runs_upstream("fastapi") and not plan.runs_upstream("starlette") and not plan.runs_upstream("httpx")
    assert plan.runs_upstream("sqlalchemy")  # the own SQLAlchemy path runs over the upstream instrumentor
    assert plan.runs_upstream("flask") and plan.runs_upstream("botocore")  # not in the table: upstream as it is


@pytest.mark.parametrize(
    ("config", "library", "path", "why"),
    [
        (AgentConfig(http_semconv="http", httpx="upstream"), "httpx", UPSTREAM, "CHOKEPOINT_HTTPX=upstream"),
        (AgentConfig(http_semconv="http/dup"), "requests", UPSTREAM, "HTTP semconv 'http/dup'"),
        (AgentConfig(http_semconv="default"), "urllib3", UPSTREAM, "HTTP semconv 'default'"),
        (AgentConfig(asgi="upstream"), "fastapi", UPSTREAM, "CHOKEPOINT_ASGI=upstream"),
        (AgentConfig(sqlalchemy="upstream"), "sqlalchemy", UPSTREAM, "CHOKEPOINT_SQLALCHEMY=upstream"),
        (AgentConfig(disabled_instrumentations=frozenset({"flask"})), "flask", OFF, "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"),
        (AgentConfig(disabled_instrumentations=frozenset({"*"})), "httpx", OFF, "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"),
    ],
)
def test_each_switch_moves_one_library(config, library, path, why):
    choice = make_plan(config, EVERY_UPSTREAM).choice(library)
    assert (choice.path, why in choice.why) == (path, True)


def test_a_library_without_any_instrumentation_is_off_and_says_what_to_install():
    plan = make_plan(STABLE, available=frozenset())
    assert plan.path("flask") == OFF and "pip install 'chokepoint-instrument[flask]'" in plan.choice("flask").why
    assert plan.path("sqlalchemy") == OFF and "chokepoint-instrument[sqlalchemy]" in plan.choice("sqlalchemy").why
    assert plan.path("requests") == OWN  # chokepoint's own client spans need no upstream package
    assert plan.path("fastapi") == OWN


def test_only_installed_libraries_are_in_the_plan_with_their_versions():
    plan = make_plan(STABLE, EVERY_UPSTREAM)
    assert plan.choice("flask").version == version("flask")
    assert plan.choice("sqlite3").version == "stdlib"
    assert {c.library for c in plan.choices} <= set(BY_NAME)
    assert plan.path("not-a-library") == OFF


def test_the_config_read_from_the_environment_feeds_the_plan():
    config = AgentConfig.from_env({"OTEL_SEMCONV_STABILITY_OPT_IN": "http", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "redis, flask"})
    assert config.disabled_instrumentations == {"redis", "flask"} and config.http_semconv == "http"
    plan = make_plan(config, EVERY_UPSTREAM)
    assert plan.path("redis") == plan.path("flask") == OFF and plan.own("requests")


def test_the_plan_renders_and_logs_one_line_per_library(caplog):
    plan = make_plan(STABLE, EVERY_UPSTREAM)
    lines = plan.render().splitlines()
    assert lines[0].split() == ["library", "version", "path", "why"] and len(lines) == len(plan.choices) + 1
    assert any(line.split()[:3] == ["httpx", version("httpx"), OWN] for line in lines)
    with caplog.at_level(logging.INFO, logger="chokepoint.instrument"):
        log_plan(plan)
    assert len([r for r in caplog.records if r.getMessage().startswith("chokepoint plan: ")]) == len(plan.choices)
