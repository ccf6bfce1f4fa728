"""FastAPI (sync routes) + PyMySQL on MariaDB: orders searched by a column without an index."""

import os

import pymysql
from fastapi import FastAPI


def connect():
    return pymysql.connect(
        host=os.environ["MYSQL_HOST"], port=int(os.environ["MYSQL_PORT"]), user=os.environ["MYSQL_USER"], database=os.environ["MYSQL_DB"], autocommit=True
    )


with connect() as conn, conn.cursor() as cur:
    cur.execute("CREATE TABLE IF NOT EXISTS orders (id INT AUTO_INCREMENT PRIMARY KEY, reference VARCHAR(40), total INT)")
    cur.execute("SELECT count(*) FROM orders")
    if cur.fetchone()[0] == 0:
        cur.execute("INSERT INTO orders (reference, total) SELECT CONCAT('ref-', seq), seq % 1000 FROM seq_1_to_200000")
app = FastAPI()


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/order/{n}")
def order(n: int):
    with connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT id, total FROM orders WHERE reference = %s", (f"ref-{n * 101}",))
        row = cur.fetchone()
    return {"id": row[0], "total": row[1]} if row else {}
