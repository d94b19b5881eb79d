"""EventSpy: a test's own exclusive queue on the events exchange, to see what was published."""

from __future__ import annotations

import asyncio

from shared.bus.amqp import AMQPChannel, declare_event_exchange
from shared.events import Event


class EventSpy:
    def __init__(self, url: str, exchange: str, bindings: list[str] | None = None):
        self.url = url
        self.exchange = exchange
        self.bindings = bindings or ["#"]
        self.events: list[Event] = []
        self._changed = asyncio.Condition()
        self._channel: AMQPChannel | None = None

    async def __aenter__(self) -> EventSpy:
        ch = AMQPChannel(self.url, "test-event-spy")
        await ch.open()
        await declare_event_exchange(ch, self.exchange)
        frame = await ch._rpc(ch.channel.queue_declare, queue="", exclusive=True, auto_delete=True)
        queue = frame.method.queue
        for key in self.bindings:
            await ch.bind_queue(queue, self.exchange, key)
        ch.channel.basic_consume(queue, self._on_message, auto_ack=True)
        self._channel = ch
        return self

    def _on_message(self, channel, method, properties, body) -> None:
        self.events.append(Event.from_bytes(body))
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def of_type(self, event_type: str, **data_match) -> list[Event]:
        return [
            e
            for e in self.events
            if e.event_type == event_type
            and all(e.data.get(k) == v or getattr(e, k, None) == v for k, v in data_match.items())
        ]

    async def wait_for(self, event_type: str, count: int = 1, timeout: float = 10.0, **data_match) -> list[Event]:
        async def _wait():
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.of_type(event_type, **data_match)) >= count)

        try:
            await asyncio.wait_for(_wait(), timeout)
        except TimeoutError:
            seen = [e.event_type for e in self.events]
            raise AssertionError(f"{count} x {event_type} not seen within {timeout}s; saw {seen}") from None
        return self.of_type(event_type, **data_match)

    async def __aexit__(self, *exc) -> None:
        if self._channel is not None:
            await self._channel.close()
