"""Periodic housekeeping: drop refresh tokens long expired, stale codes, and guest accounts
abandoned for GUEST_RETENTION_DAYS (publishing user.deleted for each, so every service erases
what the guest left)."""

from __future__ import annotations

import asyncio
import logging
import time

from auth_service.repositories import maintenance as repo
from shared.bus import emit
from shared.events import EventType, make_event

log = logging.getLogger("auth_service.maintenance")


async def cleanup_once(pool, settings, batch: int = 500) -> dict[str, int]:
    async with pool.acquire() as conn:
        tokens = await repo.delete_dead_refresh_tokens(conn, settings.refresh_token_grace_days)
        codes = await repo.delete_dead_codes(conn)
        guests = 0
        while True:
            async with conn.transaction():
                ids = await repo.delete_abandoned_guests(conn, settings.guest_retention_days, batch)
                if ids:
                    # No erase_published here: an abandoned guest's events are older than
                    # GUEST_RETENTION_DAYS (>= 1 day), so the outbox sweep (24 h) has deleted them.
                    await emit(
                        conn,
                        *[
                            make_event(
                                EventType.USER_DELETED,
                                uid,
                                {
                                    "was_guest": True,
                                    "reason": "guest_expired",
                                    "tokens_valid_until": time.time() + settings.access_token_ttl_seconds,
                                },
                                source="auth_service",
                            )
                            for uid in ids
                        ],
                    )
            guests += len(ids)
            if len(ids) < batch:
                break
    return {"refresh_tokens": tokens, "codes": codes, "guests": guests}


async def cleanup_loop(app, settings) -> None:
    while True:
        await asyncio.sleep(settings.cleanup_interval_seconds)
        try:
            done = await cleanup_once(app.state.db, settings)
            if any(done.values()):
                log.info("housekeeping", extra=done)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the next round retries
            log.warning("housekeeping failed", extra={"error": repr(exc)})
