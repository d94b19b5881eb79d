"""What the analytics service consumes: every event (`#`), on queue `analytics_service.events`,
in batches (shared.bus.batch.BatchConsumer): each batch's first-time events are kept raw, rolled
up, and move progression, in the transaction that records their ids. `user.deleted` erases the
user (service.erase_user) in that same transaction."""

from __future__ import annotations

from fastapi import FastAPI

from analytics_service.service import Ingestor
from shared.bus.batch import BatchConsumer

QUEUE = "analytics_service.events"
BINDINGS = ["#"]


def build_consumer(app: FastAPI) -> BatchConsumer:
    state = app.state
    settings = state.settings
    return BatchConsumer(
        url=settings.rabbitmq_url,
        exchange=settings.events_exchange,
        queue=QUEUE,
        pool=state.db,
        handle_batch=Ingestor(
            forwarder=getattr(state, "posthog", None), second_pass_seconds=settings.erasure_second_pass_seconds
        ),
        bindings=BINDINGS,
        state=state,
        batch_size=settings.analytics_batch_size,
        max_wait_ms=settings.analytics_batch_wait_ms,
        max_attempts=settings.consumer_max_attempts,
        retry_delays_ms=settings.consumer_retry_delays_ms,
    )
