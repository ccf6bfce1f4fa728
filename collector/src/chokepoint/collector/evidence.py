"""Evidence values formatted for people: units from the key's suffix, rounded, no ``0.0`` / ``522.008``.

Usage::

    from chokepoint.collector.evidence import evidence_items, evidence_text
    evidence_text({"wait_p99_ms": 811.04, "pool_used": 15.0, "gc_time_fraction": 0.0261})
    # 'wait p99: 811 ms, pool used: 15, gc time fraction: 2.6%'
    evidence_items(evidence)          # [("wait p99", "811 ms"), ...] for a list or table

Read by ``chokepoint report`` and the Dash overview.  Units by key: ``*_ms`` milliseconds
(one decimal below 10 ms), ``*_s`` seconds, ``*_bytes`` kB/MB, ``*_per_s`` a rate,
``*_mb_per_min`` MB/min, ``*_fraction`` / ``*_share`` / ``*_ratio`` / ``fraction_of_*`` /
``share_of_*`` / ``loop_busy`` percentages, counts without a decimal point; ``None``
values and ``False`` flags are left out.  Key names lose their unit suffix and
underscores (``wait_p99_ms`` → ``wait p99``).
"""

from __future__ import annotations

PERCENT_KEYS = ("_fraction", "_share", "_ratio")
PERCENT_PREFIXES = ("fraction_of_", "share_of_")
PERCENT_NAMES = ("loop_busy",)


def _number(x: float) -> str:
    """Rounded for reading: 811.04 → '811', 4.26 → '4.3', 0.0 → '0', 15.0 → '15'."""
    if x == 0:
        return "0"
    ax = abs(x)
    if ax >= 100:
        text = f"{x:,.0f}"
    elif ax >= 10:
        text = f"{x:.0f}" if abs(x - round(x)) < 0.05 else f"{x:.1f}"
    elif ax >= 1:
        text = f"{x:.1f}"
    else:
        text = f"{x:.2g}"
    return text[:-2] if text.endswith(".0") else text


def _bytes(x: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(x) >= size:
            return f"{_number(x / size)} {unit}"
    return f"{_number(x)} B"


def format_value(key: str, value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "none"
    if not isinstance(value, (int, float)):
        return str(value)
    if key.endswith("_mb_per_min"):
        return f"{_number(value)} MB/min"
    if key.endswith("_ms"):
        return f"{_number(value)} ms"
    if key.endswith("_bytes") or key.endswith("_bytes_per_s") or key == "bytes_per_s":
        return _bytes(value) + ("/s" if key.endswith("per_s") else "")
    if key.endswith("_per_s") or key.endswith("_rps") or key == "rps":
        return f"{_number(value)}/s"
    if key.endswith("_s"):
        return f"{_number(value)} s"
    if key.endswith(PERCENT_KEYS) or key.startswith(PERCENT_PREFIXES) or key in PERCENT_NAMES:
        return f"{_number(100.0 * value)}%"
    return _number(float(value))


def label(key: str) -> str:
    for suffix in ("_mb_per_min", "_ms", "_bytes", "_s"):
        if key.endswith(suffix) and not key.endswith("_per_s"):
            key = key[: -len(suffix)]
            break
    return key.replace("_", " ")


def evidence_items(evidence: dict) -> list[tuple[str, str]]:
    return [(label(k), format_value(k, v)) for k, v in evidence.items() if v is not None and v is not False]


def evidence_text(evidence: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in evidence_items(evidence))
