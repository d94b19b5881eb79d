"""Rate limits kept in Redis, so they hold across every instance of a service.

A fixed window per (scope, identity): one atomic Lua call increments the counter and sets its
expiry, so two instances never both admit the 101st request. Identity is the user id when the
request carries a valid token, the client address otherwise. When Redis is unreachable the
limiter lets requests through and logs it: rate limits protect capacity, they do not guard
money (quotas do that, in PostgreSQL).
"""
from __future__ import annotations

import logging
import time

from fastapi import Request
from redis.exceptions import RedisError

from shared.auth import authenticate
from shared.errors import APIError

log = logging.getLogger("shared.ratelimit")

_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


class RateLimit:
    """FastAPI dependency: `Depends(RateLimit(10, 60, scope="otp"))`.

    limit=None takes the service default (RATE_LIMIT_PER_MINUTE per 60 s).
    """

    def __init__(self, limit: int | None = None, window_seconds: int = 60, scope: str = "default"):
        self.limit = limit
        self.window_ms = window_seconds * 1000
        self.scope = scope

    async def __call__(self, request: Request) -> None:
        state = request.app.state
        limit = self.limit if self.limit is not None else state.settings.rate_limit_per_minute
        if limit <= 0:
            return
        user = await authenticate(request)
        identity = f"u:{user.user_id}" if user else f"ip:{request.client.host if request.client else 'unknown'}"
        window = int(time.time() * 1000) // self.window_ms
        key = state.keys("rl", self.scope, identity, window)
        try:
            count, ttl_ms = await state.redis.eval(_SCRIPT, 1, key, self.window_ms)
        except (RedisError, OSError) as exc:
            log.warning("rate limit skipped: redis unavailable", extra={"error": str(exc), "scope": self.scope})
            return
        if int(count) > limit:
            retry_after = max(1, -(-int(ttl_ms) // 1000))
            raise APIError(
                429,
                "RATE_LIMITED",
                f"Too many requests: the limit is {limit} per {self.window_ms // 1000} s.",
                headers={"Retry-After": str(retry_after)},
                retry_after=retry_after,
                limit=limit,
            )


default_rate_limit = RateLimit()
