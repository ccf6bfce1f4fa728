"""The demo shop service with bottleneck switches (manual: examples/README.md).

Modules: ``app`` (the shop, ``python -m shop.app``), ``payment`` (the payment service),
``fulfilment`` (the Kafka consumer worker), ``switches`` (switch state + admin endpoint),
``db`` (schema, seed data, engines), ``events`` (Kafka topic and producer),
``payment_client`` (httpx + pybreaker), ``load`` (load generator), ``launch`` (start all
three processes), ``serving`` (uvicorn with a "ready" line).  Plain application code: it
never imports chokepoint.
"""
