"""Flask: a catalogue export of ~400 KB of JSON, sent as is (no compression)."""

from flask import Flask, jsonify

app = Flask(__name__)
CATALOG = [{"sku": i, "name": f"product {i}", "description": "a fine product " * 8, "price_cents": i * 7} for i in range(2500)]


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/export")
def export():
    return jsonify(CATALOG)
