"""The agent's warnings reach stderr when only OpenTelemetry's log bridge listens, once otherwise."""

from __future__ import annotations

import io
import logging

import pytest
from opentelemetry.instrumentation.logging.handler import LoggingHandler

from chokepoint.instrument.visible_log import install_visible_warnings, only_bridge_handlers


@pytest.fixture
def stderr(monkeypatch):
    """Python's last-resort handler, writing into a buffer the test reads."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.WARNING)
    monkeypatch.setattr(logging, "lastResort", handler)
    return buffer


@pytest.fixture
def agent_logger():
    """A logger tree cut off from the root (pytest's own capture handlers live there): its top
    plays the root, where the bridge or an app's handler goes."""
    top = logging.getLogger("chokepoint.tests.visible")
    top.propagate = False
    undo = install_visible_warnings("chokepoint.tests.visible.agent")
    try:
        yield logging.getLogger("chokepoint.tests.visible.agent.probes")
    finally:
        undo()
        top.propagate = True


def test_only_bridge_handlers_tells_the_bridge_from_others():
    logger = logging.getLogger("chokepoint.tests.visible.bridge")
    logger.propagate = False
    bridge = LoggingHandler()
    assert only_bridge_handlers(logger)  # nobody
    logger.addHandler(bridge)
    try:
        assert only_bridge_handlers(logger)  # the bridge alone
        logger.addHandler(stream := logging.StreamHandler())
        assert not only_bridge_handlers(logger)  # someone prints it already
        logger.removeHandler(stream)
    finally:
        logger.removeHandler(bridge)


def without_pytest_capture(logger: logging.Logger) -> logging.Logger:
    """pytest attaches its log-capture handlers for the test's call: the test decides who listens."""
    for handler in [h for h in logger.handlers if type(h).__module__.startswith("_pytest")]:
        logger.removeHandler(handler)
    return logger


def test_a_warning_reaches_stderr_behind_the_bridge_and_once_with_an_app_handler(agent_logger, stderr):
    bridge = LoggingHandler()
    root = without_pytest_capture(logging.getLogger("chokepoint.tests.visible"))
    root.addHandler(bridge)
    try:
        agent_logger.warning("blind spot: %s", "SQLAlchemy")
        assert stderr.getvalue().count("blind spot: SQLAlchemy") == 1
        agent_logger.info("not a warning")
        assert "not a warning" not in stderr.getvalue()
        app_stream = io.StringIO()
        app = logging.StreamHandler(app_stream)  # the app's own handler: it prints, chokepoint does not
        root.addHandler(app)
        agent_logger.warning("patch failed")
        assert "patch failed" not in stderr.getvalue() and app_stream.getvalue().count("patch failed") == 1
        root.removeHandler(app)
    finally:
        root.removeHandler(bridge)


def test_with_no_handler_at_all_a_warning_is_printed_once(agent_logger, stderr):
    without_pytest_capture(logging.getLogger("chokepoint.tests.visible"))
    agent_logger.warning("lonely")  # with chokepoint's handler on the chain Python would print nothing itself
    assert stderr.getvalue().count("lonely") == 1


def test_installed_once_and_undone():
    logger = logging.getLogger("chokepoint.tests.visible.once")
    undo = install_visible_warnings(logger.name)
    install_visible_warnings(logger.name)()
    assert len(logger.handlers) == 1
    undo()
    assert logger.handlers == []
