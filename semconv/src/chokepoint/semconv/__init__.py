"""chokepoint.semconv — the names shared by the agent, the collector and the dashboards.

Standard library only, so each part imports it without installing the others::

    from chokepoint.semconv import signals as sig         # OTLP wire names (sig.DB_POOL_WAIT_TIME)
    from chokepoint.semconv.aliases import SERVER_ADDRESS_KEYS, first
    from chokepoint.semconv.catalog import FINDINGS_BY_KIND, Kind, REQUEST_DURATION
    from chokepoint.semconv.rest import ENDPOINTS, Endpoint, Finding

Changing a name here is a wire-format or contract change (../shared/CONTRACT.md): add new
names freely; rename only with a release that still reads the old one.
"""
