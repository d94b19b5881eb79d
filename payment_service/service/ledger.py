"""The subscription ledger: one provider state applied to one subscription row, the user's tier
settled from all their rows, and the event announcing the change.

Every change runs inside one database transaction that also records the provider event id (once
only), the subscription row, the quota reset and the outbox events. Ordering: each row remembers
when the provider produced the state applied to it (`source_updated_at`, the Stripe event's
`created` / RevenueCat's `event_timestamp_ms`); an older state is ignored, and a Stripe
subscription that has ended (`canceled`) never comes back, so `deleted` delivered before an
`updated` of the same second cannot be undone by it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from payment_service.repositories import billing as repo
from shared.bus import emit
from shared.events import Event, EventType, make_event
from shared.tiers import TIER_MAX, TIER_PRO, TIER_QUOTAS, tier_name

log = logging.getLogger("payment.billing")

ENTITLED_STATUSES = ("active", "trialing", "past_due")
ENDED_STATUSES = ("canceled", "expired", "incomplete_expired")


def ts(value: Any) -> datetime | None:
    if value in (None, "", 0):
        return None
    return datetime.fromtimestamp(int(value), UTC)


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def obj_id(value: Any) -> str | None:
    """A Stripe reference that may be an id or an expanded object."""
    if isinstance(value, dict):
        return value.get("id")
    return value or None


@dataclass
class Applied:
    user_id: str
    tier: int
    previous_tier: int
    event: str | None = None
    emitted: Event | None = None  # the subscription.* event in the outbox (PostHog gets the same one)


def classify(prev: asyncpg.Record | None, row: asyncpg.Record, before: int, after: int) -> str | None:
    status = row["status"]
    prev_status = prev["status"] if prev else None
    new_subscription = status in ("active", "trialing") and prev_status not in ENTITLED_STATUSES
    if status in ENDED_STATUSES and prev_status not in ENDED_STATUSES:
        return "cancelled"
    if status == "paused" and prev_status != "paused":
        return "paused"
    if prev_status == "paused" and status in ("active", "trialing"):
        return "resumed"
    if new_subscription and after >= before and not (0 < before < after):
        return "created"
    if after > before:
        return "upgraded"
    if after < before:
        return "downgraded"
    if row["cancel_at_period_end"] and not (prev and prev["cancel_at_period_end"]):
        return "cancelled"
    if prev and prev["cancel_at_period_end"] and not row["cancel_at_period_end"] and status in ("active", "trialing"):
        return "resumed"
    return None


_EVENT_TYPES = {
    "created": EventType.SUBSCRIPTION_CREATED,
    "upgraded": EventType.SUBSCRIPTION_UPGRADED,
    "downgraded": EventType.SUBSCRIPTION_DOWNGRADED,
    "cancelled": EventType.SUBSCRIPTION_CANCELLED,
    "paused": EventType.SUBSCRIPTION_PAUSED,
    "resumed": EventType.SUBSCRIPTION_RESUMED,
}


class SubscriptionLedger:
    """What every provider's handling shares: settings, the Stripe gateway, prices and grace."""

    def __init__(self, settings, gateway=None):
        self.settings = settings
        self.gateway = gateway
        self.grace = timedelta(days=settings.payment_grace_days)
        self.price_tiers: dict[str, int] = {}
        if settings.stripe_price_pro:
            self.price_tiers[settings.stripe_price_pro] = TIER_PRO
        if settings.stripe_price_max:
            self.price_tiers[settings.stripe_price_max] = TIER_MAX
        self.entitlement_tiers = dict(settings.revenuecat_entitlement_tiers)

    def tier_for_price(self, price_id: str | None) -> int:
        if price_id in self.price_tiers:
            return self.price_tiers[price_id]
        log.warning("stripe price maps to no tier; treated as free", extra={"price_id": price_id})
        return 0

    def price_for_tier(self, tier: int) -> str | None:
        return {TIER_PRO: self.settings.stripe_price_pro, TIER_MAX: self.settings.stripe_price_max}.get(tier)

    async def finish(
        self,
        conn,
        user_id: str,
        before: int,
        prev,
        row,
        *,
        source: str,
        reason: str,
        provider_event_id: str | None,
        after: int | None = None,
    ) -> Applied:
        """After a subscription row changed: new effective tier, quota reset on a tier change, one event.
        `after`: the tier already settled by the caller (save_subscription_and_settle_tier)."""
        if after is None:
            after = await repo.settle_tier(conn, user_id, before)
        kind = (
            classify(prev, row, before, after)
            if row is not None
            else ("upgraded" if after > before else "downgraded" if after < before else None)
        )
        emitted = None
        if kind:
            emitted = make_event(
                _EVENT_TYPES[kind],
                user_id,
                {
                    "tier": after,
                    "tier_name": tier_name(after),
                    "previous_tier": before,
                    "status": row["status"] if row is not None else None,
                    "source": source,
                    "subscription_id": row["external_id"] if row is not None else None,
                    "current_period_end": iso(row["current_period_end"]) if row is not None else None,
                    "cancel_at_period_end": bool(row["cancel_at_period_end"]) if row is not None else False,
                    "quotas": TIER_QUOTAS[after],
                    "reason": reason,
                },
                source="payment_service",
                provider_event_id=provider_event_id,
            )
            await emit(conn, emitted)
        return Applied(user_id, after, before, kind, emitted)

    async def apply_row(
        self,
        conn,
        *,
        source: str,
        external_id: str,
        user_id: str,
        fields: dict[str, Any],
        event_time: datetime,
        reason: str,
        provider_event_id: str | None,
        terminal_is_final: bool,
        locked_prev: Any = False,
    ) -> Applied | None:
        """Apply one provider state to one subscription row unless a newer state is already there.
        `locked_prev`: the row as read by a caller that already holds the subscription's lock."""
        if locked_prev is False:
            prev = await repo.lock_and_get_subscription(conn, source, external_id)
        else:
            prev = locked_prev
        if prev is not None:
            if (
                terminal_is_final
                and prev["status"] in ENDED_STATUSES
                and fields.get("status", prev["status"]) not in ENDED_STATUSES
            ):
                log.info("state of an ended subscription ignored", extra={"subscription": external_id})
                return None
            if prev["source_updated_at"] > event_time:
                log.info("stale subscription state ignored", extra={"subscription": external_id})
                return None
            user_id = str(prev["user_id"])
        merged = {**(dict(prev) if prev else {}), **fields, "user_id": user_id, "source_updated_at": event_time}
        row, before, after = await repo.save_subscription_and_settle_tier(conn, source, external_id, merged)
        return await self.finish(
            conn,
            user_id,
            before,
            prev,
            row,
            source=source,
            reason=reason,
            provider_event_id=provider_event_id,
            after=after,
        )

    async def reconcile(self, conn, user_id: str) -> Applied | None:
        """Time passed (grace ended, entitlement expired, scheduled downgrade due): settle the user's tier."""
        before = await repo.lock_quota_tier(conn, user_id)
        await repo.apply_due_pending_tiers(conn, user_id)
        after = await repo.effective_tier(conn, user_id)
        if after == before:
            return None
        return await self.finish(
            conn, user_id, before, None, None, source="payment", reason="period_ended", provider_event_id=None
        )
