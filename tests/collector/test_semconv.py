"""Attribute aliases and the normalizers that keep route/statement/target keys low-cardinality."""

from __future__ import annotations

import pytest

from chokepoint.collector.semconv import db_target, first, http_target, normalize_path, normalize_statement, route_name


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/users/42", "/users/{id}"),
        ("/users/42/orders/7?page=2", "/users/{id}/orders/{id}"),
        ("/o/123e4567-e89b-12d3-a456-426614174000", "/o/{id}"),
        ("/blob/9f86d081884c7d659a2feaa0c55ad015", "/blob/{id}"),
        ("/health", "/health"),
        ("/v1/items", "/v1/items"),
        ("", "/"),
    ],
)
def test_normalize_path(path, expected):
    assert normalize_path(path) == expected


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("SELECT * FROM t WHERE id = 42", "SELECT * FROM t WHERE id = ?"),
        ("select  name\n from t where a = 'x''y' and b = 1.5", "select name from t where a = ? and b = ?"),
        ("SELECT * FROM t WHERE id IN (1, 2, 3)", "SELECT * FROM t WHERE id IN (?)"),
        ("INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y')", "INSERT INTO t (a, b) VALUES (?)"),  # any row count: one key
        ("SELECT * FROM t2 WHERE col_1 = $1", "SELECT * FROM t2 WHERE col_1 = $1"),
    ],
)
def test_normalize_statement_replaces_literals(statement, expected):
    assert normalize_statement(statement) == expected


def test_long_statements_are_truncated():
    assert len(normalize_statement("SELECT " + ", ".join(f"c{i}" for i in range(200)) + " FROM t")) == 200


def test_route_name_prefers_the_template():
    assert route_name("/items/{id}", "/items/5", "GET") == "/items/{id}"
    assert route_name(None, "/items/5?x=1", "GET") == "/items/{id}"
    assert route_name(None, None, "GET /x") == "GET /x"
    assert route_name(None, None, None) == "unknown"


def test_http_target_in_both_generations():
    assert http_target({"server.address": "api", "server.port": 443}) == "api"
    assert http_target({"net.peer.name": "api", "net.peer.port": 8080}) == "api:8080"
    assert http_target({"http.url": "https://user:pw@pay.example.com:8443/x?y=1"}) == "pay.example.com:8443"
    assert http_target({"url.full": "not a url"}) == "unknown"
    assert http_target({}) == "unknown"


def test_db_target_prefers_summary_then_statement_then_operation_then_system():
    assert db_target({"db.query.summary": "SELECT t", "db.query.text": "SELECT 1"}) == "SELECT t"
    assert db_target({"db.statement": "SELECT 1"}) == "SELECT ?"
    assert db_target({"db.operation": "find", "db.system": "mongodb"}) == "find"
    assert db_target({"db.system.name": "redis"}) == "redis"


def test_first_skips_missing_and_empty():
    assert first({"a": "", "b": None, "c": 0}, ("a", "b", "c")) == 0
    assert first({}, ("a",)) is None
