"""Flask + requests + redis-py, two problems: the loyalty API takes ~400 ms (dominant), and each request
re-reads the same flag from Redis (small)."""

import os

import redis
import requests
from flask import Flask

app = Flask(__name__)
r = redis.Redis.from_url(os.environ["REDIS_URL"])
r.set("flags:loyalty", "on")
LOYALTY = os.environ["DEP_URL"]
session = requests.Session()


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/points/<int:user>")
def points(user):
    if r.get("flags:loyalty") != b"on":
        return {"user": user, "points": None}
    return {"user": user, "points": session.get(f"{LOYALTY}/points/{user}", timeout=5).json()}
