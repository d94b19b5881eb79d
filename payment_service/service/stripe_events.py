"""Stripe's webhooks and API answers applied to the ledger: subscriptions, checkout sessions,
invoices (paid: a new period and fresh allowances; failed: the grace period) and refunds.

`stripe_handler(event_type)` is the public dispatch the webhook route uses."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import stripe

from payment_service import stripe_errors
from payment_service.repositories import billing as repo
from payment_service.repositories.billing import as_uuid
from payment_service.service.ledger import ENDED_STATUSES, Applied, SubscriptionLedger, iso, obj_id, ts
from payment_service.service.plans import paid_tier_of
from payment_service.stripe_gateway import to_dict
from shared.bus import emit
from shared.events import EventType, make_event
from shared.tiers import parse_tier

log = logging.getLogger("payment.billing")

# Their handlers take the subscription row already locked and read with the event's record
# (repositories.billing.record_subscription_event).
SUBSCRIPTION_EVENTS = {
    "customer.subscription.created": {"reason": "created"},
    "customer.subscription.updated": {"reason": "updated"},
    "customer.subscription.deleted": {"reason": "deleted", "deleted": True},
    "customer.subscription.paused": {"reason": "paused"},
    "customer.subscription.resumed": {"reason": "resumed"},
}


class StripeBilling(SubscriptionLedger):
    def stripe_handler(self, event_type: str):
        """The coroutine applying a Stripe event of this type, or None for a type we ignore.
        Subscription events: `handler(conn, obj, when, event_id, locked_prev)`; the others:
        `handler(conn, obj, when, event_id)`. Each returns the list of Applied changes."""
        options = SUBSCRIPTION_EVENTS.get(event_type)
        if options is not None:

            async def subscription_changed(conn, obj, when, event_id, locked_prev) -> list[Applied]:
                applied = await self.apply_stripe_subscription(
                    conn, obj, when, provider_event_id=event_id, locked_prev=locked_prev, **options
                )
                return [applied] if applied else []

            return subscription_changed
        return {
            "checkout.session.completed": self.on_checkout_completed,
            "invoice.paid": self.on_invoice_paid,
            "invoice.payment_failed": self.on_invoice_failed,
            "charge.refunded": self.on_charge_refunded,
        }.get(event_type)

    def stripe_fields(self, sub: dict[str, Any], event_time: datetime, prev) -> dict[str, Any]:
        items = ((sub.get("items") or {}).get("data")) or []
        item = items[0] if items else {}
        price = item.get("price")
        price_id = obj_id(price)
        period_end = ts(item.get("current_period_end") or sub.get("current_period_end"))
        price_tier = self.tier_for_price(price_id)
        tier, pending, pending_at = price_tier, None, None
        paid_tier, paid_until = paid_tier_of(sub.get("metadata"), event_time)
        if paid_tier > price_tier:
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

    async def stripe_user(
        self,
        conn,
        *,
        customer: str | None,
        metadata: dict | None,
        subscription_id: str | None = None,
        fetch: bool = True,
    ) -> str | None:
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

    async def apply_stripe_subscription(
        self,
        conn,
        sub: dict[str, Any],
        event_time: datetime,
        *,
        reason: str,
        provider_event_id: str | None,
        deleted: bool = False,
        locked_prev: Any = False,
    ) -> Applied | None:
        """`locked_prev`: the row as read by a caller that already holds the subscription's lock
        (repo.record_subscription_event); False: take the lock here."""
        customer = obj_id(sub.get("customer"))
        prev = await repo.lock_and_get_subscription(conn, "stripe", sub["id"]) if locked_prev is False else locked_prev
        user_id = (
            str(prev["user_id"])
            if prev is not None
            else await self.stripe_user(conn, customer=customer, metadata=sub.get("metadata"))
        )
        if user_id is None:
            log.error(
                "stripe subscription for an unknown user ignored",
                extra={"subscription": sub["id"], "customer": customer},
            )
            return None
        fields = self.stripe_fields(sub, event_time, prev)
        if deleted:
            fields["status"] = "canceled"
        return await self.apply_row(
            conn,
            source="stripe",
            external_id=sub["id"],
            user_id=user_id,
            fields=fields,
            event_time=event_time,
            reason=reason,
            provider_event_id=provider_event_id,
            terminal_is_final=True,
            locked_prev=prev,
        )

    async def fetch_subscription(self, subscription_id: str) -> dict[str, Any] | None:
        if self.gateway is None or not self.gateway.configured:
            return None
        try:
            return to_dict(await self.gateway.client.v1.subscriptions.retrieve_async(subscription_id))
        except Exception as exc:
            log.warning(
                "stripe subscription not fetched; using the event's own data",
                extra={"subscription": subscription_id, "error": repr(exc)},
            )
            return None

    async def on_checkout_completed(
        self, conn, session: dict[str, Any], event_time: datetime, event_id: str
    ) -> list[Applied]:
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
            applied = await self.apply_stripe_subscription(
                conn, sub, event_time, reason="checkout", provider_event_id=event_id
            )
            return [applied] if applied else []
        # Stripe unreachable: grant from the session itself (what was paid for); the subscription's
        # own events fill in the period and price, and a newer state always wins.
        if await repo.get_subscription(conn, "stripe", sub_id) is not None:
            return []
        tier_requested = parse_tier(metadata.get("tier")) or 0
        status = {"paid": "active", "no_payment_required": "trialing"}.get(session.get("payment_status"), "incomplete")
        fields = {
            "stripe_customer_id": customer,
            "stripe_subscription_id": sub_id,
            "tier": tier_requested,
            "status": status,
            "cancel_at_period_end": False,
        }
        applied = await self.apply_row(
            conn,
            source="stripe",
            external_id=sub_id,
            user_id=user_id,
            fields=fields,
            event_time=event_time,
            reason="checkout",
            provider_event_id=event_id,
            terminal_is_final=True,
        )
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

    async def on_invoice_paid(
        self, conn, invoice: dict[str, Any], event_time: datetime, event_id: str
    ) -> list[Applied]:
        sub_id, sub_metadata = self.invoice_subscription(invoice)
        customer = obj_id(invoice.get("customer"))
        user_id = await self.stripe_user(conn, customer=customer, metadata=sub_metadata, subscription_id=sub_id)
        if user_id is None:
            log.error(
                "paid invoice of an unknown user ignored", extra={"invoice": invoice.get("id"), "customer": customer}
            )
            return []
        amount = int(invoice.get("amount_paid") or 0)
        currency = invoice.get("currency") or "usd"
        if amount > 0:
            await repo.insert_transaction(
                conn,
                user_id=user_id,
                source="stripe",
                kind="payment",
                status="succeeded",
                amount_cents=amount,
                currency=currency,
                external_id=invoice["id"],
                stripe_customer_id=customer,
                subscription_ref=sub_id,
                description=invoice.get("billing_reason"),
                occurred_at=event_time,
            )
            await emit(
                conn,
                make_event(
                    EventType.PAYMENT_SUCCEEDED,
                    user_id,
                    {
                        "source": "stripe",
                        "amount": amount,
                        "currency": currency,
                        "invoice_id": invoice["id"],
                        "subscription_id": sub_id,
                        "billing_reason": invoice.get("billing_reason"),
                    },
                    source="payment_service",
                    provider_event_id=event_id,
                ),
            )
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
                applied = await self.apply_stripe_subscription(
                    conn, sub, event_time, reason="invoice_paid", provider_event_id=event_id
                )
            else:
                fields = {
                    "stripe_customer_id": customer,
                    "stripe_subscription_id": sub_id,
                    "stripe_item_id": item_id,
                    "price_id": price_id,
                    "tier": self.tier_for_price(price_id),
                    "status": "active",
                    "current_period_end": period_end,
                    "cancel_at_period_end": False,
                }
                applied = await self.apply_row(
                    conn,
                    source="stripe",
                    external_id=sub_id,
                    user_id=user_id,
                    fields=fields,
                    event_time=event_time,
                    reason="invoice_paid",
                    provider_event_id=event_id,
                    terminal_is_final=True,
                )
        elif prev["status"] not in ENDED_STATUSES and prev["source_updated_at"] <= event_time:
            fields = {"current_period_end": max(filter(None, [prev["current_period_end"], period_end]), default=None)}
            if prev["status"] in ("past_due", "unpaid", "incomplete"):
                fields.update(status="active", grace_until=None)  # recovered
            if (
                prev["pending_tier"] is not None
                and prev["pending_tier_at"] is not None
                and prev["pending_tier_at"] <= event_time
            ):
                fields.update(tier=prev["pending_tier"], pending_tier=None, pending_tier_at=None)
            applied = await self.apply_row(
                conn,
                source="stripe",
                external_id=sub_id,
                user_id=user_id,
                fields=fields,
                event_time=event_time,
                reason="invoice_paid",
                provider_event_id=event_id,
                terminal_is_final=True,
            )
        # A paid invoice starts a new paid period: fresh allowances (unless the tier change just reset them).
        tier = await repo.effective_tier(conn, user_id)
        if tier > 0 and (applied is None or applied.tier == applied.previous_tier):
            reset_at = period_end or await repo.entitled_period_end(conn, user_id, tier)
            await repo.lock_quota_tier(conn, user_id)
            await repo.reset_quotas(conn, user_id, tier, reset_at, "renewal")
        return [applied] if applied else [Applied(user_id, tier, tier)]

    async def on_invoice_failed(
        self, conn, invoice: dict[str, Any], event_time: datetime, event_id: str
    ) -> list[Applied]:
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
            conn,
            user_id=user_id,
            source="stripe",
            kind="failed_payment",
            status="failed",
            amount_cents=amount,
            currency=currency,
            external_id=f"{invoice['id']}:{attempt}",
            stripe_customer_id=customer,
            subscription_ref=sub_id,
            description=invoice.get("billing_reason"),
            occurred_at=event_time,
        )
        applied = None
        grace_until = None
        if sub_id:
            prev = await repo.lock_and_get_subscription(conn, "stripe", sub_id)
            if prev is not None and prev["status"] not in ENDED_STATUSES and prev["source_updated_at"] <= event_time:
                grace_until = prev["grace_until"] or event_time + self.grace
                if prev["status"] in ("active", "trialing", "past_due"):
                    applied = await self.apply_row(
                        conn,
                        source="stripe",
                        external_id=sub_id,
                        user_id=user_id,
                        fields={"status": "past_due", "grace_until": grace_until},
                        event_time=event_time,
                        reason="payment_failed",
                        provider_event_id=event_id,
                        terminal_is_final=True,
                    )
        await emit(
            conn,
            make_event(
                EventType.PAYMENT_FAILED,
                user_id,
                {
                    "source": "stripe",
                    "amount": amount,
                    "currency": currency,
                    "invoice_id": invoice["id"],
                    "subscription_id": sub_id,
                    "attempt_count": attempt,
                    "grace_until": iso(grace_until),
                    "next_payment_attempt": iso(ts(invoice.get("next_payment_attempt"))),
                },
                source="payment_service",
                provider_event_id=event_id,
            ),
        )
        return [applied] if applied else []

    async def on_charge_refunded(
        self, conn, charge: dict[str, Any], event_time: datetime, event_id: str
    ) -> list[Applied]:
        customer = obj_id(charge.get("customer"))
        user_id = await self.stripe_user(conn, customer=customer, metadata=charge.get("metadata"), fetch=False)
        refunded_total = int(charge.get("amount_refunded") or 0)
        already = await repo.refunded_so_far(conn, charge["id"])
        delta = refunded_total - already
        if delta > 0:
            await repo.insert_transaction(
                conn,
                user_id=user_id,
                source="stripe",
                kind="refund",
                status="refunded",
                amount_cents=-delta,
                currency=charge.get("currency") or "usd",
                external_id=f"{charge['id']}:{refunded_total}",
                stripe_customer_id=customer,
                subscription_ref=charge["id"],
                description="refund",
                occurred_at=event_time,
            )
        return []
