"""Flask: every product view is appended, with a copy of the page, to a module-level history."""

from flask import Flask

app = Flask(__name__)
HISTORY = []


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/product/<int:n>")
def product(n):
    page = {"id": n, "name": f"product {n}", "description": "lorem ipsum " * 200, "related": list(range(200))}
    HISTORY.append({"page": page, "copies": [dict(page) for _ in range(20)], "blob": bytearray(100_000)})
    return {"id": n, "name": page["name"]}
