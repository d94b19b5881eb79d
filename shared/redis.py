"""One Redis client per process, with namespaced keys."""
from __future__ import annotations

import redis.asyncio as aioredis


def create_redis(url: str) -> aioredis.Redis:
    # Short timeouts: Redis is a cache and a rate-limit store; callers fall back when it is down
    # rather than hang a request.
    return aioredis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=1.0,
        socket_timeout=1.0,
        health_check_interval=30,
        max_connections=64,
    )


class Keys:
    """Builds namespaced keys: Keys("sx").tier(uid) -> "sx:tier:<uid>"."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def __call__(self, *parts: object) -> str:
        return ":".join([self.prefix, *map(str, parts)])
