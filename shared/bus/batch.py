"""A consumer that applies many messages in one transaction, for a service that sees every event.

`Consumer` runs one transaction per message: right for a handful of event types, too slow for a
consumer bound to `#` that must keep up with the whole fleet. `BatchConsumer` collects what the
broker delivers (up to `batch_size`, or what arrived within `max_wait_ms` of the first), records
the event ids in `processed_events` with one statement and hands the events seen for the first
time to `handle_batch(conn, events, state)` in that same transaction. So a redelivered event is
applied once, exactly as with `Consumer`.

While a batch's transaction runs, the next batch is parsed (and, when the handler has a
`prepare(events, prepared)` method, its CPU work done: see `Ingestor.prepare` in analytics) in
small chunks between the transaction's round trips: the consumer's Python work overlaps
PostgreSQL's instead of adding to it. Transactions and acknowledgements stay one batch at a
time, in delivery order.

If a batch fails, its events are applied one by one (each in its own transaction), so one bad
event cannot hold back the others; a failing single event takes `Consumer`'s path: retry through
the delay queues, then the dead-letter queue. Batches run one at a time, in delivery order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from pydantic import ValidationError

from shared import tombstones
from shared.bus.amqp import AMQPChannel
from shared.bus.consumer import ATTEMPT_HEADER, Consumer, EventHandlers, erase_from_outbox
from shared.events import Event
from shared.tasks import cancel_and_wait

log = logging.getLogger("shared.bus.batch")

BatchHandler = Callable[[asyncpg.Connection, list[Event], Any], Awaitable[None]]
Item = tuple[AMQPChannel, int, Any, bytes]
# Messages parsed (and prepared) between two yields to the event loop while a transaction runs:
# small enough that the transaction's next statement waits at most a few milliseconds.
PREPARE_CHUNK = 50

_RECORD = """
    INSERT INTO processed_events (consumer, event_id, event_type)
    SELECT $1, id, t FROM unnest($2::uuid[], $3::text[]) AS u(id, t)
    ON CONFLICT DO NOTHING
    RETURNING event_id::text
"""


class BatchConsumer(Consumer):
    def __init__(
        self,
        *,
        url: str,
        exchange: str,
        queue: str,
        pool: asyncpg.Pool,
        handle_batch: BatchHandler,
        bindings: list[str],
        state: Any = None,
        batch_size: int = 500,
        max_wait_ms: float = 20.0,
        prefetch: int | None = None,
        max_attempts: int = 5,
        retry_delays_ms: list[int] | None = None,
    ):
        super().__init__(
            url=url,
            exchange=exchange,
            queue=queue,
            pool=pool,
            handlers=EventHandlers(),
            bindings=bindings,
            # Twice a batch in flight: the broker keeps delivering the next batch while one is applied.
            prefetch=prefetch or 2 * batch_size,
            max_attempts=max_attempts,
            retry_delays_ms=retry_delays_ms,
        )
        self.handle_batch = handle_batch
        self.state = state
        self.batch_size = max(1, batch_size)
        self.max_wait = max(0.0, max_wait_ms) / 1000
        self.batches = 0
        self._pending: list[tuple[AMQPChannel, int, Any, bytes]] = []
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        # Channels on which a message took the one-by-one path (parked, retried, or left unacked
        # when that failed): from then on they are acked one by one, since a multiple ack would
        # also acknowledge a message left with the broker on purpose.
        self._withheld: set[int] = set()
        self._worker: asyncio.Task | None = None

    def start(self) -> None:
        self._worker = asyncio.create_task(self._work(), name=f"batch-consumer:{self.queue}")
        super().start()

    def _on_message(self, ch: AMQPChannel, method, properties, body) -> None:
        self._pending.append((ch, method.delivery_tag, properties, body))
        self._idle.clear()
        self._arrived.set()
        if len(self._pending) >= self.batch_size:
            self._full.set()

    async def _work(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            if 0 < len(self._pending) < self.batch_size and self.max_wait:
                self._full.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.max_wait)
            upcoming: asyncio.Task | None = None
            while self._pending or upcoming is not None:
                try:
                    if upcoming is None:
                        current = await self._prepare(self._take())
                    else:
                        prepared, upcoming = upcoming, None
                        current = await prepared
                    if self._pending:
                        # Parsed and prepared while this batch's transaction waits on PostgreSQL.
                        upcoming = asyncio.create_task(self._prepare(self._take()))
                    await self._apply_prepared(*current)
                except asyncio.CancelledError:
                    if upcoming is not None:
                        upcoming.cancel()
                    raise
                except Exception:
                    # Unacked messages are redelivered when the channel closes; keep the worker alive.
                    log.exception("batch processing failed unexpectedly", extra={"queue": self.queue})
            self._idle.set()

    def _take(self) -> list[Item]:
        batch = self._pending[: self.batch_size]
        del self._pending[: self.batch_size]
        return batch

    async def _prepare(self, batch: list[Item]) -> tuple[list[tuple[Item, Event]], bool, Any]:
        """Parse the batch (unparseable messages are parked at once) and let the handler do its
        CPU work, a chunk at a time, yielding to the event loop between chunks."""
        parsed: list[tuple[Item, Event]] = []
        clean = True
        prepare = getattr(self.handle_batch, "prepare", None)
        prepared = None
        for start in range(0, len(batch), PREPARE_CHUNK):
            chunk: list[Event] = []
            for item in batch[start : start + PREPARE_CHUNK]:
                ch, tag, properties, body = item
                try:
                    # pydantic's own JSON parser: a third less than orjson + model_validate here.
                    event = Event.model_validate_json(body)
                except (ValidationError, ValueError) as exc:
                    clean = False
                    self._withheld.add(id(ch))
                    log.error(
                        "unparseable message parked in the dead-letter queue",
                        extra={"queue": self.queue, "error": str(exc)[:500]},
                    )
                    headers = dict(properties.headers or {})
                    await self._park(ch, tag, body, properties, headers, f"unparseable: {exc}"[:1000])
                    continue
                parsed.append((item, event))
                chunk.append(event)
            if prepare is not None and chunk:
                prepared = prepare(chunk, prepared)
            await asyncio.sleep(0)
        return parsed, clean, prepared

    async def _apply_prepared(self, parsed: list[tuple[Item, Event]], clean: bool, prepared: Any) -> None:
        if not parsed:
            return
        try:
            applied = await self._apply_events([event for _, event in parsed], prepared)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "batch failed; applying its events one by one",
                extra={"queue": self.queue, "size": len(parsed), "error": f"{type(exc).__name__}: {exc}"[:500]},
            )
            for item, event in parsed:
                await self._process_one(item, event)
            return
        self.batches += 1
        self.handled += applied
        self.duplicates += len(parsed) - applied
        self._ack_all([item for item, _ in parsed], multiple=clean)

    async def _apply_events(self, events: list[Event], prepared: Any = None) -> int:
        """Record and apply the events in one transaction; the number seen for the first time.
        `prepared`: what the handler's `prepare` made of these events (it checks that they are
        the ones it gets, redeliveries filtered out, and otherwise starts again)."""
        unique: dict[str, Event] = {}
        for event in sorted(events, key=lambda e: e.event_id):
            # in id order: two consumers handed the same events (a redelivery) lock them alike
            unique.setdefault(event.event_id, event)
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_RECORD, self.queue, list(unique), [e.event_type for e in unique.values()])
            first_time = {r[0] for r in rows}
            fresh = [e for e in unique.values() if e.event_id in first_time]
            for event in fresh:
                tombstones.note_deleted(self.state, event)
            if fresh and prepared is not None:
                await self.handle_batch(conn, fresh, self.state, prepared=prepared)
            elif fresh:
                await self.handle_batch(conn, fresh, self.state)
            for event in fresh:
                await erase_from_outbox(conn, event)
            return len(fresh)

    async def _process_one(self, item: tuple[AMQPChannel, int, Any, bytes], event: Event) -> None:
        ch, tag, properties, body = item
        headers = dict(properties.headers or {})
        attempt = int(headers.get(ATTEMPT_HEADER, 1))
        try:
            applied = await self._apply_events([event])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:1000]
            extra = {"event_type": event.event_type, "event_id": event.event_id, "attempt": attempt, "error": error}
            self._withheld.add(id(ch))
            if attempt >= self.max_attempts:
                log.error("event failed too often; parked in the dead-letter queue", extra=extra)
                await self._park(ch, tag, body, properties, headers, error)
            else:
                queue, delay = self.retry_queue(attempt)
                log.warning("event handler failed; will retry", extra={**extra, "retry_in_ms": delay})
                try:
                    await ch.publish(
                        "",
                        queue,
                        body,
                        message_id=properties.message_id,
                        mandatory=False,
                        headers={**headers, ATTEMPT_HEADER: attempt + 1, "x-last-error": error},
                    )
                except Exception as publish_error:
                    # Not safely copied: left unacked, the broker redelivers it after a reconnect.
                    log.warning(
                        "could not schedule a retry; message stays with the broker",
                        extra={"error": repr(publish_error)},
                    )
                    return
                self._ack(ch, tag)
            return
        if applied:
            self.handled += 1
        else:
            self.duplicates += 1
        self._ack(ch, tag)

    def _ack_all(self, items: list[tuple[AMQPChannel, int, Any, bytes]], *, multiple: bool) -> None:
        by_channel: dict[int, tuple[AMQPChannel, list[int]]] = {}
        for ch, tag, _, _ in items:
            by_channel.setdefault(id(ch), (ch, []))[1].append(tag)
        for key, (ch, tags) in by_channel.items():
            if not ch.is_open:
                continue  # the broker redelivers them; processed_events makes that harmless
            if multiple and key not in self._withheld:
                # Batches run in delivery order and everything before this batch is settled,
                # so one frame acknowledges the whole batch.
                ch.channel.basic_ack(max(tags), multiple=True)
            else:
                for tag in tags:
                    ch.channel.basic_ack(tag)

    async def stop(self, grace_seconds: float = 10.0) -> None:
        self._stopping = True
        ch = self._channel
        if ch is not None and ch.is_open:
            with contextlib.suppress(Exception):
                ch.channel.basic_cancel(self._consumer_tag)
        try:
            await asyncio.wait_for(self._idle.wait(), grace_seconds)
        except TimeoutError:
            log.warning("batch consumer stopped with messages still pending", extra={"pending": len(self._pending)})
        await cancel_and_wait(self._worker)
        await super().stop(grace_seconds=0.1)
