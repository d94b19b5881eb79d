"""Publishing with confirms: an event counts as published only when the broker confirms it."""

from __future__ import annotations

import asyncio
import logging

from shared.bus.amqp import AMQPChannel, ConnectionLost, declare_event_exchange
from shared.events import Event

log = logging.getLogger("shared.bus.publisher")


class EventPublisher:
    """Lazily connected; reconnects on the next publish after a lost connection.

    Callers that must not lose an event do not call this directly: they `emit()` into the
    outbox in their own transaction and the relay publishes through this.
    """

    def __init__(self, url: str, exchange: str, name: str = "publisher"):
        self.url = url
        self.exchange = exchange
        self.name = name
        self._channel: AMQPChannel | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._channel is not None and self._channel.is_open

    async def connect(self, timeout: float = 5.0) -> AMQPChannel:
        if self._channel is not None and self._channel.is_open:
            return self._channel
        async with self._lock:
            if self._channel is not None and self._channel.is_open:
                return self._channel
            channel = AMQPChannel(self.url, self.name)
            await channel.open(timeout)
            try:
                await asyncio.wait_for(declare_event_exchange(channel, self.exchange), timeout)
            except BaseException:
                await channel.close()
                raise
            self._channel = channel
            return channel

    async def publish_raw(
        self, items: list[tuple[str, str, bytes]], timeout: float = 10.0
    ) -> list[BaseException | None]:
        """Publish (event_id, routing_key, body) items pipelined; one result per item, None = confirmed."""
        channel = await self.connect()
        futures: list[asyncio.Future | BaseException] = []
        for event_id, routing_key, body in items:
            try:
                futures.append(channel.publish(self.exchange, routing_key, body, message_id=event_id))
            except ConnectionLost as exc:
                futures.append(exc)
        pending = [f for f in futures if isinstance(f, asyncio.Future)]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        results: list[BaseException | None] = []
        for f in futures:
            if isinstance(f, BaseException):
                results.append(f)
            elif not f.done():
                f.cancel()
                results.append(TimeoutError("no confirm from the broker in time"))
            else:
                results.append(f.exception())
        return results

    async def publish(self, event: Event) -> None:
        [error] = await self.publish_raw([(event.event_id, event.event_type, event.to_bytes())])
        if error is not None:
            raise error

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
