"""One Redis client per process, with namespaced keys."""
from __future__ import annotations

import redis.asyncio as aioredis


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
