# chokepoint's images, built from the repository root (docker-compose.yml does this):
#
#   docker build -f docker/chokepoint.Dockerfile --target sidecar -t chokepoint-sidecar .
#   docker build -f docker/chokepoint.Dockerfile --target shop    -t chokepoint-shop .
#
# sidecar: `chokepoint serve` (collector, REST API + /metrics, OTLP 4317/4318, Dash 8050),
#          binding 0.0.0.0 inside the container; publish the ports on 127.0.0.1 only.
# shop:    the demo shop (payment, shop, fulfilment — pick one with the command) with the
#          in-app agent, run as `chokepoint-instrument python -m shop.<module>`; also holds
#          Locust and examples/locustfile.py for the compose `loadtest` profile.
# Every opentelemetry-* package is pinned by constraints.txt, as in the source tree.

FROM python:3.11-slim AS base
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/chokepoint
COPY constraints.txt ./
COPY semconv/ semconv/
COPY instrument/ instrument/
RUN pip install -c constraints.txt ./semconv ./instrument

FROM base AS sidecar
COPY collector/ collector/
COPY dashboards/ dashboards/
RUN pip install -c constraints.txt './collector[kafka]' ./dashboards
ENV CHOKEPOINT_BIND=0.0.0.0 CHOKEPOINT_DATA_DIR=/var/lib/chokepoint
RUN useradd --system --home-dir /var/lib/chokepoint --create-home chokepoint
USER chokepoint
EXPOSE 4317 4318 8787 8050
HEALTHCHECK --interval=10s --timeout=3s --retries=6 \
  CMD ["chokepoint", "report", "--api", "http://127.0.0.1:8787", "--format", "json"]
CMD ["chokepoint", "serve"]

FROM base AS shop
COPY examples/ examples/
RUN pip install -c constraints.txt ./examples
ENV SHOP_HOST=0.0.0.0 PAYMENT_HOST=0.0.0.0 FULFILMENT_HOST=0.0.0.0
RUN useradd --system --no-create-home shop
USER shop
EXPOSE 8000 8001 8002 8089
CMD ["chokepoint-instrument", "python", "-m", "shop.app"]
