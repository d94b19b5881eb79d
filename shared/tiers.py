"""Tiers and what each one allows, plus the per-request tier resolver every service uses.

A tier change must take effect on the user's next request, not when the token expires. Payment
writes the user's current tier into Redis (`keys("tier", user_id)`) the moment a webhook changes
it; `TierResolver` reads that key, falls back to the core database's `effective_tier(user_id)`
(the highest active tier across Stripe and RevenueCat, defined by Payment's migrations) and caches
the answer, and falls back to the token's own claim when neither answers.

    app.state.tier_resolver = TierResolver(app.state.redis, app.state.keys, app.state.core_db)

`shared.auth.requires_tier` / `resolve_tier` pick it up from `app.state.tier_resolver`.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from shared.auth import TIER_FREE, TIER_MAX, TIER_NAMES, TIER_PRO, CurrentUser
from shared.redis import pending_writes, replay_pending

log = logging.getLogger("shared.tiers")

TIER_CACHE_TTL_SECONDS = 300

# The quota types every service reserves against (the plan's list).
QUOTA_TYPES: tuple[str, ...] = ("regular", "premium", "image_gen", "image_recognition", "video", "story")
UNLIMITED = -1

# What each tier allows per period (-1 = unlimited). Free resets daily (UTC midnight), paid tiers at
# each paid invoice. Payment's migration seeds the same numbers into `tier_quotas` (a test checks
# that both agree). Free/Pro/Max regular, premium and image_gen come from ARCHITECTURE.md;
# image_recognition from the plan's TIER_QUOTAS; video (minutes) and story are our decision,
# written down in docs/payment.md.
TIER_QUOTAS: dict[int, dict[str, int]] = {
    TIER_FREE: {"regular": 5, "premium": 0, "image_gen": 0, "image_recognition": 0, "video": 0, "story": 1},
    TIER_PRO: {"regular": -1, "premium": 100, "image_gen": 5, "image_recognition": 10, "video": 30, "story": 20},
    TIER_MAX: {"regular": -1, "premium": -1, "image_gen": -1, "image_recognition": -1, "video": -1, "story": -1},
}

# Prices in cents, USD, per month (what /plans shows; Stripe's prices are the ones charged).
TIER_PRICES_CENTS: dict[int, int] = {TIER_FREE: 0, TIER_PRO: 999, TIER_MAX: 1999}
TIER_CONTEXT_TOKENS: dict[int, int] = {TIER_FREE: 12_000, TIER_PRO: 64_000, TIER_MAX: 64_000}
# Referral bonus, in `regular` credits that never reset: Auth announces it (referral.completed,
# GET /referrals/me) and Payment grants it, both from these two numbers.
REFERRAL_BONUS_REFERRER = 10
REFERRAL_BONUS_REFERRED = 5

# The one name <-> number map is shared.auth.TIER_NAMES (tokens carry it); everything else derives.
TIER_BY_NAME: dict[str, int] = {name: tier for tier, name in TIER_NAMES.items()}


def tier_name(tier: int) -> str:
    return TIER_NAMES.get(tier, "free")


def parse_tier(value: Any) -> int | None:
    """A tier given by name ("pro", " Max ") or number (2, "2"); None when it is neither a known
    name nor a number within the tiers."""
    if isinstance(value, str):
        name = value.strip().lower()
        if name in TIER_BY_NAME:
            return TIER_BY_NAME[name]
        value = name
    if isinstance(value, bool):
        return None
    try:
        tier = int(value)
    except (TypeError, ValueError):
        return None
    return tier if TIER_FREE <= tier <= TIER_MAX else None


def clamp_tier(value: Any) -> int:
    try:
        return max(TIER_FREE, min(TIER_MAX, int(value)))
    except (TypeError, ValueError):
        return TIER_FREE


def _tier_key(keys, user_id: str) -> str:
    return keys("tier", user_id)


async def set_cached_tier(redis, keys, user_id: str, tier: int, ttl_seconds: int = TIER_CACHE_TTL_SECONDS) -> bool:
    """Write the user's current tier to the cache every service reads. False when Redis is down;
    the write is then replayed as soon as Redis answers this process again (shared.redis)."""
    key = _tier_key(keys, user_id)
    pending = pending_writes(redis)
    try:
        await replay_pending(redis)
        await redis.set(key, int(tier), ex=ttl_seconds)
        pending.forget(key)
        return True
    except (RedisError, OSError) as exc:
        pending.remember_set(key, int(tier), ttl_seconds)
        log.warning(
            "tier cache not updated: redis unavailable; will replay", extra={"user_id": user_id, "error": repr(exc)}
        )
        return False


async def drop_cached_tier(redis, keys, user_id: str) -> bool:
    key = _tier_key(keys, user_id)
    pending = pending_writes(redis)
    try:
        await replay_pending(redis)
        await redis.delete(key)
        pending.forget(key)
        return True
    except (RedisError, OSError) as exc:
        pending.remember_delete(key)
        log.warning(
            "tier cache not dropped: redis unavailable; will replay", extra={"user_id": user_id, "error": repr(exc)}
        )
        return False


_DB_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class TierResolver:
    """`await resolver(user) -> tier`: Redis, then `SELECT effective_tier($1)`, then the token."""

    def __init__(self, redis, keys, core_pool, ttl_seconds: int = TIER_CACHE_TTL_SECONDS):
        self.redis = redis
        self.keys = keys
        self.core_pool = core_pool
        self.ttl = ttl_seconds

    async def __call__(self, user: CurrentUser) -> int:
        return (await self.with_cached(user))[0]

    async def with_cached(self, user: CurrentUser, *other_keys: str) -> tuple[int, list[bytes | None]]:
        """The tier, and other cached values of this user read in the same Redis round trip
        (one MGET instead of a GET each); a value is None on a miss or while Redis is away."""
        others: list[bytes | None] = [None] * len(other_keys)
        if user.is_service:
            return user.tier, others
        key = _tier_key(self.keys, user.user_id)
        redis_ok = self.redis is not None
        if redis_ok:
            try:
                await replay_pending(self.redis)  # writes that failed during an outage come first
                cached, *others = await self.redis.mget(key, *other_keys)
                if cached is not None:
                    return clamp_tier(cached), others
            except (RedisError, OSError) as exc:
                redis_ok = False
                log.warning("tier cache unavailable; asking the database", extra={"error": repr(exc)})
        if self.core_pool is None:
            return user.tier, others
        try:
            tier = await self.core_pool.fetchval("SELECT effective_tier($1::uuid)", user.user_id)
        except _DB_ERRORS as exc:
            log.warning(
                "tier unavailable; using the token's claim", extra={"user_id": user.user_id, "error": repr(exc)}
            )
            return user.tier, others
        except (ValueError, TypeError):
            return user.tier, others  # not a uuid subject: nothing in the database can know it
        tier = clamp_tier(tier)
        if redis_ok:
            try:
                # NX: never overwrite a fresher value Payment wrote meanwhile.
                await self.redis.set(key, tier, ex=self.ttl, nx=True)
            except (RedisError, OSError):
                pass
        return tier, others


__all__ = [
    "QUOTA_TYPES",
    "TIER_QUOTAS",
    "TIER_PRICES_CENTS",
    "TIER_CONTEXT_TOKENS",
    "TIER_BY_NAME",
    "TIER_FREE",
    "TIER_PRO",
    "TIER_MAX",
    "TIER_NAMES",
    "UNLIMITED",
    "REFERRAL_BONUS_REFERRER",
    "REFERRAL_BONUS_REFERRED",
    "TierResolver",
    "set_cached_tier",
    "drop_cached_tier",
    "tier_name",
    "parse_tier",
    "clamp_tier",
]
