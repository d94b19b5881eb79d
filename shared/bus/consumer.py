"""A service's consumer: one durable queue bound to the event types it needs.

For each message: parse; skip what this service does not handle (ack + log); otherwise run
the handler inside a database transaction that also records the event id, so a redelivered
event is applied once. A failing handler's message is republished (with confirms, before the
original is acked, so nothing is lost) to a delay queue whose TTL dead-letters it back to the
main queue; after `max_attempts` tries it is parked in `<queue>.dlq`. No nack-requeue loop:
RabbitMQ 4's quorum delivery limit does not count nacks, and a hot requeue loop starves the queue.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from pydantic import ValidationError

from shared import tombstones
from shared.bus.amqp import AMQPChannel, ConnectionLost, declare_event_exchange
from shared.bus.outbox import erase_published
from shared.events import Event, EventType
from shared.tasks import cancel_and_wait

log = logging.getLogger("shared.bus.consumer")

# `async def on_x(conn, event, state)`: the idempotency transaction's connection, the event, and the
# running app's state (its pools, Redis, clients), so handlers live at module level and need no
# reference to an app that does not exist yet when they are registered.
Handler = Callable[[asyncpg.Connection, Event, Any], Awaitable[None]]
ATTEMPT_HEADER = "x-attempt"


def _check_signature(fn: Handler) -> None:
    """A handler written for another signature fails here, at import, not on its first event."""
    try:
        inspect.signature(fn).bind(None, None, None)
    except TypeError:
        raise TypeError(f"event handler {getattr(fn, '__qualname__', fn)!r} must take (conn, event, state)") from None


async def erase_from_outbox(conn: asyncpg.Connection, event: Event) -> None:
    """`user.deleted`, in the transaction of the service's own erasure: its published outbox rows
    naming the user go too (every service consuming the event, whatever its handler does)."""
    if event.event_type == EventType.USER_DELETED.value and event.user_id:
        await erase_published(conn, event.user_id)


class EventHandlers:
    """event type -> handler(conn, event, state); handlers run in the idempotency transaction.

    A service declares one module-level `handlers = EventHandlers()` and decorates its handlers
    with `@handlers.on(EventType.X, ...)`; the app factory's consumer calls them with `app.state`."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}

    def on(self, *event_types: str):
        def register(fn: Handler) -> Handler:
            _check_signature(fn)
            for t in event_types:
                self.handlers[getattr(t, "value", t)] = fn
            return fn

        return register

    @property
    def bindings(self) -> list[str]:
        return sorted(self.handlers)


class Consumer:
    def __init__(
        self,
        *,
        url: str,
        exchange: str,
        queue: str,
        pool: asyncpg.Pool,
        handlers: EventHandlers,
        state: Any = None,
        bindings: list[str] | None = None,
        prefetch: int = 20,
        max_attempts: int = 5,
        retry_delays_ms: list[int] | None = None,
    ):
        self.url = url
        self.exchange = exchange
        self.queue = queue
        self.pool = pool
        self.handlers = handlers
        self.state = state
        self.bindings = bindings if bindings is not None else handlers.bindings
        self.prefetch = prefetch
        self.max_attempts = max(1, max_attempts)
        self.retry_delays_ms = retry_delays_ms or [1000, 5000, 30000]
        self._channel: AMQPChannel | None = None
        self._consumer_tag = ""
        self._task: asyncio.Task | None = None
        self._inflight: set[asyncio.Task] = set()
        self._stopping = False
        self.ready = asyncio.Event()
        self.handled = 0
        self.duplicates = 0
        self.dead_lettered = 0

    @property
    def dlq(self) -> str:
        return f"{self.queue}.dlq"

    def retry_queue(self, attempt: int) -> tuple[str, int]:
        delay = self.retry_delays_ms[min(attempt - 1, len(self.retry_delays_ms) - 1)]
        return f"{self.queue}.retry.{delay}ms", delay

    @property
    def connected(self) -> bool:
        return self._channel is not None and self._channel.is_open

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"consumer:{self.queue}")

    async def _declare(self, ch: AMQPChannel) -> None:
        await declare_event_exchange(ch, self.exchange)
        await ch.declare_queue(self.queue)
        for key in self.bindings:
            await ch.bind_queue(self.queue, self.exchange, key)
        await ch.declare_queue(self.dlq)
        for delay in sorted(set(self.retry_delays_ms)):
            await ch.declare_queue(
                f"{self.queue}.retry.{delay}ms",
                arguments={
                    "x-message-ttl": delay,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": self.queue,
                },
            )
        await ch.qos(self.prefetch)

    async def _run(self) -> None:
        backoff = 0.5
        while not self._stopping:
            ch = AMQPChannel(self.url, f"consumer:{self.queue}")
            try:
                await ch.open()
                await self._declare(ch)
                self._consumer_tag = ch.channel.basic_consume(
                    self.queue, lambda _c, m, p, b, ch=ch: self._on_message(ch, m, p, b), auto_ack=False
                )
            except (TimeoutError, ConnectionLost, OSError) as exc:
                await ch.close()
                log.warning(
                    "consumer cannot connect, retrying",
                    extra={"queue": self.queue, "error": repr(exc), "retry_in_s": backoff},
                )
                await asyncio.sleep(backoff)
                backoff = min(30.0, backoff * 2)
                continue
            if self._stopping:
                # stop() ran while this connection was opening (on Python 3.11, asyncio.wait_for can
                # swallow the cancellation when the open completes at the same moment): do not
                # start consuming on it, or this task waits on it forever.
                await ch.close()
                break
            self._channel = ch
            backoff = 0.5
            self.ready.set()
            log.info("consumer started", extra={"queue": self.queue, "bindings": self.bindings})
            reason = await ch.wait_closed()
            self.ready.clear()
            self._channel = None
            if not self._stopping:
                log.warning(
                    "consumer connection lost, reconnecting", extra={"queue": self.queue, "reason": repr(reason)}
                )
                await asyncio.sleep(0.2)

    def _on_message(self, ch: AMQPChannel, method, properties, body) -> None:
        # Called by pika on the loop: hand the work to a task and return at once.
        task = asyncio.get_running_loop().create_task(self._handle(ch, method, properties, body))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _handle(self, ch: AMQPChannel, method, properties, body: bytes) -> None:
        tag = method.delivery_tag
        headers = dict(properties.headers or {})
        attempt = int(headers.get(ATTEMPT_HEADER, 1))
        try:
            event = Event.from_bytes(body)
        except (ValidationError, ValueError) as exc:
            log.error(
                "unparseable message parked in the dead-letter queue",
                extra={"queue": self.queue, "error": str(exc)[:500]},
            )
            await self._park(ch, tag, body, properties, headers, f"unparseable: {exc}"[:1000])
            return
        handler = self.handlers.handlers.get(event.event_type)
        if handler is None:
            log.info(
                "event type not handled here; acknowledged",
                extra={"event_type": event.event_type, "event_id": event.event_id},
            )
            self._ack(ch, tag)
            return
        if tombstones.names_deleted_user(self.state, event):
            log.info(
                "event of a deleted user skipped",
                extra={"event_type": event.event_type, "event_id": event.event_id},
            )
            self._ack(ch, tag)
            return
        try:
            applied = await self._apply(handler, event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:1000]
            if attempt >= self.max_attempts:
                log.error(
                    "event failed too often; parked in the dead-letter queue",
                    extra={
                        "event_type": event.event_type,
                        "event_id": event.event_id,
                        "attempt": attempt,
                        "error": error,
                    },
                )
                await self._park(ch, tag, body, properties, headers, error)
            else:
                queue, delay = self.retry_queue(attempt)
                log.warning(
                    "event handler failed; will retry",
                    extra={
                        "event_type": event.event_type,
                        "event_id": event.event_id,
                        "attempt": attempt,
                        "retry_in_ms": delay,
                        "error": error,
                    },
                )
                await self._republish(
                    ch, tag, queue, body, properties, {**headers, ATTEMPT_HEADER: attempt + 1, "x-last-error": error}
                )
            return
        if applied:
            self.handled += 1
        else:
            self.duplicates += 1
        self._ack(ch, tag)

    async def _apply(self, handler: Handler, event: Event) -> bool:
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                first_time = await conn.fetchval(
                    "INSERT INTO processed_events (consumer, event_id, event_type) VALUES ($1, $2, $3)"
                    " ON CONFLICT DO NOTHING RETURNING true",
                    self.queue,
                    event.event_id,
                    event.event_type,
                )
                if not first_time:
                    log.info(
                        "duplicate event skipped", extra={"event_id": event.event_id, "event_type": event.event_type}
                    )
                    return False
                tombstones.note_deleted(self.state, event)
                await handler(conn, event, self.state)
                await erase_from_outbox(conn, event)
                return True

    def _ack(self, ch: AMQPChannel, tag: int) -> None:
        if ch.is_open:
            ch.channel.basic_ack(tag)
        # If the channel closed meanwhile, the broker redelivers; the idempotency record makes that harmless.

    async def _republish(self, ch: AMQPChannel, tag: int, queue: str, body: bytes, properties, headers: dict) -> None:
        try:
            await ch.publish("", queue, body, message_id=properties.message_id, headers=headers, mandatory=False)
        except Exception as exc:
            # Not safely copied: leave the original unacked; the broker redelivers it after reconnect.
            log.warning("could not schedule a retry; message stays with the broker", extra={"error": repr(exc)})
            return
        self._ack(ch, tag)

    async def _park(self, ch: AMQPChannel, tag: int, body: bytes, properties, headers: dict, error: str) -> None:
        headers = {**headers, "x-last-error": error, "x-original-queue": self.queue}
        try:
            await ch.publish("", self.dlq, body, message_id=properties.message_id, headers=headers, mandatory=False)
        except Exception as exc:
            log.warning(
                "could not park a message in the dead-letter queue; message stays with the broker",
                extra={"error": repr(exc)},
            )
            return
        self.dead_lettered += 1
        self._ack(ch, tag)

    async def stop(self, grace_seconds: float = 10.0) -> None:
        self._stopping = True
        ch = self._channel
        if ch is not None and ch.is_open:
            try:
                ch.channel.basic_cancel(self._consumer_tag)
            except Exception:
                pass
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=grace_seconds)
        if ch is not None:
            await ch.close()
        await cancel_and_wait(self._task)
