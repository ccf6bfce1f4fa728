import pytest

from chokepoint.instrument.sanitize import header_allowed, normalize_sql, sanitize_attributes, sanitize_url, strip_query


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("SELECT * FROM t WHERE id = 42", "SELECT * FROM t WHERE id = ?"),
        ("SELECT * FROM users WHERE name = 'bob' AND pw = 'o''neil'", "SELECT * FROM users WHERE name = ? AND pw = ?"),
        ("SELECT a FROM t WHERE x IN (1, 2, 3)", "SELECT a FROM t WHERE x IN (?)"),
        ("SELECT a FROM t WHERE x IN ('a','b')", "SELECT a FROM t WHERE x IN (?)"),
        ("SELECT 1.5e3, -4, .5", "SELECT ?, ?, ?"),
        ("UPDATE t SET flag = true WHERE n = 0x1F", "UPDATE t SET flag = ? WHERE n = ?"),
        ("SELECT $$secret$$, $tag$x$tag$", "SELECT ?, ?"),
        ("SELECT t1.col2 FROM t1 -- trailing comment", "SELECT t1.col2 FROM t1"),
        ("SELECT /* sqlcommenter='x' */ a FROM t", "SELECT a FROM t"),
        ('SELECT "Col1" FROM "Table2"', 'SELECT "Col1" FROM "Table2"'),
        ("SELECT id FROM t WHERE id = %(id)s", "SELECT id FROM t WHERE id = %(id)s"),
        ("SELECT id FROM t WHERE id = $1", "SELECT id FROM t WHERE id = $1"),
        ("INSERT INTO t VALUES (E'\\\\x00', NULL)", "INSERT INTO t VALUES (?, NULL)"),
        ("  SELECT\n   a\tFROM t  ", "SELECT a FROM t"),
        ("", ""),
    ],
)
def test_sql_literals_become_placeholders(statement, expected):
    assert normalize_sql(statement) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:pw@api.example.com/v1/x?token=abc#frag", "https://api.example.com/v1/x"),
        ("http://127.0.0.1:8080/a/b?q=1", "http://127.0.0.1:8080/a/b"),
        ("http://[::1]:9000/p", "http://[::1]:9000/p"),
        ("http://host/plain", "http://host/plain"),
        ("http://host:notaport/x", ""),
    ],
)
def test_urls_lose_credentials_query_and_fragment(url, expected):
    assert sanitize_url(url) == expected


def test_strip_query():
    assert strip_query("/items/1?secret=1#x") == "/items/1"


def test_headers_by_allow_list():
    assert header_allowed("http.response.header.content_length")
    assert header_allowed("http.request.header.user-agent")
    assert not header_allowed("http.request.header.authorization")
    assert not header_allowed("http.request.header.cookie")
    assert header_allowed("http.request.header.x_tenant", frozenset({"x-tenant"}))
    assert header_allowed("db.system.name")  # not a header attribute


def test_sanitize_attributes_applies_every_rule():
    clean = sanitize_attributes(
        {
            "db.query.text": "SELECT * FROM t WHERE email = 'a@b.c'",
            "db.statement": "DELETE FROM t WHERE id = 7",
            "url.full": "https://u:p@h/x?k=v",
            "http.url": "http://h/y?z=1",
            "http.target": "/path?token=1",
            "url.query": "token=1",
            "http.request.header.authorization": ("Bearer x",),
            "http.response.header.content_length": ("12",),
            "messaging.message.body": "payload",
            "http.route": "/items/{id}",
        }
    )
    assert clean == {
        "db.query.text": "SELECT * FROM t WHERE email = ?",
        "db.statement": "DELETE FROM t WHERE id = ?",
        "url.full": "https://h/x",
        "http.url": "http://h/y",
        "http.target": "/path",
        "http.response.header.content_length": ("12",),
        "http.route": "/items/{id}",
    }
    assert sanitize_attributes(None) == {}
