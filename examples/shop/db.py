"""The shop's schema (PostgreSQL, or SQLite as the fallback), seed data, engines and per-request query accounting.

Schema (SQLAlchemy 2.0 ORM, created on start, idempotent under a lock — PostgreSQL's
advisory lock, a lock file next to a SQLite database — so the shop and the fulfilment
worker may start together):

``products``      200 000 rows (``SEED_PRODUCTS``); ``name`` has a prefix index on
                  ``lower(name)`` (``text_pattern_ops`` on PostgreSQL) — a prefix search
                  uses it, a "contains" search (``LIKE '%term%'``) cannot and scans the
                  table.
``settings``      ``key``/``value`` (``currency`` = ``EUR``).
``orders``        ``status``: ``placed`` → ``paid`` | ``payment_failed`` → ``fulfilled``.
``order_lines``   one row per product in an order (``order_id`` indexed).

Seed data is written once (when ``products`` is empty): products, the settings row and
``SEED_ORDERS`` fulfilled orders spread over ``SEED_CUSTOMERS`` customers
(``customer-1`` … ``customer-20``), so order listings have content from the first request.

:func:`sqlalchemy_url` accepts ``postgresql://…`` DSNs and gives the psycopg 3 driver URL,
and ``sqlite:///path/to/shop.sqlite`` (a file; the stdlib ``sqlite3`` driver).

SQLite is the demo's fallback where PostgreSQL is not installed (``make demo`` without
apt).  The same ORM schema and seed data, with what SQLite has instead of PostgreSQL's
features: the seed rows are generated in Python (same names, prices and orders), the
prefix index is an expression index on ``lower(name), price_cents, id`` that a *range*
condition uses (:func:`prefix_condition`; SQLite's LIKE cannot use an expression index), and the
engine is still a ``QueuePool`` (``check_same_thread=False``, WAL journal, 30 s busy
timeout) so pool waits and the ``db_pool_saturation`` switch behave as on PostgreSQL.

Per-request accounting: :class:`QueryStats` counts the SQL statements a request runs,
their time, and the time spent waiting for a pooled connection; ``shop.app`` returns
them as ``X-DB-Queries``, ``X-DB-Time-ms`` and ``X-DB-Pool-Wait-ms`` response headers (the
tests and the curious read them; nothing else depends on them).
"""

from __future__ import annotations

import contextvars
import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, ColumnElement, DateTime, ForeignKey, Integer, String, Text, and_, create_engine, event, func, insert, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.pool import QueuePool

SEED_PRODUCTS = 200_000
SEED_CUSTOMERS = 20
SEED_ORDERS = 200
CATEGORIES = ("books", "garden", "kitchen", "toys", "music", "sports", "office", "outdoor", "tools", "games")
ADJECTIVES = ("steel", "wooden", "plastic", "golden", "silver", "cotton", "glass", "paper", "stone", "leather",
              "copper", "bamboo", "woolen", "linen", "velvet", "marble", "rubber", "carbon", "crystal", "ceramic")  # fmt: skip
NOUNS = ("lamp", "chair", "table", "mug", "pen", "book", "kettle", "clock", "vase", "shelf", "bowl", "brush", "knife",
         "plate", "spoon", "box", "bag", "hat", "ring", "rope", "drum", "kite", "ball", "frame", "bench")  # fmt: skip
_SCHEMA_LOCK_ID = 7_311_2026
#: BIGINT keys on PostgreSQL; on SQLite only ``INTEGER PRIMARY KEY`` is the auto-numbered rowid.
_BigId = BigInteger().with_variant(Integer, "sqlite")
SQLITE_BUSY_TIMEOUT_S = 30.0


class Base(DeclarativeBase):
    pass


class Product(Base):
    __tablename__ = "products"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(40), index=True)
    price_cents: Mapped[int] = mapped_column(Integer)
    stock: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text)

    def as_dict(self) -> dict:
        return {"id": self.id, "sku": self.sku, "name": self.name, "category": self.category, "price_cents": self.price_cents, "stock": self.stock}


class Setting(Base):
    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    customer: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(20))
    total_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    payment_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    fulfilled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lines: Mapped[list[OrderLine]] = relationship(back_populates="order", order_by="OrderLine.id")

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "customer": self.customer,
            "status": self.status,
            "total_cents": self.total_cents,
            "currency": self.currency,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "fulfilled_at": self.fulfilled_at.isoformat() if self.fulfilled_at else None,
        }


class OrderLine(Base):
    __tablename__ = "order_lines"
    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    price_cents: Mapped[int] = mapped_column(Integer)
    order: Mapped[Order] = relationship(back_populates="lines")
    product: Mapped[Product] = relationship()


def sqlalchemy_url(dsn: str) -> str:
    """``postgresql://u@h:p/db`` (or ``postgres://``) -> ``postgresql+psycopg://u@h:p/db``; driver and SQLite file URLs pass through."""
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+psycopg://" + dsn[len(prefix) :]
    if dsn.startswith("postgresql+"):
        return dsn
    if dsn.startswith(("sqlite://", "sqlite+pysqlite://")):
        database = make_url(dsn).database
        if not database or database == ":memory:" or database.startswith("file:"):
            raise ValueError(
                f"not a SQLite database file: {dsn!r} (expected sqlite:///path/to/shop.sqlite: every process and pooled connection must see the same file)"
            )
        return dsn
    raise ValueError(f"not a PostgreSQL DSN or SQLite URL: {dsn!r} (expected postgresql://user@host:port/dbname or sqlite:///path/to/shop.sqlite)")


def is_sqlite(url: str) -> bool:
    """Whether ``url`` (a DSN or SQLAlchemy URL) names a SQLite database."""
    return url.startswith("sqlite")


def backend_name(url: str) -> str:
    """``"sqlite"`` or ``"postgresql"``: what the shop says it runs on (``/health``, ``/admin/stats``)."""
    return "sqlite" if is_sqlite(url) else "postgresql"


def escape_like(term: str) -> str:
    """Escape LIKE wildcards so user input matches literally (backslash is the escape character)."""
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def prefix_condition(column: ColumnElement, term: str, sqlite: bool) -> ColumnElement[bool]:
    """``lower(column)`` starts with ``term`` (already lower-case), in a form the prefix index serves.

    PostgreSQL: ``lower(name) LIKE 'term%'`` (the ``text_pattern_ops`` index).  SQLite:
    ``lower(name) >= 'term' AND lower(name) < 'term' || U+10FFFF`` — its LIKE never uses an
    expression index, a range does.
    """
    if sqlite:
        lowered = func.lower(column)
        return and_(lowered >= term, lowered < term + "\U0010ffff")
    return func.lower(column).like(escape_like(term) + "%")


def contains_condition(column: ColumnElement, term: str, sqlite: bool) -> ColumnElement[bool]:
    """``column`` contains ``term`` (already lower-case): ``LIKE '%term%'``, no index can serve it, every row is read.

    PostgreSQL: ``lower(name) LIKE '%term%'``.  SQLite: ``lower(name) LIKE '%term%' ESCAPE '\\'``
    (it has no default escape character).  SQLite's LIKE ignores ASCII case by itself, but
    without ``lower()`` the scan of 200 000 names takes ~40 ms on an idle core — under the
    analyzer's 50 ms ``slow_query`` bar, so the demo's bottleneck would show only on a busy
    machine; with it, ~100 ms.
    """
    pattern = f"%{escape_like(term)}%"
    return func.lower(column).like(pattern, escape="\\" if sqlite else None)


# --------------------------------------------------------------------------- accounting


@dataclass
class QueryStats:
    """What one request did on the database."""

    queries: int = 0
    db_time_s: float = 0.0
    pool_wait_s: float = 0.0


_current_stats: contextvars.ContextVar[QueryStats | None] = contextvars.ContextVar("shop_query_stats", default=None)


def start_request_stats() -> tuple[QueryStats, contextvars.Token]:
    stats = QueryStats()
    return stats, _current_stats.set(stats)


def end_request_stats(token: contextvars.Token) -> None:
    _current_stats.reset(token)


def _before_execute(conn, cursor, statement, parameters, context, executemany):
    conn.info.setdefault("shop_query_start", []).append(time.perf_counter())


def _after_execute(conn, cursor, statement, parameters, context, executemany):
    started = conn.info["shop_query_start"].pop()
    stats = _current_stats.get()
    if stats is not None:
        stats.queries += 1
        stats.db_time_s += time.perf_counter() - started


def make_engine(url: str, pool_size: int, max_overflow: int, pool_timeout_s: float = 30.0, name: str | None = None) -> Engine:
    """A QueuePool engine with the per-request accounting hooks attached (on SQLite too).

    ``name``: the engine's ``logging_name``, which chokepoint's pool probe reports as the
    pool's name (``db.client.connection.pool.name``), so each pool is told apart.
    """
    url = sqlalchemy_url(url)
    if is_sqlite(url):
        engine = create_engine(
            url,
            poolclass=QueuePool,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout_s,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
            logging_name=name,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_size=pool_size, max_overflow=max_overflow, pool_timeout=pool_timeout_s, pool_pre_ping=False, logging_name=name)
    event.listen(engine, "before_cursor_execute", _before_execute)
    event.listen(engine, "after_cursor_execute", _after_execute)
    return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL: readers and the one writer do not block each other; a second writer waits for the lock."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    cursor.close()


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """An ORM session inside one transaction (commit on success), connection checked out up front.

    The checkout is timed into the current request's ``pool_wait_s``.
    """
    with Session(engine, expire_on_commit=False) as session, session.begin():
        started = time.perf_counter()
        session.connection()
        stats = _current_stats.get()
        if stats is not None:
            stats.pool_wait_s += time.perf_counter() - started
        yield session


# --------------------------------------------------------------------------- schema + seed

_SEED_PRODUCTS_SQL = """
INSERT INTO products (id, sku, name, category, price_cents, stock, description)
SELECT i,
       'SKU-' || lpad(i::text, 7, '0'),
       (ARRAY[{adjectives}])[1 + (i % {n_adj})] || ' ' || (ARRAY[{nouns}])[1 + ((i / {n_adj}) % {n_nouns})] || ' ' || i,
       (ARRAY[{categories}])[1 + (i % {n_cat})],
       100 + (i * 7919) % 20000,
       (i * 31) % 500,
       'A fine product number ' || i || ' for everyday use.'
FROM generate_series(1, :n) AS s(i)
"""

_SEED_ORDERS_SQL = """
INSERT INTO orders (id, customer, status, total_cents, currency, payment_id, fulfilled_at)
SELECT o, 'customer-' || (1 + o % :customers), 'fulfilled', 0, 'EUR', 'seed-' || o, now()
FROM generate_series(1, :orders) AS s(o);
INSERT INTO order_lines (order_id, product_id, quantity, price_cents)
SELECT o, 1 + ((o * 104729 + l * 15485863) % :products), 1 + l, p.price_cents
FROM generate_series(1, :orders) AS s(o)
CROSS JOIN generate_series(1, 4) AS t(l)
JOIN products p ON p.id = 1 + ((o * 104729 + l * 15485863) % :products);
UPDATE orders o SET total_cents = sub.total FROM (
    SELECT order_id, sum(quantity * price_cents) AS total FROM order_lines GROUP BY order_id
) sub WHERE sub.order_id = o.id;
SELECT setval(pg_get_serial_sequence('orders', 'id'), (SELECT max(id) FROM orders));
"""


def _sql_array(words: tuple[str, ...]) -> str:
    return ", ".join(f"'{w}'" for w in words)


def ensure_schema(engine: Engine, products: int = SEED_PRODUCTS) -> bool:
    """Create tables, the name prefix index and seed data if missing; True when seeding happened."""
    if engine.dialect.name == "sqlite":
        return _ensure_schema_sqlite(engine, products)
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _SCHEMA_LOCK_ID})
        Base.metadata.create_all(conn)
        conn.execute(text("CREATE INDEX IF NOT EXISTS products_name_prefix_idx ON products (lower(name) text_pattern_ops)"))
        if conn.execute(text("SELECT EXISTS (SELECT 1 FROM products)")).scalar():
            return False
        sql = _SEED_PRODUCTS_SQL.format(
            adjectives=_sql_array(ADJECTIVES),
            n_adj=len(ADJECTIVES),
            nouns=_sql_array(NOUNS),
            n_nouns=len(NOUNS),
            categories=_sql_array(CATEGORIES),
            n_cat=len(CATEGORIES),
        )
        conn.execute(text(sql), {"n": products})
        conn.execute(text("INSERT INTO settings (key, value) VALUES ('currency', 'EUR') ON CONFLICT (key) DO NOTHING"))
        params = {"customers": SEED_CUSTOMERS, "orders": SEED_ORDERS, "products": products}
        for statement in _SEED_ORDERS_SQL.strip().split(";"):
            if statement.strip():
                conn.execute(text(statement), params)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
    return True


def seed_product(i: int) -> dict:
    """Product ``i`` of the seed data, the same row PostgreSQL's ``_SEED_PRODUCTS_SQL`` writes."""
    name = f"{ADJECTIVES[i % len(ADJECTIVES)]} {NOUNS[(i // len(ADJECTIVES)) % len(NOUNS)]} {i}"
    return {
        "id": i,
        "sku": f"SKU-{i:07d}",
        "name": name,
        "category": CATEGORIES[i % len(CATEGORIES)],
        "price_cents": 100 + (i * 7919) % 20000,
        "stock": (i * 31) % 500,
        "description": f"A fine product number {i} for everyday use.",
    }


def _ensure_schema_sqlite(engine: Engine, products: int) -> bool:
    """SQLite: the same schema and seed rows, serialised by a lock file next to the database."""
    path = engine.url.database
    assert path, "sqlalchemy_url() admits only SQLite database files"
    with open(f"{path}.schema-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with engine.begin() as conn:
                Base.metadata.create_all(conn)
                # price and id in the index too: a prefix that matches many rows ("leather": 10 000) is
                # ordered by price from the index alone, without reading every matching row
                conn.execute(text("CREATE INDEX IF NOT EXISTS products_name_prefix_idx ON products (lower(name), price_cents, id)"))
                if conn.execute(text("SELECT EXISTS (SELECT 1 FROM products)")).scalar():
                    return False
                batch = 20_000
                for start in range(1, products + 1, batch):
                    conn.execute(insert(Product), [seed_product(i) for i in range(start, min(start + batch, products + 1))])
                conn.execute(text("INSERT INTO settings (key, value) VALUES ('currency', 'EUR') ON CONFLICT (key) DO NOTHING"))
                orders, lines = [], []
                for o in range(1, SEED_ORDERS + 1):
                    total = 0
                    for line in range(1, 5):
                        product_id = 1 + ((o * 104729 + line * 15485863) % products)
                        price = seed_product(product_id)["price_cents"]
                        lines.append({"order_id": o, "product_id": product_id, "quantity": 1 + line, "price_cents": price})
                        total += (1 + line) * price
                    orders.append(
                        {
                            "id": o,
                            "customer": f"customer-{1 + o % SEED_CUSTOMERS}",
                            "status": "fulfilled",
                            "total_cents": total,
                            "currency": "EUR",
                            "payment_id": f"seed-{o}",
                        }
                    )
                conn.execute(insert(Order).values(fulfilled_at=func.current_timestamp()), orders)
                conn.execute(insert(OrderLine), lines)
            with engine.connect() as conn:
                conn.execute(text("ANALYZE"))
                conn.commit()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return True
