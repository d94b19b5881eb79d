"""Applying provider state (Stripe webhooks and API answers, RevenueCat webhooks) to subscriptions,
tiers and quotas, with the events that announce each change.

Every change runs inside one database transaction that also records the provider event id (once
only), the subscription row, the quota reset and the outbox events. Ordering: each row remembers
when the provider produced the state applied to it (`source_updated_at`, the Stripe event's
`created` / RevenueCat's `event_timestamp_ms`); an older state is ignored, and a Stripe
subscription that has ended (`canceled`) never comes back, so `deleted` delivered before an
`updated` of the same second cannot be undone by it.

After commit the caller writes the user's new tier into the Redis tier cache every service reads
(`shared.tiers.set_cached_tier`) and drops the quota cache.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import stripe

from payment_service import stripe_errors
from payment_service.repositories import billing as repo
from payment_service.repositories.billing import as_uuid
from shared.bus import emit
from shared.events import EventType, make_event
from shared.tiers import TIER_QUOTAS, tier_name

log = logging.getLogger("payment.billing")

ENTITLED_STATUSES = ("active", "trialing", "past_due")
ENDED_STATUSES = ("canceled", "expired", "incomplete_expired")


def ts(value: Any) -> datetime | None:
    if value in (None, "", 0):
        return None
    return datetime.fromtimestamp(int(value), timezone.utc)


def iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if value else None


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


class Billing:
    def __init__(self, settings, gateway=None):
        self.settings = settings
        self.gateway = gateway
        self.grace = timedelta(days=settings.payment_grace_days)
        self.price_tiers: dict[str, int] = {}
        if settings.stripe_price_pro:
            self.price_tiers[settings.stripe_price_pro] = 1
        if settings.stripe_price_max:
            self.price_tiers[settings.stripe_price_max] = 2
        self.entitlement_tiers = dict(settings.revenuecat_entitlement_tiers)

    # ------------------------------------------------------------------------------ common
    def tier_for_price(self, price_id: str | None) -> int:
        if price_id in self.price_tiers:
            return self.price_tiers[price_id]
        log.warning("stripe price maps to no tier; treated as free", extra={"price_id": price_id})
        return 0

    def price_for_tier(self, tier: int) -> str | None:
        return {1: self.settings.stripe_price_pro, 2: self.settings.stripe_price_max}.get(tier)

    async def finish(self, conn, user_id: str, before: int, prev, row, *, source: str, reason: str,
                     provider_event_id: str | None, after: int | None = None) -> Applied:
        """After a subscription row changed: new effective tier, quota reset on a tier change, one event.
        `after`: the tier already settled by the caller (save_subscription_and_settle_tier)."""
        if after is None:
            after = await repo.settle_tier(conn, user_id, before)
        kind = classify(prev, row, before, after) if row is not None else (
            "upgraded" if after > before else "downgraded" if after < before else None)
        if kind:
            await emit(conn, make_event(
                _EVENT_TYPES[kind], user_id,
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
            ))
        return Applied(user_id, after, before, kind)

    async def apply_row(self, conn, *, source: str, external_id: str, user_id: str, fields: dict[str, Any],
                        event_time: datetime, reason: str, provider_event_id: str | None,
                        terminal_is_final: bool, locked_prev: Any = False) -> Applied | None:
        """Apply one provider state to one subscription row unless a newer state is already there.
        `locked_prev`: the row as read by a caller that already holds the subscription's lock."""
        if locked_prev is False:
            prev = await repo.lock_and_get_subscription(conn, source, external_id)
        else:
            prev = locked_prev
        if prev is not None:
            if terminal_is_final and prev["status"] in ENDED_STATUSES and fields.get("status", prev["status"]) not in ENDED_STATUSES:
                log.info("state of an ended subscription ignored", extra={"subscription": external_id})
                return None
            if prev["source_updated_at"] > event_time:
                log.info("stale subscription state ignored", extra={"subscription": external_id})
                return None
            user_id = str(prev["user_id"])
        merged = {**(dict(prev) if prev else {}), **fields, "user_id": user_id, "source_updated_at": event_time}
        row, before, after = await repo.save_subscription_and_settle_tier(conn, source, external_id, merged)
        return await self.finish(conn, user_id, before, prev, row, source=source, reason=reason,
                                 provider_event_id=provider_event_id, after=after)

    # ------------------------------------------------------------------------------ Stripe
    def stripe_fields(self, sub: dict[str, Any], event_time: datetime, prev) -> dict[str, Any]:
        items = ((sub.get("items") or {}).get("data")) or []
        item = items[0] if items else {}
        price = item.get("price")
        price_id = obj_id(price)
        period_end = ts(item.get("current_period_end") or sub.get("current_period_end"))
        price_tier = self.tier_for_price(price_id)
        metadata = sub.get("metadata") or {}
        tier, pending, pending_at = price_tier, None, None
        try:
            paid_tier = int(metadata.get("scenextras_paid_tier") or 0)
            paid_until = ts(metadata.get("scenextras_paid_tier_until"))
        except (TypeError, ValueError):
            paid_tier, paid_until = 0, None
        if paid_tier > price_tier and paid_until is not None and paid_until > event_time:
            # A downgrade swapped the price without proration: the paid-for tier stays until then.
            tier, pending, pending_at = paid_tier, price_tier, paid_until
        status = sub.get("status") or "incomplete"
        grace = None
        if status == "past_due":
            grace = prev["grace_until"] if prev is not None and prev["grace_until"] else event_time + self.grace
        return {
            "stripe_customer_id": obj_id(sub.get("customer")),
            "stripe_subscription_id": sub["id"],
            "stripe_item_id": item.get("id"),
            "price_id": price_id,
            "tier": tier,
            "status": status,
            "current_period_end": period_end,
            "cancel_at_period_end": bool(sub.get("cancel_at_period_end") or sub.get("cancel_at")),
            "grace_until": grace,
            "trial_end": ts(sub.get("trial_end")),
            "pending_tier": pending,
            "pending_tier_at": pending_at,
        }

    async def stripe_user(self, conn, *, customer: str | None, metadata: dict | None, subscription_id: str | None = None,
                          fetch: bool = True) -> str | None:
        if subscription_id:
            prev = await repo.get_subscription(conn, "stripe", subscription_id)
            if prev is not None:
                return str(prev["user_id"])
        if customer:
            user = await repo.user_for_customer(conn, customer)
            if user:
                return user
        candidate = (metadata or {}).get("user_id")
        if as_uuid(candidate):
            if customer:
                await repo.link_customer(conn, candidate, customer)
            return str(as_uuid(candidate))
        if fetch and customer and self.gateway is not None and self.gateway.configured:
            from payment_service.stripe_gateway import to_dict

            try:
                cus = to_dict(await self.gateway.client.v1.customers.retrieve_async(customer))
            except stripe.StripeError as exc:
                if not stripe_errors.is_definitive(exc):
                    raise stripe_errors.webhook_unavailable(exc, "retrieve the customer") from None
                # Not ours (never seen, or of another integration): no user; the event is acknowledged.
                stripe_errors.log_definitive(exc, "retrieve the customer", customer=customer)
                return None
            if cus.get("deleted"):
                return None
            candidate = (cus.get("metadata") or {}).get("user_id")
            if as_uuid(candidate):
                await repo.link_customer(conn, candidate, customer)
                return str(as_uuid(candidate))
        return None

    async def apply_stripe_subscription(self, conn, sub: dict[str, Any], event_time: datetime, *, reason: str,
                                        provider_event_id: str | None, deleted: bool = False,
                                        locked_prev: Any = False) -> Applied | None:
        """`locked_prev`: the row as read by a caller that already holds the subscription's lock
        (repo.record_subscription_event); False: take the lock here."""
        customer = obj_id(sub.get("customer"))
        prev = await repo.lock_and_get_subscription(conn, "stripe", sub["id"]) if locked_prev is False else locked_prev
        user_id = str(prev["user_id"]) if prev is not None else await self.stripe_user(
            conn, customer=customer, metadata=sub.get("metadata"))
        if user_id is None:
            log.error("stripe subscription for an unknown user ignored", extra={"subscription": sub["id"], "customer": customer})
            return None
        fields = self.stripe_fields(sub, event_time, prev)
        if deleted:
            fields["status"] = "canceled"
        return await self.apply_row(conn, source="stripe", external_id=sub["id"], user_id=user_id, fields=fields,
                                    event_time=event_time, reason=reason, provider_event_id=provider_event_id,
                                    terminal_is_final=True, locked_prev=prev)

    async def fetch_subscription(self, subscription_id: str) -> dict[str, Any] | None:
        if self.gateway is None or not self.gateway.configured:
            return None
        from payment_service.stripe_gateway import to_dict

        try:
            return to_dict(await self.gateway.client.v1.subscriptions.retrieve_async(subscription_id))
        except Exception as exc:
            log.warning("stripe subscription not fetched; using the event's own data",
                        extra={"subscription": subscription_id, "error": repr(exc)})
            return None

    async def on_checkout_completed(self, conn, session: dict[str, Any], event_time: datetime, event_id: str) -> list[Applied]:
        if session.get("mode") != "subscription":
            return []
        metadata = session.get("metadata") or {}
        user_id = as_uuid(session.get("client_reference_id")) or as_uuid(metadata.get("user_id"))
        customer = obj_id(session.get("customer"))
        sub_id = obj_id(session.get("subscription"))
        if user_id is None or not sub_id:
            log.error("checkout session without a user or subscription ignored", extra={"session": session.get("id")})
            return []
        user_id = str(user_id)
        if customer:
            await repo.link_customer(conn, user_id, customer)
        sub = await self.fetch_subscription(sub_id)
        if sub is not None:
            applied = await self.apply_stripe_subscription(conn, sub, event_time, reason="checkout", provider_event_id=event_id)
            return [applied] if applied else []
        # Stripe unreachable: grant from the session itself (what was paid for); the subscription's
        # own events fill in the period and price, and a newer state always wins.
        if await repo.get_subscription(conn, "stripe", sub_id) is not None:
            return []
        tier_requested = {"pro": 1, "max": 2}.get(str(metadata.get("tier", "")).lower(), 0)
        status = {"paid": "active", "no_payment_required": "trialing"}.get(session.get("payment_status"), "incomplete")
        fields = {"stripe_customer_id": customer, "stripe_subscription_id": sub_id, "tier": tier_requested,
                  "status": status, "cancel_at_period_end": False}
        applied = await self.apply_row(conn, source="stripe", external_id=sub_id, user_id=user_id, fields=fields,
                                       event_time=event_time, reason="checkout", provider_event_id=event_id,
                                       terminal_is_final=True)
        return [applied] if applied else []

    @staticmethod
    def invoice_subscription(invoice: dict[str, Any]) -> tuple[str | None, dict]:
        parent = invoice.get("parent") or {}
        details = parent.get("subscription_details") or {}
        sub_id = obj_id(details.get("subscription")) or obj_id(invoice.get("subscription"))
        return sub_id, details.get("metadata") or {}

    @staticmethod
    def invoice_line(invoice: dict[str, Any]) -> tuple[str | None, datetime | None, str | None]:
        lines = ((invoice.get("lines") or {}).get("data")) or []
        price_id, period_end, item_id = None, None, None
        for line in lines:
            pricing = (line.get("pricing") or {}).get("price_details") or {}
            price_id = obj_id(pricing.get("price")) or obj_id(line.get("price")) or price_id
            period_end = max(filter(None, [period_end, ts((line.get("period") or {}).get("end"))]), default=None)
            item_details = ((line.get("parent") or {}).get("subscription_item_details")) or {}
            item_id = item_details.get("subscription_item") or item_id
        return price_id, period_end, item_id

    async def on_invoice_paid(self, conn, invoice: dict[str, Any], event_time: datetime, event_id: str) -> list[Applied]:
        sub_id, sub_metadata = self.invoice_subscription(invoice)
        customer = obj_id(invoice.get("customer"))
        user_id = await self.stripe_user(conn, customer=customer, metadata=sub_metadata, subscription_id=sub_id)
        if user_id is None:
            log.error("paid invoice of an unknown user ignored", extra={"invoice": invoice.get("id"), "customer": customer})
            return []
        amount = int(invoice.get("amount_paid") or 0)
        currency = invoice.get("currency") or "usd"
        if amount > 0:
            await repo.insert_transaction(
                conn, user_id=user_id, source="stripe", kind="payment", status="succeeded", amount_cents=amount,
                currency=currency, external_id=invoice["id"], stripe_customer_id=customer, subscription_ref=sub_id,
                description=invoice.get("billing_reason"), occurred_at=event_time)
            await emit(conn, make_event(EventType.PAYMENT_SUCCEEDED, user_id, {
                "source": "stripe", "amount": amount, "currency": currency, "invoice_id": invoice["id"],
                "subscription_id": sub_id, "billing_reason": invoice.get("billing_reason"),
            }, source="payment_service", provider_event_id=event_id))
        if not sub_id:
            return []
        price_id, period_end, item_id = self.invoice_line(invoice)
        applied: Applied | None = None
        prev = await repo.lock_and_get_subscription(conn, "stripe", sub_id)
        if prev is None:
            # The invoice came before the subscription's own events: take Stripe's current state,
            # or what the invoice says was paid for.
            sub = await self.fetch_subscription(sub_id)
            if sub is not None:
                applied = await self.apply_stripe_subscription(conn, sub, event_time, reason="invoice_paid", provider_event_id=event_id)
            else:
                fields = {"stripe_customer_id": customer, "stripe_subscription_id": sub_id, "stripe_item_id": item_id,
                          "price_id": price_id, "tier": self.tier_for_price(price_id), "status": "active",
                          "current_period_end": period_end, "cancel_at_period_end": False}
                applied = await self.apply_row(conn, source="stripe", external_id=sub_id, user_id=user_id, fields=fields,
                                               event_time=event_time, reason="invoice_paid", provider_event_id=event_id,
                                               terminal_is_final=True)
        elif prev["status"] not in ENDED_STATUSES and prev["source_updated_at"] <= event_time:
            fields = {"current_period_end": max(filter(None, [prev["current_period_end"], period_end]), default=None)}
            if prev["status"] in ("past_due", "unpaid", "incomplete"):
                fields.update(status="active", grace_until=None)  # recovered
            if prev["pending_tier"] is not None and prev["pending_tier_at"] is not None and prev["pending_tier_at"] <= event_time:
                fields.update(tier=prev["pending_tier"], pending_tier=None, pending_tier_at=None)
            applied = await self.apply_row(conn, source="stripe", external_id=sub_id, user_id=user_id, fields=fields,
                                           event_time=event_time, reason="invoice_paid", provider_event_id=event_id,
                                           terminal_is_final=True)
        # A paid invoice starts a new paid period: fresh allowances (unless the tier change just reset them).
        tier = await repo.effective_tier(conn, user_id)
        if tier > 0 and (applied is None or applied.tier == applied.previous_tier):
            reset_at = period_end or await repo.entitled_period_end(conn, user_id, tier)
            await repo.lock_quota_tier(conn, user_id)
            await repo.reset_quotas(conn, user_id, tier, reset_at, "renewal")
        return [applied] if applied else [Applied(user_id, tier, tier)]

    async def on_invoice_failed(self, conn, invoice: dict[str, Any], event_time: datetime, event_id: str) -> list[Applied]:
        sub_id, sub_metadata = self.invoice_subscription(invoice)
        customer = obj_id(invoice.get("customer"))
        user_id = await self.stripe_user(conn, customer=customer, metadata=sub_metadata, subscription_id=sub_id)
        if user_id is None:
            log.error("failed invoice of an unknown user ignored", extra={"invoice": invoice.get("id")})
            return []
        amount = int(invoice.get("amount_due") or 0)
        currency = invoice.get("currency") or "usd"
        attempt = int(invoice.get("attempt_count") or 1)
        await repo.insert_transaction(
            conn, user_id=user_id, source="stripe", kind="failed_payment", status="failed", amount_cents=amount,
            currency=currency, external_id=f"{invoice['id']}:{attempt}", stripe_customer_id=customer,
            subscription_ref=sub_id, description=invoice.get("billing_reason"), occurred_at=event_time)
        applied = None
        grace_until = None
        if sub_id:
            prev = await repo.lock_and_get_subscription(conn, "stripe", sub_id)
            if prev is not None and prev["status"] not in ENDED_STATUSES and prev["source_updated_at"] <= event_time:
                grace_until = prev["grace_until"] or event_time + self.grace
                if prev["status"] in ("active", "trialing", "past_due"):
                    applied = await self.apply_row(
                        conn, source="stripe", external_id=sub_id, user_id=user_id,
                        fields={"status": "past_due", "grace_until": grace_until}, event_time=event_time,
                        reason="payment_failed", provider_event_id=event_id, terminal_is_final=True)
        await emit(conn, make_event(EventType.PAYMENT_FAILED, user_id, {
            "source": "stripe", "amount": amount, "currency": currency, "invoice_id": invoice["id"],
            "subscription_id": sub_id, "attempt_count": attempt, "grace_until": iso(grace_until),
            "next_payment_attempt": iso(ts(invoice.get("next_payment_attempt"))),
        }, source="payment_service", provider_event_id=event_id))
        return [applied] if applied else []

    async def on_charge_refunded(self, conn, charge: dict[str, Any], event_time: datetime, event_id: str) -> list[Applied]:
        customer = obj_id(charge.get("customer"))
        user_id = await self.stripe_user(conn, customer=customer, metadata=charge.get("metadata"), fetch=False)
        refunded_total = int(charge.get("amount_refunded") or 0)
        already = await repo.refunded_so_far(conn, charge["id"])
        delta = refunded_total - already
        if delta > 0:
            await repo.insert_transaction(
                conn, user_id=user_id, source="stripe", kind="refund", status="refunded", amount_cents=-delta,
                currency=charge.get("currency") or "usd", external_id=f"{charge['id']}:{refunded_total}",
                stripe_customer_id=customer, subscription_ref=charge["id"], description="refund", occurred_at=event_time)
        return []

    # -------------------------------------------------------------------------- RevenueCat
    def revenuecat_tier(self, entitlement_ids: list[str] | None) -> int:
        return max((self.entitlement_tiers.get(e, 0) for e in entitlement_ids or []), default=0)

    async def on_revenuecat(self, conn, event: dict[str, Any], user_id: str, event_time: datetime) -> list[Applied]:
        etype = event.get("type")
        external_id = user_id  # one RevenueCat entitlement state per user
        entitlements = event.get("entitlement_ids") or ([event["entitlement_id"]] if event.get("entitlement_id") else [])
        event_tier = self.revenuecat_tier(entitlements)
        expires = ts(int(event["expiration_at_ms"]) // 1000) if event.get("expiration_at_ms") else None
        prev = await repo.lock_and_get_subscription(conn, "revenuecat", external_id)
        fields: dict[str, Any]
        product = event.get("new_product_id") or event.get("product_id")
        if etype in ("INITIAL_PURCHASE", "RENEWAL", "UNCANCELLATION", "NON_RENEWING_PURCHASE", "SUBSCRIPTION_EXTENDED"):
            fields = {"tier": event_tier, "status": "active", "current_period_end": expires, "price_id": product,
                      "cancel_at_period_end": False, "grace_until": None, "pending_tier": None, "pending_tier_at": None}
            if etype == "UNCANCELLATION" and prev is not None:
                fields.update(tier=prev["tier"] if not entitlements else event_tier)
        elif etype == "PRODUCT_CHANGE":
            current = prev["tier"] if prev is not None else 0
            if event_tier > current or prev is None:
                fields = {"tier": event_tier, "status": "active", "price_id": product, "current_period_end": expires or (prev and prev["current_period_end"])}
            else:  # a downgrade takes effect at renewal (the RENEWAL event carries the new entitlement)
                fields = {"pending_tier": event_tier, "pending_tier_at": prev["current_period_end"]}
        elif etype == "CANCELLATION":
            fields = {"cancel_at_period_end": True, "current_period_end": expires or (prev and prev["current_period_end"])}
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
                    conn, user_id=user_id, source="revenuecat", kind="payment" if cents > 0 else "refund",
                    status="succeeded" if cents > 0 else "refunded", amount_cents=cents, currency="usd",
                    external_id=str(event.get("transaction_id") or event.get("id")), subscription_ref=product,
                    description=f"{etype} {event.get('store') or ''}".strip(), occurred_at=event_time)
                if cents > 0:
                    await emit(conn, make_event(EventType.PAYMENT_SUCCEEDED, user_id, {
                        "source": "revenuecat", "amount": cents, "currency": "usd", "product_id": product,
                        "store": event.get("store"), "transaction_id": event.get("transaction_id"),
                    }, source="payment_service", provider_event_id=event.get("id")))
        if etype == "BILLING_ISSUE":
            await emit(conn, make_event(EventType.PAYMENT_FAILED, user_id, {
                "source": "revenuecat", "product_id": product, "store": event.get("store"),
                "grace_until": iso(fields["grace_until"]),
            }, source="payment_service", provider_event_id=event.get("id")))
        fields.setdefault("status", prev["status"] if prev is not None else "active")
        fields.setdefault("tier", prev["tier"] if prev is not None else event_tier)
        applied = await self.apply_row(conn, source="revenuecat", external_id=external_id, user_id=user_id, fields=fields,
                                       event_time=event_time, reason=etype.lower(), provider_event_id=event.get("id"),
                                       terminal_is_final=False)
        if applied is not None and etype in ("INITIAL_PURCHASE", "RENEWAL") and applied.tier > 0 and applied.tier == applied.previous_tier:
            await repo.reset_quotas(conn, user_id, applied.tier, expires, "renewal")
        return [applied] if applied else []

    # ---------------------------------------------------------------------------- sweeper
    async def reconcile(self, conn, user_id: str) -> Applied | None:
        """Time passed (grace ended, entitlement expired, scheduled downgrade due): settle the user's tier."""
        before = await repo.lock_quota_tier(conn, user_id)
        await repo.apply_due_pending_tiers(conn, user_id)
        after = await repo.effective_tier(conn, user_id)
        if after == before:
            return None
        return await self.finish(conn, user_id, before, None, None, source="payment", reason="period_ended",
                                 provider_event_id=None)
