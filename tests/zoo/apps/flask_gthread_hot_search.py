"""Flask on gunicorn gthread (8 threads): /search waits 800 ms on a search backend while holding its
thread; most threads go to search and the quick pages queue behind them."""

import os

import requests
from flask import Flask

app = Flask(__name__)
SEARCH = os.environ["DEP_URL"]
session = requests.Session()


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/search")
def search():
    return {"hits": session.get(f"{SEARCH}/query", timeout=5).json()}


@app.get("/item/<int:n>")
def item(n):
    return {"item": n, "name": f"item {n}"}
