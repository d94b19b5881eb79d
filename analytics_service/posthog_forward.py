"""Forwarding to PostHog (product analytics) with the official SDK (through shared/engagement.py,
the same client Community and Payment capture with), when POSTHOG_API_KEY is set.

The consumer hands each batch's first-time events over at the end of the batch's work; the SDK
queues them and posts them from its own thread (`POST {host}/batch/`), so the event loop never
waits on PostHog. Each event goes with its own id as PostHog's `uuid`: if a batch is retried after
its events were handed over (its commit failed), PostHog keeps one copy of each.

Only these properties travel (an allow list: nothing personal such as emails leaves the platform
this way): the keys below, plus `source`. Events without a user go as `service:<source>`, without a
person profile."""

from __future__ import annotations

import logging

from analytics_service import rules
from shared.engagement import Engagement
from shared.events import Event

log = logging.getLogger("analytics_service.posthog")

FORWARDED_KEYS = frozenset(rules.KEYS_KEPT_AFTER_ERASURE) | {
    "conversation_id",
    "character",
    "kind",
    "quota_type",
    "milestone",
    "level",
    "previous_level",
    "code",
}


class PostHogForwarder:
    """The bus's events to PostHog through shared/engagement.py (the client every service uses)."""

    def __init__(self, api_key: str, host: str):
        self.engagement = Engagement(api_key, host)

    def forward(self, events: list[Event]) -> None:
        for e in events:
            user_id = rules.event_user(e)
            self.engagement.capture(e, FORWARDED_KEYS, user_id=str(user_id) if user_id is not None else None)

    async def close(self) -> None:
        await self.engagement.close()
