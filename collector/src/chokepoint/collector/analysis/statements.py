"""Which DB dependency targets are statements a request waits on.

A DB client span's target (``semconv.db_target``) is the query summary, the normalized
statement, the operation, or — for a span without any of these — the DB system's name.
Only statements say how long *queries* take.  Not statements:

- connection-level spans: ``connect`` and spans named just by the DB system
  (``postgresql``, ``mysql``, ``sqlite``, ...): the time to open a connection or to run
  a whole transaction, whatever runs inside it;
- transaction control: ``BEGIN``, ``COMMIT``, ``ROLLBACK``, ``SAVEPOINT``, ...;
- schema statements (``CREATE``, ``ALTER``, ``DROP``, ...): start-up migrations, not
  request work.

``statement_kind(target)`` returns ``statement``, ``connection``, ``transaction`` or
``schema``; ``slow_query`` and ``db_pool_saturation``'s query time read statements only.
"""

from __future__ import annotations

STATEMENT, CONNECTION, TRANSACTION, SCHEMA = "statement", "connection", "transaction", "schema"

DB_SYSTEMS = frozenset(
    {
        "db",
        "postgresql",
        "postgres",
        "mysql",
        "mariadb",
        "sqlite",
        "sqlite3",
        "mssql",
        "oracle",
        "cockroachdb",
        "other_sql",
        "asyncpg",
        "psycopg",
        "psycopg2",
        "pymysql",
    }
)
CONNECTION_WORDS = frozenset({"connect", "connection", "disconnect", "close", "ping", "reset"})
TRANSACTION_WORDS = frozenset({"begin", "commit", "rollback", "savepoint", "release", "start", "end", "set", "xa", "prepare"})
SCHEMA_WORDS = frozenset({"create", "alter", "drop", "truncate", "grant", "revoke", "comment", "vacuum", "analyze", "pragma", "reindex"})


def statement_kind(target: str) -> str:
    words = target.strip().lower().replace(";", " ").split()
    if not words or (len(words) == 1 and words[0] in DB_SYSTEMS):
        return CONNECTION
    first = words[0]
    if first in CONNECTION_WORDS:
        return CONNECTION
    if first in TRANSACTION_WORDS:
        return TRANSACTION
    if first in SCHEMA_WORDS:
        return SCHEMA
    return STATEMENT


def is_statement(target: str) -> bool:
    return statement_kind(target) == STATEMENT
