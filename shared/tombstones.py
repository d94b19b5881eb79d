"""Tombstones: the users deleted recently enough that one of their access tokens may still be valid.

An access token is stateless: after `DELETE /users/me` it stays valid until it expires, and a
service accepting it would re-create data the deletion erased. Every process keeps the deleted
user ids in memory (`user_id in tombstones`: a dict lookup, no database or Redis per request) and
`shared.auth.authenticate` refuses their tokens with 401 `USER_DELETED`.

Kept fresh by three means, so a process that missed one still converges:
- live: a per-process queue (exclusive, auto-delete: it dies with the connection) bound to
  `user.deleted`, so every worker of every service hears every deletion; Auth also adds the id
  in its own process at once;
- seed: at start-up (and after every reconnect to RabbitMQ, which may have missed events) the
  Redis sorted set Auth writes at deletion time (`<prefix>:users:deleted`, member = user id,
  score = the epoch second until which one of the user's tokens may be valid);
- resync: the same read every `resync_seconds`, which also drops entries whose tokens expired.

Redis or RabbitMQ down at start-up: the process serves anyway (with a warning) and keeps trying.
What it may miss meanwhile is a user deleted *before* it started and within the token lifetime,
whose token then works here until the first successful sync; Auth itself checks its database, so
no refresh (and no new access token) is ever issued to a deleted user.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid

from pydantic import ValidationError

from shared.bus.amqp import AMQPChannel, ConnectionLost, declare_event_exchange
from shared.events import Event, EventType
from shared.tasks import cancel_all_and_wait

log = logging.getLogger("shared.tombstones")

# The longest access-token lifetime Auth can be configured with (ACCESS_TOKEN_TTL_SECONDS <= 1 day):
# how long a tombstone is kept when the event does not say.
DEFAULT_RETENTION_SECONDS = 86400
KEY_PARTS = ("users", "deleted")


def note_deleted(state, event: Event) -> None:
    """The service's own durable consumer got `user.deleted`: refuse the user's tokens in this
    process before erasing, so nothing can be re-created between the erasure and the listener."""
    tombstones = getattr(state, "tombstones", None)
    if tombstones is not None:
        tombstones.add_event(event)


def names_deleted_user(state, event: Event) -> bool:
    """An event about a user whose deletion this process already knows (published before the
    deletion but delivered after it, or emitted while erasing them): applying it would re-create
    what the erasure removed."""
    tombstones = getattr(state, "tombstones", None)
    return (
        tombstones is not None
        and event.event_type != EventType.USER_DELETED.value
        and event.user_id is not None
        and event.user_id in tombstones
    )


def redis_key(keys) -> str:
    return keys(*KEY_PARTS)


async def record_deletion(redis, key: str, user_id: str, valid_until: float) -> None:
    """Auth, at deletion time: the user's tokens are refused fleet-wide until `valid_until`
    (what processes starting later read); entries whose tokens have all expired go."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zadd(key, {str(user_id): valid_until})
        pipe.zremrangebyscore(key, "-inf", f"({time.time()}")
        await pipe.execute()


class Tombstones:
    def __init__(
        self,
        *,
        redis,
        key: str,
        amqp_url: str,
        exchange: str,
        service: str,
        resync_seconds: float = 30.0,
        on_user_created=None,
    ):
        self.redis = redis
        self.key = key
        self.amqp_url = amqp_url
        self.exchange = exchange
        self.service = service
        self.resync_seconds = resync_seconds
        # `user.created` heard on the same per-process queue: pre-warms shared.known_users.
        self.on_user_created = on_user_created
        self._until: dict[str, float] = {}
        self._tasks: list[asyncio.Task] = []
        self._channel: AMQPChannel | None = None
        self._stopping = False
        self.seeded = False
        self.listening = asyncio.Event()
        self.queue = f"tombstones.{service}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"

    def __contains__(self, user_id: object) -> bool:
        # An entry past its time is harmless (no token of that user is valid any more) and goes
        # at the next resync; no clock read on the request path.
        return user_id in self._until

    def __len__(self) -> int:
        return len(self._until)

    def add(self, user_id: str, valid_until: float | None = None) -> None:
        until = valid_until if valid_until is not None else time.time() + DEFAULT_RETENTION_SECONDS
        if until > self._until.get(user_id, 0.0):
            self._until[user_id] = until

    async def sync(self) -> int:
        """Reads the live entries from Redis and drops the expired ones here; raises if Redis is down."""
        now = time.time()
        entries = await self.redis.zrangebyscore(self.key, f"({now}", "+inf", withscores=True)
        for member, score in entries:
            self.add(member, float(score))
        for user_id in [u for u, until in self._until.items() if until <= now]:
            del self._until[user_id]
        self.seeded = True
        return len(entries)

    async def _try_sync(self, why: str) -> None:
        try:
            await asyncio.wait_for(self.sync(), 5)
        except Exception as exc:  # Redis down: serve with what we have, the next resync retries
            log.warning(
                "deleted users not synced from redis",
                extra={"why": why, "error": repr(exc), "known": len(self._until)},
            )

    async def start(self, wait_seconds: float = 5.0) -> None:
        """Seeds from Redis, then listens; waits at most `wait_seconds` for the queue to be bound
        (RabbitMQ down: starts anyway, the listener keeps reconnecting)."""
        await self._try_sync("start-up")
        self._tasks = [
            asyncio.create_task(self._listen(), name=f"tombstones:{self.service}"),
            asyncio.create_task(self._resync_loop(), name=f"tombstones-resync:{self.service}"),
        ]
        try:
            await asyncio.wait_for(self.listening.wait(), wait_seconds)
        except TimeoutError:
            log.warning("not listening for user.deleted yet (RabbitMQ unreachable); starting anyway")

    async def _resync_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.resync_seconds)
            await self._try_sync("periodic")

    def _on_message(self, _channel, _method, _properties, body: bytes) -> None:
        try:
            event = Event.from_bytes(body)
        except (ValidationError, ValueError):
            log.warning("unparseable user.deleted ignored")
            return
        if event.event_type == EventType.USER_CREATED.value:
            if self.on_user_created is not None and event.user_id:
                self.on_user_created(str(event.user_id))
            return
        self.add_event(event)

    def add_event(self, event: Event) -> None:
        """A `user.deleted` event (anything else is ignored)."""
        if event.event_type != EventType.USER_DELETED.value or not event.user_id:
            return
        until = event.data.get("tokens_valid_until") if isinstance(event.data, dict) else None
        self.add(event.user_id, float(until) if isinstance(until, int | float) else None)

    async def _listen(self) -> None:
        backoff = 0.5
        while not self._stopping:
            ch = AMQPChannel(self.amqp_url, f"tombstones:{self.service}")
            try:
                await ch.open()
                await declare_event_exchange(ch, self.exchange)
                await ch.declare_exclusive_queue(self.queue)
                await ch.bind_queue(self.queue, self.exchange, EventType.USER_DELETED.value)
                if self.on_user_created is not None:
                    await ch.bind_queue(self.queue, self.exchange, EventType.USER_CREATED.value)
                # auto_ack: handling is one dict insert in this callback, and a message lost with
                # the connection is recovered by the sync below.
                ch.channel.basic_consume(self.queue, self._on_message, auto_ack=True)
            except (TimeoutError, ConnectionLost, OSError) as exc:
                await ch.close()
                log.warning("tombstone listener cannot connect, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(backoff)
                backoff = min(30.0, backoff * 2)
                continue
            if self._stopping:
                await ch.close()
                break
            self._channel = ch
            backoff = 0.5
            # Bound from now on; whatever was deleted while we were not is in Redis.
            await self._try_sync("listener connected")
            self.listening.set()
            reason = await ch.wait_closed()
            self.listening.clear()
            self._channel = None
            if not self._stopping:
                log.warning("tombstone listener lost its connection, reconnecting", extra={"reason": repr(reason)})
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        if self._channel is not None:
            await self._channel.close()
        await cancel_all_and_wait(self._tasks)
        self._tasks = []


__all__ = [
    "DEFAULT_RETENTION_SECONDS",
    "Tombstones",
    "names_deleted_user",
    "note_deleted",
    "record_deletion",
    "redis_key",
]
