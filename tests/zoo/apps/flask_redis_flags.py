"""Flask + redis-py: every request reads the same feature-flag keys from Redis again."""

import os

import redis
from flask import Flask

app = Flask(__name__)
r = redis.Redis.from_url(os.environ["REDIS_URL"])
r.set("flags:checkout", "v2")
r.set("flags:banner", "off")


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/page/<int:n>")
def page(n):
    checkout = r.get("flags:checkout").decode()
    banner = r.get("flags:banner").decode()
    return {"page": n, "checkout": checkout, "banner": banner}
