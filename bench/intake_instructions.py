"""A driver for counting the events intake's instructions with metrics on or off.

    PYTHONHASHSEED=0 valgrind --tool=callgrind python -m bench.intake_instructions off 48
    PYTHONHASHSEED=0 valgrind --tool=callgrind python -m bench.intake_instructions on 48
    PYTHONHASHSEED=0 valgrind --tool=callgrind python -m bench.intake_instructions off 16

Stores 16 bodies of 100 events about known messages, then K of them again (redeliveries,
as the metrics scenario posts them), through `store_callback` in this process, with
counting on or off for the whole run and prometheus_client in multiprocess mode (as
`mailer api --workers N` runs). Callgrind's totals ("I refs") of two runs that differ only
in the setting price the counting; two K differ by the cost of the extra events
(docs/benchmarks.md, "Metrics on and off"). Instructions repeat to ~0.1 % where seconds
move by tens of percent on a shared machine.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile


async def _run(counting: bool, again: int) -> None:
    from bench import infra
    from bench.payloads import event_bodies
    from bench.scenarios_metrics import known_messages
    from mailer.db.pool import create_pool
    from mailer.metrics import count
    from mailer.tracking.intake import store_callback

    async with infra.fresh_database(infra.server_dsn()) as dsn:
        app_id, _ = await infra.create_app(dsn)
        bodies = event_bodies(await known_messages(dsn, app_id, 1_600), 100, 16)
        count.set_enabled(counting)
        pool = await create_pool(dsn, min_size=1, max_size=1)
        try:
            for body in bodies:
                await store_callback(pool, body)
            for i in range(again):
                await store_callback(pool, bodies[i % len(bodies)])
        finally:
            await pool.close()


def main(argv: list[str]) -> int:
    """`on|off K`: run the driver."""
    if len(argv) != 2 or argv[0] not in ("on", "off") or not argv[1].isdigit():
        print(__doc__, file=sys.stderr)
        return 2
    # Before prometheus_client is imported: the mode `mailer api --workers N` counts in.
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp())
    asyncio.run(_run(argv[0] == "on", int(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
