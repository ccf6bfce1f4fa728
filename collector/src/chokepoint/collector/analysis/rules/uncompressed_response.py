"""``uncompressed_response``: large responses are sent without compression.

Fires for a route whose responses sent *without* ``Content-Encoding`` average at least
``large_response_bytes``: the ingest keeps those sizes apart
(``http.server.response.body.size.uncompressed.sum/.count``, from responses whose
``chokepoint.response.compressed`` attribute is false); compressed responses never count.
"""

from __future__ import annotations

from collections.abc import Iterable

from chokepoint.collector.analysis.candidate import Candidate, recommendation
from chokepoint.collector.analysis.snapshot import WindowSnapshot
from chokepoint.collector.catalog import Kind
from chokepoint.semconv import signals as sig

KIND = Kind.UNCOMPRESSED_RESPONSE
UNCOMPRESSED_SIZES = sig.HTTP_SERVER_RESPONSE_BODY_SIZE + ".uncompressed"


def rule(snap: WindowSnapshot) -> Iterable[Candidate]:
    cfg = snap.config
    for (svc, route), (avg_bytes, n, total) in snap.means_by_key(UNCOMPRESSED_SIZES).items():
        if avg_bytes < cfg.large_response_bytes:
            continue
        yield Candidate(
            KIND,
            svc,
            route,
            explained=0.2,
            strength=min(1.0, avg_bytes / (2.5 * cfg.large_response_bytes)),  # 250 KB per response at the default threshold
            summary=f"{route} sends {avg_bytes / 1000:.0f} KB per response uncompressed ({n / snap.window_s:.1f}/s, {total / snap.window_s / 1e6:.1f} MB/s)",
            evidence={"avg_response_bytes": round(avg_bytes), "responses": n, "bytes_per_s": round(total / snap.window_s)},
            recommendation=recommendation(KIND),
        )
