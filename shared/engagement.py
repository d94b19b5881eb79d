"""Engagement tracking to PostHog through the official `posthog` SDK, when POSTHOG_API_KEY is set.

One client for every service: Community captures story published and votes, Payment upgrades,
Analytics forwards the bus's events (analytics_service/posthog_forward.py). What goes to PostHog is
always one of our bus events (`shared.events.Event`): its type as PostHog's event name, its user as
the distinct id, its id as PostHog's `uuid`, its timestamp, and only the data keys the caller lists
(an allow list: nothing personal leaves the platform this way). So a capture at the source and
Analytics' forward of the same event are one event in PostHog (same uuid), not two.

Never blocks a request: `capture()` only puts the event on the SDK's in-memory queue (bounded; full
means dropped and logged by the SDK) and the SDK's own thread posts batches (`POST {host}/batch/`)
with its retries. A PostHog outage delays or, after the retries, drops analytics, never a request:
`capture()` swallows every error. `close()` flushes what is queued off the event loop. Without a
key, `Engagement.from_settings()` answers a client whose `capture()` does nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from shared.events import Event

log = logging.getLogger("shared.engagement")

# The engagement events of the plan (docs/analytics.md): what the services capture at the source.
ENGAGEMENT_EVENTS = ("story.published", "story.voted", "room.joined", "subscription.upgraded")


class Engagement:
    def __init__(self, api_key: str | None, host: str, **sdk_options):
        self.client = None
        if api_key:
            from posthog import Posthog

            self.client = Posthog(api_key, host=host, disable_geoip=True, **sdk_options)

    @classmethod
    def from_settings(cls, settings) -> Engagement:
        return cls(getattr(settings, "posthog_api_key", None), getattr(settings, "posthog_host", DEFAULT_HOST))

    @property
    def enabled(self) -> bool:
        return self.client is not None

    def capture(self, event: Event, keys: Iterable[str] = (), user_id: str | None = None) -> None:
        """Queue `event` for PostHog with the data keys in `keys` (and `source`). `user_id`: the
        distinct id when it is not the event's user. Events without a user go as
        `service:<source>`, without a person profile."""
        if self.client is None:
            return
        try:
            source = event.metadata.get("source") if isinstance(event.metadata, dict) else None
            data = event.data if isinstance(event.data, dict) else {}
            allowed = set(keys)
            properties = {k: v for k, v in data.items() if k in allowed}
            properties["source"] = source
            distinct = user_id or event.user_id
            if distinct is None:
                properties["$process_person_profile"] = False
            self.client.capture(
                event.event_type,
                distinct_id=str(distinct) if distinct is not None else f"service:{source or 'unknown'}",
                properties=properties,
                timestamp=event.timestamp,
                uuid=event.event_id,
            )
        except Exception:  # analytics must never fail the request that produced it
            log.warning("engagement capture failed", exc_info=True, extra={"event_type": event.event_type})

    async def close(self) -> None:
        if self.client is not None:
            # shutdown() flushes what is queued and joins the SDK's thread, blocking: off the loop.
            await asyncio.to_thread(self.client.shutdown)


DEFAULT_HOST = "https://us.i.posthog.com"
