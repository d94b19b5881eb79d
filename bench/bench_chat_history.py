"""Chat history window: what reading a message's history costs as a conversation grows.

    .venv/bin/python bench/bench_chat_history.py

Needs the local PostgreSQL (scripts/infra.sh). Creates a throwaway database with the chat
schema, conversations of 40, 300, 2,000 and 10,000 messages (10-400 characters and 3-120 tokens
each, 1% pinned), and times, side by side in one run, the window as migration 002 reads it
(`chat_history_window`: newest first, stopped at the cap) and the window-function query it
replaced (every message of the conversation summed on each read). Both must return the same
rows; the script checks that first. Cap: the Free tier's 12K-token input budget.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import percentile as pct  # noqa: E402

from chat_service.repositories.messages import recent_within_query  # noqa: E402
from shared.db import create_pool  # noqa: E402
from shared.migrate import migrate  # noqa: E402
from shared.testing.env import Infra, create_database, drop_database, new_run_id  # noqa: E402

CAP = 11_000
COLUMNS = "id, seq, sender, role, content, token_count, pinned"
# Migration 001's form: a running sum and a count over the whole conversation, then filtered.
WHOLE_HISTORY = f"""
    SELECT {COLUMNS}, total FROM (
        SELECT {COLUMNS}, sum(token_count) OVER (ORDER BY seq DESC) AS running, count(*) OVER () AS total
          FROM messages WHERE conversation_id = $1 AND ($3::bigint IS NULL OR seq < $3)
    ) s
     WHERE running <= $2 OR pinned
     ORDER BY seq"""
WINDOW = recent_within_query("$1", "$2", "$3") + " ORDER BY seq"


async def main() -> None:
    infra = Infra.from_environ()
    name = f"{new_run_id()}_chathist"
    dsn = await create_database(infra, name)
    try:
        await migrate(dsn, "chat")
        pool = await create_pool(dsn, min_size=1, max_size=2)
        rnd = random.Random(5)
        user_id = str(uuid.uuid4())
        print(f"history window read, cap {CAP} tokens, 200 reads each, p50 / p99 (ms)")
        print(
            f"  {'messages':>9} {'in window':>9}   {'whole-history query':>22}   "
            f"{'chat_history_window':>22}   ratio p50"
        )
        for n in (40, 300, 2000, 10000):
            cid = str(uuid.uuid4())
            await pool.execute(
                "INSERT INTO conversations (id, user_id, character_name, message_count) VALUES ($1, $2, 'Batman', $3)",
                cid,
                user_id,
                n,
            )
            await pool.executemany(
                "INSERT INTO messages (id, conversation_id, user_id, sender, role, content, token_count, pinned)"
                " VALUES ($1, $2, $3, 'user', 'user', $4, $5, $6)",
                [
                    (
                        str(uuid.uuid4()),
                        cid,
                        user_id,
                        "x" * rnd.randint(10, 400),
                        rnd.randint(3, 120),
                        rnd.random() < 0.01,
                    )
                    for _ in range(n)
                ],
            )
            await pool.execute("ANALYZE messages")
            old_rows = await pool.fetch(WHOLE_HISTORY, cid, CAP, None)
            new_rows = await pool.fetch(WINDOW, cid, CAP, None)
            assert [tuple(r) for r in old_rows] == [tuple(r) for r in new_rows], "the two forms disagree"
            timings = {}
            for label, sql in (("old", WHOLE_HISTORY), ("new", WINDOW)):
                ts = []
                for _ in range(200):
                    t0 = time.perf_counter()
                    await pool.fetch(sql, cid, CAP, None)
                    ts.append((time.perf_counter() - t0) * 1000)
                timings[label] = ts
            o, w = timings["old"], timings["new"]
            print(
                f"  {n:>9} {len(new_rows):>9}   {pct(o, 50):9.2f} / {pct(o, 99):9.2f}   "
                f"{pct(w, 50):9.2f} / {pct(w, 99):9.2f}"
                f"   {pct(o, 50) / pct(w, 50):6.1f}x"
            )
        await pool.close()
    finally:
        await drop_database(infra, name)


if __name__ == "__main__":
    asyncio.run(main())
