"""The notifications consumer and the process's notification machinery (started with the app).

Its own queue, `community_service.notifications`, consumed in batches (shared.bus.batch): each
batch's first-seen event ids are recorded in `processed_events` in the transaction that creates
the notifications and their deliveries, so a redelivered event gives nothing twice. It also reads
`user.created` / `user.updated` (the address notifications are emailed to) and `user.deleted`
(everything notifications keep about the user is erased).
"""

from __future__ import annotations

from fastapi import FastAPI

from community_service.notifications import kinds, service
from community_service.notifications.delivery import DeliveryWorker, expo_client
from community_service.notifications.live import LiveHub
from shared.bus.batch import BatchConsumer
from shared.email import build_email_backend
from shared.events import EventType

QUEUE = "community_service.notifications"
BINDINGS = sorted(
    {t.value for t in kinds.CONSUMED}
    | {EventType.USER_CREATED.value, EventType.USER_UPDATED.value, EventType.USER_DELETED.value}
)


def build_consumer(app: FastAPI) -> BatchConsumer:
    state = app.state
    settings = state.settings
    return BatchConsumer(
        url=settings.rabbitmq_url,
        exchange=settings.events_exchange,
        queue=QUEUE,
        pool=state.db,
        handle_batch=service.apply_events,
        bindings=BINDINGS,
        state=state,
        batch_size=settings.notification_batch_size,
        max_wait_ms=settings.notification_batch_wait_ms,
        max_attempts=settings.consumer_max_attempts,
        retry_delays_ms=settings.consumer_retry_delays_ms,
    )


async def start(app: FastAPI) -> None:
    state = app.state
    settings = state.settings
    state.notification_email = build_email_backend(settings)
    push = expo_client(settings.expo_push_base_url, settings.expo_access_token, settings.expo_push_timeout_seconds)
    state.notification_delivery = DeliveryWorker(
        state.db, email=state.notification_email, push=push, settings=settings, frontend_url=settings.frontend_url
    )
    state.notification_hub = LiveHub(settings.community_database_url, on_delivery=state.notification_delivery.wake)
    await state.notification_hub.start()
    state.notification_delivery.start()
    state.notification_consumer = build_consumer(app)
    state.notification_consumer.start()


async def stop(app: FastAPI) -> None:
    state = app.state
    for name in ("notification_consumer", "notification_delivery", "notification_hub"):
        part = getattr(state, name, None)
        if part is not None:
            await part.stop()
    email = getattr(state, "notification_email", None)
    if email is not None:
        await email.close()
