"""Live notifications: `GET /notifications/stream` (server-sent events) fed by PostgreSQL LISTEN/NOTIFY.

Why LISTEN/NOTIFY rather than Redis pub/sub: the NOTIFY is issued in the transaction that creates
the notification, and PostgreSQL sends it only when that transaction commits. So a stream never
announces a notification that rolled back, and none is created without its announcement; Redis
pub/sub would be a second write after the commit that a crash in between loses. Every worker holds
one listening connection and hands each payload to the streams of that user open on it.

A stream's event id is the user's notification sequence number. A client reconnecting with
`Last-Event-ID` is sent every notification above it from the table, then live ones; a live one
that does not follow the last one sent (a listener reconnect, a full queue) makes the stream read
the gap from the table first, so nothing is missed and nothing is sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson

from community_service.repositories import notifications as repo
from shared.tasks import cancel_and_wait

log = logging.getLogger("community_service.notifications.live")

RESYNC = object()  # queued to a stream when live payloads may have been lost: read the table
QUEUE_SIZE = 256
BACKFILL_PAGE = 500


class Subscriber:
    def __init__(self, user_id: str):
        self.user_id = user_id
        self.queue: asyncio.Queue = asyncio.Queue(QUEUE_SIZE)

    def put(self, item: Any) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            # A slow client: drop what is queued and let it read the table instead.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)


class LiveHub:
    """One LISTEN connection per worker, fanning payloads out to the streams open on it (and
    telling the delivery worker when deliveries were queued)."""

    def __init__(self, dsn: str, *, on_delivery=None):
        self.dsn = dsn
        self.subscribers: dict[str, set[Subscriber]] = {}
        self.on_delivery = on_delivery  # deliveries were queued: wake the delivery worker
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task | None = None
        self._lost = asyncio.Event()
        self.ready = asyncio.Event()

    async def start(self) -> None:
        await self._connect()
        self._task = asyncio.create_task(self._keep_connected(), name="notifications:listen")

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        conn.add_termination_listener(lambda _c: self._lost.set())
        await conn.add_listener(repo.CHANNEL, self._on_payload)
        if self.on_delivery is not None:
            await conn.add_listener(repo.DELIVERY_CHANNEL, lambda *_: self.on_delivery())
        self._conn = conn
        self.ready.set()

    async def _keep_connected(self) -> None:
        while True:
            await self._lost.wait()
            self.ready.clear()
            log.warning("notification listener lost its connection; reconnecting")
            delay = 0.2
            while True:
                try:
                    await self._connect()
                    break
                except Exception as exc:  # whatever the cause, keep trying
                    log.warning("notification listener cannot connect", extra={"error": repr(exc)})
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
            self._lost.clear()
            # Whatever was announced meanwhile is in the table: every open stream reads its gap.
            for subs in self.subscribers.values():
                for sub in subs:
                    sub.put(RESYNC)

    def _on_payload(self, _conn, _pid, _channel, payload: str) -> None:
        user_id, _, body = payload.partition("\t")
        subs = self.subscribers.get(user_id)
        if subs:
            item = int(body) if body.isdigit() else orjson.loads(body)
            for sub in subs:
                sub.put(item)

    def subscribe(self, user_id: str) -> Subscriber:
        sub = Subscriber(user_id)
        self.subscribers.setdefault(user_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        subs = self.subscribers.get(sub.user_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self.subscribers[sub.user_id]

    @property
    def open_streams(self) -> int:
        return sum(len(s) for s in self.subscribers.values())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        if self._conn is not None and not self._conn.is_closed():
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)


def frame(item: dict) -> bytes:
    return b"id: %d\nevent: notification\ndata: %s\n\n" % (item["seq"], orjson.dumps(item))


async def stream(
    pool, hub: LiveHub, user_id: str, last_event_id: int | None, *, heartbeat: float, max_seconds: float
) -> AsyncIterator[bytes]:
    """The frames of one stream: missed ones (after `last_event_id`), then live ones. Without
    `last_event_id`, only what is created from now on. It ends after `max_seconds` (proxies cut long
    responses anyway); the client reconnects with Last-Event-ID and misses nothing."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_seconds
    sub = hub.subscribe(user_id)  # before reading the table: nothing falls between the two
    try:
        async with pool.acquire() as conn:
            newest = await repo.last_seq(conn, user_id)
        # An id beyond the newest (not one this stream gave) would hide what comes next: clamped.
        sent = newest if last_event_id is None else min(last_event_id, newest)
        # The starting point is fixed before the client hears anything, and given as an id-only
        # event (it sets EventSource's lastEventId), so a reconnect before any frame misses nothing.
        yield b"retry: 3000\nid: %d\n\n" % sent
        if last_event_id is not None:
            async for chunk, seq in _backfill(pool, user_id, sent):
                sent = seq
                yield chunk
        while (left := deadline - loop.time()) > 0:
            try:
                item = await asyncio.wait_for(sub.queue.get(), min(heartbeat, left))
            except TimeoutError:
                if deadline - loop.time() > 0:
                    yield b": keep-alive\n\n"
                continue
            if item is RESYNC or isinstance(item, int) or item["seq"] != sent + 1:
                if item is not RESYNC and (item if isinstance(item, int) else item["seq"]) <= sent:
                    continue
                async for chunk, seq in _backfill(pool, user_id, sent):
                    sent = seq
                    yield chunk
                continue
            sent = item["seq"]
            yield frame(item)
    finally:
        hub.unsubscribe(sub)


async def _backfill(pool, user_id: str, sent: int) -> AsyncIterator[tuple[bytes, int]]:
    while True:
        async with pool.acquire() as conn:
            rows = await repo.after(conn, user_id, sent, BACKFILL_PAGE)
        for row in rows:
            sent = row["seq"]
            yield frame(repo.as_dict(row)), sent
        if len(rows) < BACKFILL_PAGE:
            return
