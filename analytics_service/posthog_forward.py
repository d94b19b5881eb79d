"""Forwarding to PostHog (product analytics) with the official SDK, when POSTHOG_API_KEY is set.

The consumer hands each batch's first-time events over at the end of the batch's work; the SDK
queues them and posts them from its own thread (`POST {host}/batch/`), so the event loop never
waits on PostHog. Each event goes with its own id as PostHog's `uuid`: if a batch is retried after
its events were handed over (its commit failed), PostHog keeps one copy of each.

Only these properties travel (an allow list: nothing personal such as emails leaves the platform
this way): the keys below, plus `source`. Events without a user go as `service:<source>`, without a
person profile."""

from __future__ import annotations

import asyncio
import logging

from analytics_service import rules
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
    def __init__(self, api_key: str, host: str):
        from posthog import Posthog

        self.client = Posthog(api_key, host=host, disable_geoip=True)

    def forward(self, events: list[Event]) -> None:
        for e in events:
            user_id = rules.event_user(e)
            source = e.metadata.get("source") if isinstance(e.metadata, dict) else None
            data = e.data if isinstance(e.data, dict) else {}
            properties = {k: v for k, v in data.items() if k in FORWARDED_KEYS}
            properties["source"] = source
            if user_id is None:
                properties["$process_person_profile"] = False
            self.client.capture(
                e.event_type,
                distinct_id=str(user_id) if user_id is not None else f"service:{source or 'unknown'}",
                properties=properties,
                timestamp=e.timestamp,
                uuid=e.event_id,
            )

    async def close(self) -> None:
        # shutdown() flushes what is queued, blocking: off the event loop.
        await asyncio.to_thread(self.client.shutdown)
