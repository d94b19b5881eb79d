"""RevenueCat's webhooks (App Store / Google Play subscriptions) applied to the ledger: one
entitlement state per user."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from payment_service.repositories import billing as repo
from payment_service.service.ledger import Applied, SubscriptionLedger, iso, ts
from shared.bus import emit
from shared.events import EventType, make_event


class RevenueCatBilling(SubscriptionLedger):
    def revenuecat_tier(self, entitlement_ids: list[str] | None) -> int:
        return max((self.entitlement_tiers.get(e, 0) for e in entitlement_ids or []), default=0)

    async def on_revenuecat(self, conn, event: dict[str, Any], user_id: str, event_time: datetime) -> list[Applied]:
        etype = event.get("type")
        external_id = user_id  # one RevenueCat entitlement state per user
        entitlements = event.get("entitlement_ids") or (
            [event["entitlement_id"]] if event.get("entitlement_id") else []
        )
        event_tier = self.revenuecat_tier(entitlements)
        expires = ts(int(event["expiration_at_ms"]) // 1000) if event.get("expiration_at_ms") else None
        prev = await repo.lock_and_get_subscription(conn, "revenuecat", external_id)
        fields: dict[str, Any]
        product = event.get("new_product_id") or event.get("product_id")
        if etype in ("INITIAL_PURCHASE", "RENEWAL", "UNCANCELLATION", "NON_RENEWING_PURCHASE", "SUBSCRIPTION_EXTENDED"):
            fields = {
                "tier": event_tier,
                "status": "active",
                "current_period_end": expires,
                "price_id": product,
                "cancel_at_period_end": False,
                "grace_until": None,
                "pending_tier": None,
                "pending_tier_at": None,
            }
            if etype == "UNCANCELLATION" and prev is not None:
                fields.update(tier=prev["tier"] if not entitlements else event_tier)
        elif etype == "PRODUCT_CHANGE":
            current = prev["tier"] if prev is not None else 0
            if event_tier > current or prev is None:
                fields = {
                    "tier": event_tier,
                    "status": "active",
                    "price_id": product,
                    "current_period_end": expires or (prev and prev["current_period_end"]),
                }
            else:  # a downgrade takes effect at renewal (the RENEWAL event carries the new entitlement)
                fields = {"pending_tier": event_tier, "pending_tier_at": prev["current_period_end"]}
        elif etype == "CANCELLATION":
            fields = {
                "cancel_at_period_end": True,
                "current_period_end": expires or (prev and prev["current_period_end"]),
            }
            if prev is None:
                fields.update(tier=event_tier, status="active")
        elif etype == "EXPIRATION":
            fields = {"status": "expired", "current_period_end": expires or event_time, "grace_until": None}
            if prev is None:
                fields.update(tier=event_tier)
        elif etype == "BILLING_ISSUE":
            fields = {"status": "past_due", "grace_until": (prev and prev["grace_until"]) or event_time + self.grace}
            if expires and self.grace.total_seconds() > 0:
                fields["current_period_end"] = max(expires, fields["grace_until"])
            if prev is None:
                fields.update(tier=event_tier)
        elif etype == "SUBSCRIPTION_PAUSED":
            fields = {"status": "paused"}
            if prev is None:
                fields.update(tier=event_tier)
        else:
            return []
        # Money that moved through the store.
        price = event.get("price")
        if etype in ("INITIAL_PURCHASE", "RENEWAL", "NON_RENEWING_PURCHASE", "PRODUCT_CHANGE") and price:
            cents = int(round(float(price) * 100))
            if cents != 0 and (event.get("period_type") or "NORMAL") != "TRIAL":
                await repo.insert_transaction(
                    conn,
                    user_id=user_id,
                    source="revenuecat",
                    kind="payment" if cents > 0 else "refund",
                    status="succeeded" if cents > 0 else "refunded",
                    amount_cents=cents,
                    currency="usd",
                    external_id=str(event.get("transaction_id") or event.get("id")),
                    subscription_ref=product,
                    description=f"{etype} {event.get('store') or ''}".strip(),
                    occurred_at=event_time,
                )
                if cents > 0:
                    await emit(
                        conn,
                        make_event(
                            EventType.PAYMENT_SUCCEEDED,
                            user_id,
                            {
                                "source": "revenuecat",
                                "amount": cents,
                                "currency": "usd",
                                "product_id": product,
                                "store": event.get("store"),
                                "transaction_id": event.get("transaction_id"),
                            },
                            source="payment_service",
                            provider_event_id=event.get("id"),
                        ),
                    )
        if etype == "BILLING_ISSUE":
            await emit(
                conn,
                make_event(
                    EventType.PAYMENT_FAILED,
                    user_id,
                    {
                        "source": "revenuecat",
                        "product_id": product,
                        "store": event.get("store"),
                        "grace_until": iso(fields["grace_until"]),
                    },
                    source="payment_service",
                    provider_event_id=event.get("id"),
                ),
            )
        fields.setdefault("status", prev["status"] if prev is not None else "active")
        fields.setdefault("tier", prev["tier"] if prev is not None else event_tier)
        applied = await self.apply_row(
            conn,
            source="revenuecat",
            external_id=external_id,
            user_id=user_id,
            fields=fields,
            event_time=event_time,
            reason=etype.lower(),
            provider_event_id=event.get("id"),
            terminal_is_final=False,
        )
        if (
            applied is not None
            and etype in ("INITIAL_PURCHASE", "RENEWAL")
            and applied.tier > 0
            and applied.tier == applied.previous_tier
        ):
            await repo.reset_quotas(conn, user_id, applied.tier, expires, "renewal")
        return [applied] if applied else []
