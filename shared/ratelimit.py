"""Rate limits kept in Redis, so they hold across every instance of a service.

A fixed window per (scope, identity). An instance takes a small lease of the window's budget
from Redis in one atomic Lua call (INCRBY + expiry) and spends it locally, so most requests
cost no Redis round trip. The leases handed out never add up to more than the limit, so all
instances together never admit more than `limit` requests a window; the price is that near
the end of a window an instance may refuse while another still holds a few unspent leased
requests (at most limit/20, capped at 10, per instance). Limits of 20 or less are exact
(one Redis call per request). Concurrent requests of one identity share one Redis call, and the
lease fetches of different identities asked for in one event-loop turn go out together as one
script call (one round trip; each key still one atomic INCRBY, so no bound above changes).

The service-wide default (RATE_LIMIT_PER_MINUTE, every route but health and docs) is checked
by the app factory's request middleware; stricter per-route limits are dependencies:
`Depends(RateLimit(5, 60, scope="otp"))`.

Identity is the user id when the request carries a valid token, the client address otherwise.
When Redis is unreachable the limiter lets requests through and logs it: rate limits protect
capacity, they do not guard money (quotas do that, in PostgreSQL).
"""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import Request
from redis.exceptions import RedisError

from shared import errors
from shared.auth import authenticate
from shared.errors import APIError

log = logging.getLogger("shared.ratelimit")

# One call takes the leases of every (key, window, lease) triple given: KEYS = the counters,
# ARGV = window_ms, lease per key; answers count, ttl_ms per key. Batching the leases wanted in
# one event-loop turn into one call (_LeaseBatcher) gives each concurrent request a share of one
# round trip instead of its own; each key is still one atomic INCRBY, as before.
_SCRIPT = """
local out = {}
for i, key in ipairs(KEYS) do
  local window_ms = ARGV[2 * i - 1]
  local lease = tonumber(ARGV[2 * i])
  local count = redis.call('INCRBY', key, lease)
  if count == lease then
    redis.call('PEXPIRE', key, window_ms)
  end
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    redis.call('PEXPIRE', key, window_ms)
    ttl = tonumber(window_ms)
  end
  out[2 * i - 1] = count
  out[2 * i] = ttl
end
return out
"""
MAX_LEASE = 10
UNLIMITED_PATHS = ("/health", "/docs", "/openapi.json", "/redoc")


class _Window:
    """This instance's unspent leases for one scope's current window (older windows dropped)."""

    __slots__ = ("index", "leases", "inflight")

    def __init__(self, index: int):
        self.index = index
        self.leases: dict[str, int] = {}
        # identity -> the Redis call in flight for it; concurrent requests of that identity wait
        # for it and share its lease instead of each calling Redis.
        self.inflight: dict[str, asyncio.Future] = {}


class _LeaseBatcher:
    """The lease fetches asked for within one event-loop turn, sent to Redis as one script call.

    Under load many requests reach the limiter in the same turn (a burst read from many
    connections); each used to pay a whole Redis round trip of its own (command packing, a
    socket write, a read, a wake-up). A caller waits no longer than before: the call goes out on
    the very next loop turn."""

    def __init__(self, redis):
        self.script = redis.register_script(_SCRIPT)
        self.pending: list[tuple[str, int, int, asyncio.Future]] = []

    def lease(self, key: str, window_ms: int, lease: int) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        self.pending.append((key, window_ms, lease, answer))
        if len(self.pending) == 1:
            loop.call_soon(self._send)
        return answer

    def _send(self) -> None:
        batch, self.pending = self.pending, []
        task = asyncio.ensure_future(self._call(batch))
        _in_flight.add(task)
        task.add_done_callback(_in_flight.discard)

    async def _call(self, batch: list[tuple[str, int, int, asyncio.Future]]) -> None:
        args: list[int] = []
        for _, window_ms, lease, _ in batch:
            args += (window_ms, lease)
        try:
            flat = await self.script(keys=[key for key, *_ in batch], args=args)
        except BaseException as exc:  # every waiter gets the failure (RedisError: fail open)
            for *_, answer in batch:
                if not answer.done():
                    answer.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for i, (*_, answer) in enumerate(batch):
            if not answer.done():
                answer.set_result((flat[2 * i], flat[2 * i + 1]))


_in_flight: set[asyncio.Task] = set()  # strong references: a pending task is not collected


def _batcher(state) -> _LeaseBatcher:
    batcher = getattr(state, "rate_lease_batcher", None)
    if batcher is None or batcher.script.registered_client is not state.redis:
        batcher = state.rate_lease_batcher = _LeaseBatcher(state.redis)
    return batcher


def _window(state, scope: str, index: int) -> _Window:
    windows = getattr(state, "rate_windows", None)
    if windows is None:
        windows = state.rate_windows = {}
    window = windows.get(scope)
    if window is None or window.index != index:
        window = windows[scope] = _Window(index)
    return window


async def check_rate(state, scope: str, identity: str, limit: int, window_seconds: int = 60) -> APIError | None:
    """None when the request may go ahead, the 429 error otherwise."""
    if limit <= 0:
        return None
    window_ms = window_seconds * 1000
    index = int(time.time() * 1000) // window_ms
    window = _window(state, scope, index)
    while True:
        if window.leases.get(identity, 0) > 0:
            window.leases[identity] -= 1
            return None
        pending = window.inflight.get(identity)
        if pending is None:
            break
        outcome = await asyncio.shield(pending)
        if isinstance(outcome, APIError):
            return outcome  # the window is spent: every waiter gets the same answer
        if outcome == "redis-down":
            return None
    # This request fetches the next lease. A bigger one only for an identity already seen in this
    # window on this instance, so one-off callers strand nothing.
    hot = identity in window.leases
    lease = min(MAX_LEASE, limit // 20) if hot and limit > 20 else 1
    fetch: asyncio.Future = asyncio.get_running_loop().create_future()
    window.inflight[identity] = fetch
    outcome: APIError | str | None = None
    try:
        count, ttl_ms = await _batcher(state).lease(state.keys("rl", scope, identity, index), window_ms, lease)
        granted = min(lease, limit - (int(count) - lease))
        if granted > 0:
            window.leases[identity] = window.leases.get(identity, 0) + granted - 1  # this request takes one
        else:
            retry_after = max(1, -(-int(ttl_ms) // 1000))
            outcome = errors.RATE_LIMITED(
                f"Too many requests: the limit is {limit} per {window_seconds} s.",
                headers={"Retry-After": str(retry_after)},
                retry_after=retry_after,
                limit=limit,
            )
    except (RedisError, OSError) as exc:
        log.warning("rate limit skipped: redis unavailable", extra={"error": str(exc), "scope": scope})
        outcome = "redis-down"
    finally:
        window.inflight.pop(identity, None)
        fetch.set_result(outcome)
    return outcome if isinstance(outcome, APIError) else None


async def identity_of(request: Request) -> str:
    try:
        user = await authenticate(request)
    except APIError:
        user = None  # a bad token is the route's 401 to give; limit it by address meanwhile
    if user is not None:
        return f"u:{user.user_id}"
    return f"ip:{request.client.host if request.client else 'unknown'}"


class RateLimit:
    """A per-route limit, as a dependency."""

    def __init__(self, limit: int, window_seconds: int = 60, scope: str = "route"):
        self.limit = limit
        self.window_seconds = window_seconds
        self.scope = scope

    async def __call__(self, request: Request) -> None:
        error = await check_rate(
            request.app.state, self.scope, await identity_of(request), self.limit, self.window_seconds
        )
        if error is not None:
            raise error


class DefaultRateLimit:
    """The service-wide limit, RATE_LIMIT_PER_MINUTE per identity, on every route but health/docs.

    Checked by the app factory's request middleware (one ASGI layer for request id, access log,
    body limit and this), before routing."""

    def __init__(self, exempt_paths: tuple[str, ...] = ()):
        # Path prefixes outside the per-client limit: e.g. provider webhooks, authenticated per
        # event and delivered in bursts from a few addresses (a 429 only delays money events).
        self.unlimited = UNLIMITED_PATHS + tuple(exempt_paths)

    async def check(self, scope) -> APIError | None:
        if scope["path"].startswith(self.unlimited) or scope["method"] == "OPTIONS":
            return None
        state = scope["app"].state
        return await check_rate(
            state, "default", await identity_of(Request(scope)), state.settings.rate_limit_per_minute
        )
