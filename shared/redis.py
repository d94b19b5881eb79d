"""One Redis client per process, with namespaced keys."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError


def create_redis(url: str, max_connections: int = 64) -> aioredis.Redis:
    # A blocking pool: a burst of more concurrent requests than connections waits briefly for
    # a free connection instead of failing ("Too many connections"), which would make the rate
    # limiter fail open and caches miss exactly under load. Short timeouts otherwise: Redis is a
    # cache and a rate-limit store, and callers fall back when it is down rather than hang.
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=2.0,
        decode_responses=True,
        socket_connect_timeout=1.0,
        socket_timeout=1.0,
        health_check_interval=30,
    )
    return aioredis.Redis.from_pool(pool)  # owns the pool: aclose() closes it


class Keys:
    """Builds namespaced keys: Keys("sx")("tier", uid) -> "sx:tier:<uid>"."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def __call__(self, *parts: object) -> str:
        return ":".join([self.prefix, *map(str, parts)])


class PendingCacheWrites:
    """Cache writes that failed because Redis was unreachable, replayed once it answers again.

    A cache entry written before an outage survives it: if the write that should have replaced
    it (a tier change, a quota invalidation) failed during the outage, the old value would be
    served until its TTL ran out. So a failed write is remembered (the newest per key) and
    replayed before this process's next use of the cache.
    """

    def __init__(self) -> None:
        self._ops: dict[str, tuple[str, object, int | None]] = {}

    def __bool__(self) -> bool:
        return bool(self._ops)

    def remember_set(self, key: str, value: object, ttl_seconds: int | None) -> None:
        self._ops[key] = ("set", value, ttl_seconds)

    def remember_delete(self, key: str) -> None:
        self._ops[key] = ("delete", None, None)

    def forget(self, key: str) -> None:
        """A newer write for `key` went through: the remembered one must not replace it."""
        self._ops.pop(key, None)

    async def replay(self, redis: aioredis.Redis) -> bool:
        """Apply what is remembered; True when nothing is left."""
        for key, (op, value, ttl) in list(self._ops.items()):
            try:
                if op == "set":
                    await redis.set(key, value, ex=ttl)
                else:
                    await redis.delete(key)
            except (RedisError, OSError):
                return False
            if self._ops.get(key) == (op, value, ttl):
                del self._ops[key]
        return True


def pending_writes(redis: aioredis.Redis) -> PendingCacheWrites:
    """The pending writes of one Redis client (one per process)."""
    pending = getattr(redis, "_scenextras_pending", None)
    if pending is None:
        pending = PendingCacheWrites()
        redis._scenextras_pending = pending
    return pending


async def replay_pending(redis: aioredis.Redis | None) -> None:
    if redis is not None:
        pending = pending_writes(redis)
        if pending:
            await pending.replay(redis)
