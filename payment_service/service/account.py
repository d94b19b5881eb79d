"""What a user does with their card subscription (checkout, billing portal, change, cancel) and
what they see of it. Functions over the running app's state (`app.state`: core_db, gateway,
billing, settings, redis): the Stripe calls, the policy (service.plans) and the ledger."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import stripe

from payment_service import errors
from payment_service.models import SubscriptionItem, SubscriptionState
from payment_service.repositories import billing as repo
from payment_service.service.ledger import ENDED_STATUSES, ENTITLED_STATUSES
from payment_service.service.plans import CurrentPlan, paid_tier_of, plan_change
from payment_service.stripe_errors import is_definitive
from payment_service.stripe_gateway import stripe_errors, to_dict
from payment_service.webhook_effects import after_commit
from shared.tiers import tier_name

log = logging.getLogger("payment.account")


async def subscription_state(conn, user_id: str) -> SubscriptionState:
    rows = await repo.user_subscriptions(conn, user_id)
    tier = await repo.effective_tier(conn, user_id)
    items = [
        SubscriptionItem(
            source=r["source"],
            subscription_id=r["external_id"],
            tier=r["tier"],
            status=r["status"],
            current_period_end=r["current_period_end"],
            cancel_at_period_end=r["cancel_at_period_end"],
            pending_tier=r["pending_tier"],
            pending_tier_at=r["pending_tier_at"],
            grace_until=r["grace_until"],
        )
        for r in rows
    ]
    best = next((r for r in rows if r["tier"] == tier and r["status"] in ENTITLED_STATUSES), None) if tier > 0 else None
    if best is None:
        best = next((r for r in rows if r["status"] not in ENDED_STATUSES), None)
    return SubscriptionState(
        tier=tier,
        tier_name=tier_name(tier),
        status=best["status"] if best else "none",
        source=best["source"] if best else None,
        current_period_end=best["current_period_end"] if best else None,
        cancel_at_period_end=bool(best["cancel_at_period_end"]) if best else False,
        pending_tier=best["pending_tier"] if best else None,
        subscriptions=items,
    )


async def current_state(state, user_id: str) -> SubscriptionState:
    async with state.core_db.acquire() as conn:
        return await subscription_state(conn, user_id)


def price_of(state, tier: int) -> str:
    price = state.billing.price_for_tier(tier)
    if not price:
        name = tier_name(tier)
        raise errors.PRICE_NOT_CONFIGURED(
            f"The {name} plan has no Stripe price configured (STRIPE_PRICE_{name.upper()})."
        )
    return price


async def ensure_customer(state, user_id: str, email: str | None) -> str:
    """The user's Stripe customer, created once (idempotency key per user, recorded first-wins)."""
    pool = state.core_db
    existing = await repo.customer_for_user(pool, user_id)
    if existing:
        return existing
    client = state.gateway.require()
    params: dict[str, Any] = {"metadata": {"user_id": user_id}}
    if email:
        params["email"] = email
    async with stripe_errors("create the customer"):
        customer = await client.v1.customers.create_async(params, {"idempotency_key": f"customer-create-{user_id}"})
    return await repo.link_customer(pool, user_id, customer.id)


async def update_customer_email(conn, state, user_id: str, email: str, as_of: datetime, event_id: str) -> bool:
    """user.updated with a new email: the user's Stripe customer gets it (Stripe emails receipts and
    invoices there). In the consumer's transaction: the stripe_customers row lock orders two changes
    of one user, and an event older than the last applied one changes nothing. A Stripe failure that
    may pass raises (the claim rolls back, the consumer retries); a definitive answer (the customer
    deleted at Stripe, an address Stripe refuses) is logged and the event is done. True if updated."""
    customer = await repo.claim_customer_email_update(conn, user_id, as_of)
    if customer is None:
        return False  # no Stripe customer yet (created later with the token's email), or a newer change applied
    if not state.gateway.configured:
        log.error(
            "email changed but Stripe is not configured: the customer keeps the old one", extra={"customer": customer}
        )
        return False
    try:
        await state.gateway.client.v1.customers.update_async(
            customer, {"email": email}, {"idempotency_key": f"customer-email-{event_id}"}
        )
    except stripe.StripeError as exc:
        if not is_definitive(exc):
            raise
        log.warning(
            "Stripe refused the customer's new email; left as it was",
            extra={"customer": customer, "http_status": exc.http_status, "stripe_code": exc.code},
        )
        return False
    return True


async def start_checkout(
    state, user_id: str, email: str | None, tier: int, *, success_url: str, cancel_url: str, promo_code: str | None
) -> Any:
    """A Stripe Checkout session for a first subscription (a trial on the very first one, when
    STRIPE_TRIAL_DAYS is set). Someone already subscribed changes plan instead."""
    client = state.gateway.require()
    price = price_of(state, tier)
    async with state.core_db.acquire() as conn:
        live = await repo.live_stripe_subscription(conn, user_id)
        first_subscription = not await repo.had_stripe_subscription(conn, user_id)
    if live is not None and live["status"] in ENTITLED_STATUSES:
        raise errors.ALREADY_SUBSCRIBED(tier=live["tier"], subscription_status=live["status"])
    customer = await ensure_customer(state, user_id, email)
    name = tier_name(tier)
    params: dict[str, Any] = {
        "mode": "subscription",
        "customer": customer,
        "client_reference_id": user_id,
        "line_items": [{"price": price, "quantity": 1}],
        "success_url": success_url,
        "cancel_url": cancel_url,
        "metadata": {"user_id": user_id, "tier": name},
        "subscription_data": {"metadata": {"user_id": user_id, "tier": name}},
    }
    if state.settings.stripe_trial_days and first_subscription:
        params["subscription_data"]["trial_period_days"] = state.settings.stripe_trial_days
    if promo_code:
        async with stripe_errors("look up the promotion code"):
            found = await client.v1.promotion_codes.list_async({"code": promo_code, "active": True, "limit": 1})
        if not found.data:
            raise errors.INVALID_PROMO_CODE(f"The promotion code {promo_code!r} is not valid.")
        params["discounts"] = [{"promotion_code": found.data[0].id}]
    else:
        params["allow_promotion_codes"] = True
    async with stripe_errors("start the checkout"):
        return await client.v1.checkout.sessions.create_async(
            params, {"idempotency_key": f"checkout-{user_id}-{uuid.uuid4()}"}
        )


async def open_portal(state, user_id: str, return_url: str) -> str:
    client = state.gateway.require()
    customer = await repo.customer_for_user(state.core_db, user_id)
    if not customer:
        raise errors.NO_BILLING_ACCOUNT()
    async with stripe_errors("open the billing portal"):
        session = await client.v1.billing_portal.sessions.create_async({"customer": customer, "return_url": return_url})
    return session.url


async def live_subscription(state, user_id: str):
    """The user's live card subscription; an app-store subscription is changed in the app."""
    async with state.core_db.acquire() as conn:
        live = await repo.live_stripe_subscription(conn, user_id)
        if live is None:
            others = await repo.user_subscriptions(conn, user_id)
    if live is None:
        if any(r["source"] == "revenuecat" and r["status"] in ENTITLED_STATUSES for r in others):
            raise errors.SUBSCRIPTION_MANAGED_IN_APP()
        raise errors.NO_SUBSCRIPTION()
    return live


async def _apply_returned(state, sub, reason: str, user_id: str) -> SubscriptionState:
    """Apply the subscription state Stripe just answered with, so the change shows at once (the
    webhook for it then finds the same state)."""
    now = datetime.fromtimestamp(int(time.time()), UTC)
    async with state.core_db.acquire() as conn:
        async with conn.transaction():
            applied = await state.billing.apply_stripe_subscription(
                conn, to_dict(sub), now, reason=reason, provider_event_id=None
            )
        result = await subscription_state(conn, user_id)
    if applied:
        await after_commit(state, [applied])
    return result


async def change_plan(state, user_id: str, target: int) -> SubscriptionState:
    """Moves the user's card subscription to `target` as service.plans.plan_change decides."""
    client = state.gateway.require()
    price = price_of(state, target)
    live = await live_subscription(state, user_id)
    async with stripe_errors("read the subscription"):
        sub = to_dict(await client.v1.subscriptions.retrieve_async(live["external_id"]))
    item = sub["items"]["data"][0]
    paid_tier, _ = paid_tier_of(sub.get("metadata"), datetime.now(UTC))
    current = CurrentPlan(
        item_id=item["id"],
        tier=state.billing.tier_for_price(item["price"]["id"]),
        paid_tier=paid_tier,
        period_end=item.get("current_period_end") or sub.get("current_period_end"),
    )
    change = plan_change(current, target, price)
    if change is None:
        return await current_state(state, user_id)
    key = f"change-{sub['id']}-{price}-{uuid.uuid4()}"
    async with stripe_errors("change the subscription"):
        updated = await client.v1.subscriptions.update_async(sub["id"], change.params, {"idempotency_key": key})
    result = await _apply_returned(state, updated, change.reason, user_id)
    if to_dict(updated).get("pending_update"):
        # The prorated invoice was not paid: Stripe keeps the old price until it is.
        raise errors.UPGRADE_PAYMENT_PENDING(tier=result.tier)
    return result


async def cancel_subscription(state, user_id: str, *, at_period_end: bool) -> SubscriptionState:
    client = state.gateway.require()
    live = await live_subscription(state, user_id)
    subscription_id = live["external_id"]
    async with stripe_errors("cancel the subscription"):
        if at_period_end:
            updated = await client.v1.subscriptions.update_async(
                subscription_id,
                {"cancel_at_period_end": True},
                {"idempotency_key": f"cancel-{subscription_id}-{uuid.uuid4()}"},
            )
        else:
            updated = await client.v1.subscriptions.cancel_async(subscription_id)
    return await _apply_returned(state, updated, "cancel_requested", user_id)
