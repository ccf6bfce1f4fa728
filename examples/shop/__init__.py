"""The demo shop service (see examples/shop/README or module docs)."""
