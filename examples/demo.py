"""``make demo``: the sidecar, the demo shop service and its load, on one machine.

Until every part is built this prints what is ready and what is not yet, and starts
the real PostgreSQL and Kafka the demo will use, so the set-up path is exercised.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from devservices import KafkaService, PostgresService, ServiceUnavailable


def main() -> int:
    print("chokepoint demo")
    try:
        with PostgresService() as pg, KafkaService() as kafka:
            print(f"  PostgreSQL   ready  {pg.dsn}")
            print(f"  Kafka        ready  {kafka.bootstrap}")
            print("  sidecar      not yet built (chokepoint serve)")
            print("  demo service not yet built (examples/shop)")
            print("  dashboard    not yet built (http://127.0.0.1:8050)")
    except ServiceUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("demo finished: services stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
