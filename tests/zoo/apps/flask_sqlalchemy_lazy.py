"""Flask + SQLAlchemy ORM on PostgreSQL: an order page reads each line's product lazily (N+1)."""

import os

from flask import Flask
from sqlalchemy import ForeignKey, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

engine = create_engine(os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"), pool_size=8)


class Base(DeclarativeBase):
    pass


class Product(Base):
    __tablename__ = "products"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


class Line(Base):
    __tablename__ = "lines"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    product: Mapped[Product] = relationship(lazy="select")


Base.metadata.create_all(engine)
with Session(engine) as s, s.begin():
    if s.scalar(select(Product.id).limit(1)) is None:
        s.add_all(Product(id=i, name=f"product {i}") for i in range(1, 3001))
        s.flush()
        s.add_all(Line(order_id=o, product_id=(o * 31 + k) % 3000 + 1) for o in range(1, 501) for k in range(25))
app = Flask(__name__)


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/orders/<int:order_id>")
def order(order_id):
    with Session(engine) as s:
        lines = s.scalars(select(Line).where(Line.order_id == order_id)).all()
        return {"order": order_id, "lines": [line.product.name for line in lines]}
