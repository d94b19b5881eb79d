"""What the outbox's retention costs: one user's erasure (`erase_published`, a scan of the
published rows) and the retention sweep (`sweep_published`, batched deletes), over an outbox
holding N published events of realistic size spread over a day.

    python bench/bench_outbox_retention.py [--rows 200000]

Needs the local PostgreSQL (scripts/infra.sh); makes and drops its own database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import scratch  # noqa: E402

from shared.bus import erase_published, sweep_published  # noqa: E402
from shared.db import create_pool  # noqa: E402
from shared.migrate import migrate  # noqa: E402

# N events of ~350 bytes (a message.sent-like body naming a user), published over the last 24 h,
# ids in creation order, 1,000 users.
SEED = """
INSERT INTO outbox_events (event_id, event_type, body, created_at, published_at)
SELECT gen_random_uuid(), 'message.sent',
       convert_to(json_build_object(
           'event_id', gen_random_uuid(), 'event_type', 'message.sent', 'user_id', u.id,
           'timestamp', now(), 'data', json_build_object('conversation_id', gen_random_uuid(),
           'character', 'Batman', 'series', 'The Dark Knight', 'tokens', g % 500),
           'metadata', json_build_object('source', 'chat_service'), 'version', 1)::text, 'UTF8'),
       now() - make_interval(secs => 86400.0 * ($1 - g) / $1),
       now() - make_interval(secs => 86400.0 * ($1 - g) / $1) + interval '5 milliseconds'
  FROM generate_series(1, $1) AS g
  JOIN LATERAL (SELECT md5('user' || (g % 1000))::uuid AS id) u ON true
"""


async def timed_erasure(pool, user_id: str) -> tuple[float, int]:
    """ms and rows of one erasure, rolled back: every try scans the same table."""
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            t0 = time.perf_counter()
            erased = await erase_published(conn, user_id)
            return (time.perf_counter() - t0) * 1000, erased
        finally:
            await transaction.rollback()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    args = ap.parse_args()
    async with scratch("outbox") as run_env:
        dsn = run_env.dsns["outbox"]
        await migrate(dsn, "bench_outbox", Path(tempfile.mkdtemp()))
        pool = await create_pool(dsn, min_size=1, max_size=2)
        try:
            t0 = time.perf_counter()
            await pool.execute(SEED, args.rows, timeout=600)
            await pool.execute("VACUUM ANALYZE outbox_events", timeout=600)
            size = await pool.fetchval("SELECT pg_size_pretty(pg_total_relation_size('outbox_events'))")
            print(
                f"outbox retention benchmark: {args.rows:,} published events over 24 h ({size}), seeded in"
                f" {time.perf_counter() - t0:.1f} s; {os.cpu_count()} CPUs, load average"
                f" {' '.join(f'{x:.1f}' for x in os.getloadavg())}\n"
            )
            user = str(uuid.UUID(await pool.fetchval("SELECT md5('user7')")))
            timings = []
            for _ in range(3):
                ms, mine = await timed_erasure(pool, user)
                timings.append(ms)
            print(f"  erase one user (user.deleted):    {min(timings):8.1f} ms  ({mine} rows of theirs; best of 3)")
            t0 = time.perf_counter()
            swept = await sweep_published(pool, 12 * 3600)
            sweep = time.perf_counter() - t0
            print(
                f"  sweep, half past the retention:   {sweep * 1000:8.1f} ms"
                f"  ({swept:,} rows, {swept / sweep:,.0f} rows/s)"
            )
            t0 = time.perf_counter()
            again = await sweep_published(pool, 12 * 3600)
            print(f"  sweep again, nothing to delete:   {(time.perf_counter() - t0) * 1000:8.1f} ms  ({again} rows)")
        finally:
            await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
