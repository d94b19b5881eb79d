"""python -m analytics_service.replay: rebuild every rollup from the raw events.

Rollups are sums, sets and min/max over analytics_events, so rebuilding them gives the numbers
the live consumer reached (tests/analytics/test_replay.py checks it). Runs in one transaction
under an exclusive lock: the consumer's batches wait, their messages stay queued, nothing is
lost. Progression (XP, streaks, achievements, tickets) is not a rollup and is left alone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time

from analytics_service.service import replay
from shared import db as dbmod


async def run(dsn: str) -> int:
    pool = await dbmod.create_pool(dsn, min_size=1, max_size=1)
    try:
        return await replay(pool)
    finally:
        await pool.close()


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    dsn = os.environ.get("ANALYTICS_DATABASE_URL")
    if not dsn:
        print("ANALYTICS_DATABASE_URL is not set", file=sys.stderr)
        return 2
    started = time.monotonic()
    n = asyncio.run(run(dsn))
    print(f"analytics: rollups rebuilt from {n} raw events in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
