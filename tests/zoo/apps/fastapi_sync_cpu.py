"""FastAPI (sync routes on the thread pool): each request scores recommendations in pure Python."""

from fastapi import FastAPI

app = FastAPI()
ITEMS = [(i, (i * 7919) % 1000 / 1000) for i in range(20_000)]


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/recommend/{user}")
def recommend(user: int):
    scores = sorted(((item, weight * ((user * item) % 97)) for item, weight in ITEMS), key=lambda p: -p[1])
    return {"user": user, "top": [item for item, _ in scores[:10]]}
