"""What happens after a tier-changing transaction commits: every service sees the new tier on the
user's very next request (Redis tier cache), and the quota cache is dropped; an upgrade (a higher
tier: subscription.created or .upgraded) is captured for PostHog (shared/engagement.py: queued, sent
from the SDK's thread, never waited on).

Both in one Redis round trip (a pipeline, no MULTI): the same writes as shared.tiers.set_cached_tier
and QuotaClient.drop_cache, with the same fallback: a write that fails while Redis is away is
remembered and replayed before this process's next use of the cache (shared.redis)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from redis.exceptions import RedisError

from shared.redis import pending_writes, replay_pending
from shared.tiers import TIER_CACHE_TTL_SECONDS

log = logging.getLogger("payment.webhooks")

# What PostHog gets with an upgrade: tiers and why, nothing about the payment itself.
UPGRADE_KEYS = ("tier", "tier_name", "previous_tier", "status", "reason")


async def after_commit(state, applied: Iterable) -> None:
    """`state`: the app's state (redis, keys, engagement); `applied`: the ledger's Applied changes."""
    users = {}
    engagement = getattr(state, "engagement", None)
    for a in applied:
        if a is not None:
            users[a.user_id] = a.tier
            if engagement is not None and a.emitted is not None and a.tier > a.previous_tier:
                engagement.capture(a.emitted, UPGRADE_KEYS)
    if not users:
        return
    redis, keys = state.redis, state.keys
    tiers = {keys("tier", user_id): int(tier) for user_id, tier in users.items()}
    quota_keys = [keys("quota", user_id) for user_id in users]
    pending = pending_writes(redis)
    try:
        await replay_pending(redis)
        async with redis.pipeline(transaction=False) as pipe:
            for key, tier in tiers.items():
                pipe.set(key, tier, ex=TIER_CACHE_TTL_SECONDS)
            pipe.delete(*quota_keys)
            await pipe.execute()
        for key in (*tiers, *quota_keys):
            pending.forget(key)
    except (RedisError, OSError) as exc:
        for key, tier in tiers.items():
            pending.remember_set(key, tier, TIER_CACHE_TTL_SECONDS)
        for key in quota_keys:
            pending.remember_delete(key)
        log.warning(
            "tier and quota caches not updated: redis unavailable; will replay",
            extra={"users": list(users), "error": repr(exc)},
        )
