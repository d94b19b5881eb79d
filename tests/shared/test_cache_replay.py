"""Cache writes that fail while Redis is unreachable are replayed when it answers again, so a
value cached before the outage is not served for the rest of its TTL."""

import uuid

import pytest

from shared.auth import CurrentUser
from shared.redis import Keys, create_redis
from shared.testing.proxy import TcpProxy
from shared.tiers import TierResolver, set_cached_tier

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_tier_written_during_an_outage_wins_after_it(infra, run_id):
    proxy = await TcpProxy("127.0.0.1", 6379).start()
    redis = create_redis(f"redis://127.0.0.1:{proxy.port}/0")
    keys = Keys(f"{run_id}-replay")
    uid = str(uuid.uuid4())
    user = CurrentUser(user_id=uid, email=None, role="authenticated", tier=0, claims={})
    resolver = TierResolver(redis, keys, core_pool=None)
    try:
        assert await set_cached_tier(redis, keys, uid, 0)
        assert await resolver(user) == 0
        proxy.cut()
        assert await set_cached_tier(redis, keys, uid, 1) is False  # the upgrade, during the outage
        assert await resolver(user) == 0  # Redis down: the token's claim (no database here)
        proxy.restore()
        assert await resolver(user) == 1  # replayed before reading: not the stale 0
        direct = create_redis(infra.redis_url)
        assert await direct.get(keys("tier", uid)) == "1"
        await direct.aclose()
    finally:
        await redis.aclose()
        await proxy.close()


async def test_a_newer_write_is_not_overwritten_by_an_older_remembered_one(infra, run_id):
    proxy = await TcpProxy("127.0.0.1", 6379).start()
    redis = create_redis(f"redis://127.0.0.1:{proxy.port}/0")
    keys = Keys(f"{run_id}-replay2")
    uid = str(uuid.uuid4())
    try:
        proxy.cut()
        assert await set_cached_tier(redis, keys, uid, 2) is False
        proxy.restore()
        assert await set_cached_tier(redis, keys, uid, 1)  # replays 2, then writes the newer 1
        assert await redis.get(keys("tier", uid)) == "1"
    finally:
        await redis.aclose()
        await proxy.close()
