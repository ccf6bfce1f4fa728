"""Flask on gunicorn gthread (1 process, 4 threads): every request computes a price table in pure Python."""

from flask import Flask

app = Flask(__name__)


def price_table(n: int) -> int:
    total = 0
    for i in range(200_000):
        total = (total + i * i * n) % 1_000_003
    return total


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/prices/<int:n>")
def prices(n):
    return {"n": n, "checksum": price_table(n)}
