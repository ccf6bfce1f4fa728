"""Flask on gunicorn sync workers: each request waits 100 ms on an upstream API; more clients than workers."""

import os

import requests
from flask import Flask

app = Flask(__name__)
DEP = os.environ["DEP_URL"]
session = requests.Session()


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/quote/<int:item>")
def quote(item):
    price = session.get(f"{DEP}/prices/{item}", timeout=5).json()
    return {"item": item, "price": price}
