"""FastAPI (sync routes) + psycopg_pool + httpx: a booking holds its transaction while the hotel API answers."""

import os

import httpx
from fastapi import FastAPI
from psycopg_pool import ConnectionPool

pool = ConnectionPool(os.environ["DATABASE_URL"], min_size=4, max_size=4, open=True)
with pool.connection() as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS bookings (id serial PRIMARY KEY, room int, confirmed bool DEFAULT false)")
hotel = httpx.Client(base_url=os.environ["DEP_URL"], timeout=5)
app = FastAPI()


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/book/{room}")
def book(room: int):
    if os.path.exists(os.environ.get("FIX_FLAG", "")):  # the fix, behind a feature flag: reserve outside the transaction
        with pool.connection() as conn:
            booking = conn.execute("INSERT INTO bookings (room) VALUES (%s) RETURNING id", (room,)).fetchone()[0]
        hotel.post("/reserve", json={"room": room, "booking": booking}).raise_for_status()
        with pool.connection() as conn:
            conn.execute("UPDATE bookings SET confirmed = true WHERE id = %s", (booking,))
        return {"booking": booking}
    with pool.connection() as conn, conn.transaction():
        booking = conn.execute("INSERT INTO bookings (room) VALUES (%s) RETURNING id", (room,)).fetchone()[0]
        hotel.post("/reserve", json={"room": room, "booking": booking}).raise_for_status()
        conn.execute("UPDATE bookings SET confirmed = true WHERE id = %s", (booking,))
    return {"booking": booking}
