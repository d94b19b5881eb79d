"""One pika AsyncioConnection with one channel in confirm mode, as awaitables."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pika
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.adapters.utils.io_services_utils import _AsyncTransportBase
from pika.exchange_type import ExchangeType

log = logging.getLogger("shared.bus")

# pika reads at most 100 KiB per readable event and waits for the next event for the rest. When a
# socket reports an error (after a broker restart), uvloop runs the read callback once more and
# closes the poll handle: with a fuller buffer (a consumer's prefetched deliveries) the broker's
# Close and the end of the stream stay unread, pika never learns the connection is gone, and the
# consumer waits until the heartbeat gives up on it. Reading until the socket is empty each time
# closes that gap; what can be waiting is bounded by the consumer's prefetch (docs/e2e.md, bug 5).
# A private attribute of pika (pinned in requirements.txt): checked, so a pika that renamed it fails here.
if not hasattr(_AsyncTransportBase, "_MAX_CONSUME_BYTES"):
    raise ImportError("pika's per-read limit moved: see docs/e2e.md, bug 5")
_AsyncTransportBase._MAX_CONSUME_BYTES = 1 << 40


class ConnectionLost(Exception):
    """The broker connection or channel closed before the operation completed."""


class PublishFailed(Exception):
    """The broker refused (nack) or could not route a message."""


# AMQP heartbeat (seconds) unless the URL sets one (`?heartbeat=`): pika closes a connection that
# received nothing for this long plus 5 s, and the consumer reconnects. RabbitMQ proposes 60: a
# connection dead without pika being told (a half-open socket, a host gone) held a consumer for
# over a minute.
HEARTBEAT_SECONDS = 15


def connection_parameters(url: str, name: str) -> pika.URLParameters:
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.blocked_connection_timeout = 30
    params.client_properties = {"connection_name": name}
    if "heartbeat=" not in url:
        params.heartbeat = HEARTBEAT_SECONDS
    return params


class AMQPChannel:
    """A connection and a confirm-mode channel. Not reusable after close: make a new one."""

    def __init__(self, url: str, name: str):
        self.url = url
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connection: AsyncioConnection | None = None
        self._channel = None
        self._closed = asyncio.Event()
        self._close_reason: Any = None
        self._rpcs: set[asyncio.Future] = set()
        # delivery tag -> (future, message_id); tags count up from 1 per channel.
        self._confirms: dict[int, tuple[asyncio.Future, str | None]] = {}
        self._returned: set[str] = set()
        self._next_tag = 0
        self.on_close: Callable[[Any], None] | None = None

    @property
    def is_open(self) -> bool:
        return self._channel is not None and self._channel.is_open and not self._closed.is_set()

    @property
    def channel(self):
        return self._channel

    async def open(self, timeout: float = 5.0) -> AMQPChannel:
        self._loop = asyncio.get_running_loop()
        opened: asyncio.Future = self._loop.create_future()

        def on_open(connection):
            connection.channel(on_open_callback=on_channel)

        def on_open_error(connection, error):
            if not opened.done():
                opened.set_exception(ConnectionLost(f"cannot connect to RabbitMQ: {error!r}"))

        def on_connection_closed(connection, reason):
            self._fail_all(reason)
            if not opened.done():
                opened.set_exception(ConnectionLost(f"connection closed: {reason!r}"))

        def on_channel(channel):
            self._channel = channel
            channel.add_on_close_callback(on_channel_closed)
            channel.add_on_return_callback(self._on_return)
            channel.confirm_delivery(
                ack_nack_callback=self._on_confirm, callback=lambda _frame: opened.done() or opened.set_result(None)
            )

        def on_channel_closed(channel, reason):
            self._fail_all(reason)
            if self._connection is not None and self._connection.is_open:
                self._connection.close()

        self._connection = AsyncioConnection(
            connection_parameters(self.url, self.name),
            on_open_callback=on_open,
            on_open_error_callback=on_open_error,
            on_close_callback=on_connection_closed,
            custom_ioloop=self._loop,
        )
        try:
            await asyncio.wait_for(opened, timeout)
        except BaseException:
            await self.close()
            raise
        return self

    def _fail_all(self, reason: Any) -> None:
        if self._closed.is_set():
            return
        self._close_reason = reason
        self._closed.set()
        error = ConnectionLost(f"AMQP channel closed: {reason!r}")
        for fut in list(self._rpcs):
            if not fut.done():
                fut.set_exception(error)
        for fut, _ in list(self._confirms.values()):
            if not fut.done():
                fut.set_exception(error)
        self._rpcs.clear()
        self._confirms.clear()
        if self.on_close is not None:
            try:
                self.on_close(reason)
            except Exception:  # a callback must not break pika's loop
                log.exception("on_close callback failed")

    async def wait_closed(self) -> Any:
        await self._closed.wait()
        return self._close_reason

    def _on_return(self, channel, method, properties, body) -> None:
        if properties.message_id:
            self._returned.add(properties.message_id)

    def _on_confirm(self, frame) -> None:
        method = frame.method
        ack = isinstance(method, pika.spec.Basic.Ack)
        tag = method.delivery_tag
        if method.multiple:
            tags = [t for t in self._confirms if t <= tag]
        else:
            tags = [tag] if tag in self._confirms else []
        for t in tags:
            fut, message_id = self._confirms.pop(t)
            if fut.done():
                continue
            if not ack:
                fut.set_exception(PublishFailed("broker refused the message (nack)"))
            elif message_id is not None and message_id in self._returned:
                self._returned.discard(message_id)
                fut.set_exception(PublishFailed("message could not be routed"))
            else:
                fut.set_result(None)

    def _rpc(self, method: Callable, *args, **kwargs) -> asyncio.Future:
        if not self.is_open:
            raise ConnectionLost("AMQP channel is not open")
        fut = self._loop.create_future()
        self._rpcs.add(fut)

        def done(frame):
            self._rpcs.discard(fut)
            if not fut.done():
                fut.set_result(frame)

        method(*args, callback=done, **kwargs)
        return fut

    async def declare_exchange(self, name: str, kind: str, arguments: dict | None = None) -> None:
        await self._rpc(
            self._channel.exchange_declare,
            exchange=name,
            exchange_type=ExchangeType(kind),
            durable=True,
            arguments=arguments,
        )

    async def declare_queue(self, name: str, arguments: dict | None = None) -> None:
        await self._rpc(self._channel.queue_declare, queue=name, durable=True, arguments=arguments)

    async def declare_exclusive_queue(self, name: str) -> None:
        """A queue of this connection only, deleted with it (per-process subscriptions)."""
        await self._rpc(self._channel.queue_declare, queue=name, durable=False, exclusive=True, auto_delete=True)

    async def bind_queue(self, queue: str, exchange: str, routing_key: str) -> None:
        await self._rpc(self._channel.queue_bind, queue=queue, exchange=exchange, routing_key=routing_key)

    async def qos(self, prefetch: int) -> None:
        await self._rpc(self._channel.basic_qos, prefetch_count=prefetch)

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str | None = None,
        headers: dict | None = None,
        content_type: str = "application/json",
        mandatory: bool = True,
    ) -> asyncio.Future:
        """Publish persistently; the future resolves when the broker confirms the message."""
        if not self.is_open:
            raise ConnectionLost("AMQP channel is not open")
        fut = self._loop.create_future()
        self._next_tag += 1
        self._confirms[self._next_tag] = (fut, message_id)
        properties = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            content_type=content_type,
            message_id=message_id,
            headers=headers,
        )
        try:
            self._channel.basic_publish(exchange, routing_key, body, properties, mandatory=mandatory)
        except Exception as exc:
            self._confirms.pop(self._next_tag, None)
            raise ConnectionLost(f"publish failed: {exc!r}") from exc
        return fut

    async def close(self) -> None:
        connection = self._connection
        if connection is not None and not connection.is_closed and not connection.is_closing:
            try:
                connection.close()
            except Exception:
                pass
            try:
                await asyncio.wait_for(self._closed.wait(), 5)
            except TimeoutError:
                pass
        self._fail_all("closed by client")


async def declare_event_exchange(channel: AMQPChannel, exchange: str) -> None:
    """The topic exchange, with an alternate exchange so that an event no queue is bound to
    yet is parked in `<exchange>.unrouted` instead of being dropped by the broker."""
    unrouted = f"{exchange}.unrouted"
    await channel.declare_exchange(unrouted, "fanout")
    await channel.declare_queue(unrouted)
    await channel.bind_queue(unrouted, unrouted, "")
    await channel.declare_exchange(exchange, "topic", arguments={"alternate-exchange": unrouted})
