"""Rank lookups from the histograms against a brute-force count, across many 1,024-value blocks
and with users moving between values."""

import random
from collections import Counter

import pytest

from analytics_service.repositories import ranks

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_rank_equals_brute_force_across_blocks(analytics_db):
    rnd = random.Random(3)
    metric = f"test_{rnd.randrange(10**9)}"
    values = [int(rnd.paretovariate(1.2) * 50) for _ in range(3000)]  # most small, a long tail over many blocks
    async with analytics_db.acquire() as conn, conn.transaction():
        await ranks.shift(conn, metric, Counter(values))
        # users move: their old value loses one, the new one gains one
        for i in rnd.sample(range(len(values)), 500):
            old, new = values[i], values[i] + rnd.randrange(0, 5000)
            await ranks.shift(conn, metric, Counter({old: -1, new: 1}))
            values[i] = new
        assert max(values) >> ranks.BLOCK_BITS >= 5
        probes = set(rnd.sample(values, 200)) | {0, max(values), max(values) + 1, 1023, 1024, 2047, 2048}
        for v in sorted(probes):
            above, total = await ranks.rank(conn, metric, v)
            assert (above, total) == (sum(1 for x in values if x > v), len(values)), v
