"""The event bus over pika: publisher confirms, transactional outbox, idempotent consumers.

Every AMQP connection here is a pika AsyncioConnection on the service's own event loop, so no
pika call ever blocks the loop and there is exactly one thread touching each connection
(pika's rule). Heartbeats are answered by the loop itself.
"""

from shared.bus.amqp import AMQPChannel, ConnectionLost, PublishFailed
from shared.bus.consumer import Consumer, EventHandlers
from shared.bus.outbox import (
    OUTBOX_INSERT_ARRAYS,
    OutboxRelay,
    emit,
    erase_published,
    outbox_arrays,
    sweep_published,
)
from shared.bus.publisher import EventPublisher

__all__ = [
    "AMQPChannel",
    "ConnectionLost",
    "PublishFailed",
    "Consumer",
    "EventHandlers",
    "EventPublisher",
    "OUTBOX_INSERT_ARRAYS",
    "OutboxRelay",
    "emit",
    "outbox_arrays",
    "erase_published",
    "sweep_published",
]
