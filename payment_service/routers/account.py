"""Plans, quota and subscription state, and the Stripe actions a user takes (checkout, portal,
change, cancel)."""
from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request

from payment_service.billing import Applied, ENTITLED_STATUSES
from payment_service.models import (
    CancelRequest,
    ChangeRequest,
    CheckoutRequest,
    CheckoutResponse,
    Plan,
    PlansResponse,
    PortalRequest,
    PortalResponse,
    QuotaResponse,
    SubscriptionItem,
    SubscriptionState,
)
from payment_service.repositories import billing as repo
from payment_service.repositories.billing import as_uuid
from payment_service.stripe_gateway import stripe_errors, to_dict
from payment_service.webhook_effects import after_commit
from shared.auth import CurrentUser, get_current_user
from shared.errors import APIError
from shared.tiers import TIER_CONTEXT_TOKENS, TIER_PRICES_CENTS, TIER_QUOTAS, tier_name

log = logging.getLogger("payment.account")
router = APIRouter(tags=["payment"])

TIERS = {"pro": 1, "max": 2}


def _user(user: CurrentUser) -> str:
    if as_uuid(user.user_id) is None:
        raise APIError(403, "USER_TOKEN_REQUIRED", "This route is for user accounts.")
    return str(as_uuid(user.user_id))


@router.get("/plans", response_model=PlansResponse)
async def plans(request: Request):
    billing = request.app.state.billing
    out = []
    for tier in (0, 1, 2):
        out.append(Plan(
            tier=tier, name=tier_name(tier), price_cents=TIER_PRICES_CENTS[tier], interval=None if tier == 0 else "month",
            quotas=TIER_QUOTAS[tier], context_tokens=TIER_CONTEXT_TOKENS[tier],
            reset="daily (UTC midnight)" if tier == 0 else "each paid billing period",
            available=tier == 0 or bool(billing.price_for_tier(tier) and request.app.state.gateway.configured),
        ))
    return PlansResponse(plans=out)


@router.get("/quota", response_model=QuotaResponse)
async def quota(request: Request, user: CurrentUser = Depends(get_current_user)):
    user_id = _user(user)
    quotas = await request.app.state.quota.remaining(user_id)
    tier = await request.app.state.tier_resolver(user)
    return QuotaResponse(tier=tier, tier_name=tier_name(tier), quotas=quotas)


async def _state(conn, user_id: str) -> SubscriptionState:
    rows = await repo.user_subscriptions(conn, user_id)
    tier = await repo.effective_tier(conn, user_id)
    items = [
        SubscriptionItem(
            source=r["source"], subscription_id=r["external_id"], tier=r["tier"], status=r["status"],
            current_period_end=r["current_period_end"], cancel_at_period_end=r["cancel_at_period_end"],
            pending_tier=r["pending_tier"], pending_tier_at=r["pending_tier_at"], grace_until=r["grace_until"],
        )
        for r in rows
    ]
    best = next((r for r in rows if r["tier"] == tier and r["status"] in ENTITLED_STATUSES), None) if tier > 0 else None
    if best is None:
        best = next((r for r in rows if r["status"] not in ("canceled", "expired", "incomplete_expired")), None)
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


@router.get("/subscription", response_model=SubscriptionState)
async def subscription(request: Request, user: CurrentUser = Depends(get_current_user)):
    user_id = _user(user)
    async with request.app.state.core_db.acquire() as conn:
        return await _state(conn, user_id)


def _checked_url(request: Request, url: str | None, default: str, field: str) -> str:
    """Redirect targets must be our own front end (no open redirect through Stripe)."""
    if not url:
        return default
    settings = request.app.state.settings
    allowed = {urlsplit(settings.frontend_url).hostname, *settings.allowed_redirect_hosts}
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not any(h and (host == h or host.endswith("." + h)) for h in allowed):
        raise APIError(422, "INVALID_REDIRECT_URL", f"{field} must be a URL on {settings.frontend_url}.", field=field)
    return url


async def _customer(request: Request, user: CurrentUser, user_id: str) -> str:
    """The user's Stripe customer, created once (idempotency key per user, recorded first-wins)."""
    pool = request.app.state.core_db
    existing = await repo.customer_for_user(pool, user_id)
    if existing:
        return existing
    client = request.app.state.gateway.require()
    async with stripe_errors("create the customer"):
        customer = await client.v1.customers.create_async(
            {"email": user.email, "metadata": {"user_id": user_id}} if user.email else {"metadata": {"user_id": user_id}},
            {"idempotency_key": f"customer-create-{user_id}"},
        )
    return await repo.link_customer(pool, user_id, customer.id)


@router.post("/create-checkout-session", response_model=CheckoutResponse)
async def create_checkout_session(body: CheckoutRequest, request: Request, user: CurrentUser = Depends(get_current_user)):
    user_id = _user(user)
    state = request.app.state
    client = state.gateway.require()
    settings = state.settings
    tier = TIERS[body.tier]
    price = state.billing.price_for_tier(tier)
    if not price:
        raise APIError(503, "PRICE_NOT_CONFIGURED", f"The {body.tier} plan has no Stripe price configured (STRIPE_PRICE_{body.tier.upper()}).")
    frontend = settings.frontend_url.rstrip("/")
    success_url = _checked_url(request, body.success_url, f"{frontend}/payment-success?session_id={{CHECKOUT_SESSION_ID}}", "success_url")
    cancel_url = _checked_url(request, body.cancel_url, f"{frontend}/payment-cancelled", "cancel_url")
    async with state.core_db.acquire() as conn:
        live = await repo.live_stripe_subscription(conn, user_id)
        first_subscription = not await repo.had_stripe_subscription(conn, user_id)
    if live is not None and live["status"] in ENTITLED_STATUSES:
        raise APIError(409, "ALREADY_SUBSCRIBED", "You already have a subscription; change it with /subscription/change.",
                       tier=live["tier"], subscription_status=live["status"])
    customer = await _customer(request, user, user_id)
    params: dict = {
        "mode": "subscription",
        "customer": customer,
        "client_reference_id": user_id,
        "line_items": [{"price": price, "quantity": 1}],
        "success_url": success_url,
        "cancel_url": cancel_url,
        "metadata": {"user_id": user_id, "tier": body.tier},
        "subscription_data": {"metadata": {"user_id": user_id, "tier": body.tier}},
    }
    if settings.stripe_trial_days and first_subscription:
        params["subscription_data"]["trial_period_days"] = settings.stripe_trial_days
    if body.promo_code:
        async with stripe_errors("look up the promotion code"):
            found = await client.v1.promotion_codes.list_async({"code": body.promo_code, "active": True, "limit": 1})
        if not found.data:
            raise APIError(400, "INVALID_PROMO_CODE", f"The promotion code {body.promo_code!r} is not valid.")
        params["discounts"] = [{"promotion_code": found.data[0].id}]
    else:
        params["allow_promotion_codes"] = True
    async with stripe_errors("start the checkout"):
        session = await client.v1.checkout.sessions.create_async(params, {"idempotency_key": f"checkout-{user_id}-{uuid.uuid4()}"})
    return CheckoutResponse(checkout_url=session.url, session_id=session.id)


@router.post("/billing-portal", response_model=PortalResponse)
async def billing_portal(request: Request, body: PortalRequest | None = None, user: CurrentUser = Depends(get_current_user)):
    user_id = _user(user)
    state = request.app.state
    client = state.gateway.require()
    body = body or PortalRequest()
    return_url = _checked_url(request, body.return_url, state.settings.frontend_url.rstrip("/") + "/account", "return_url")
    customer = await repo.customer_for_user(state.core_db, user_id)
    if not customer:
        raise APIError(404, "NO_BILLING_ACCOUNT", "You have no card billing account yet.")
    async with stripe_errors("open the billing portal"):
        session = await client.v1.billing_portal.sessions.create_async({"customer": customer, "return_url": return_url})
    return PortalResponse(url=session.url)


async def _live_subscription(request: Request, user_id: str):
    async with request.app.state.core_db.acquire() as conn:
        live = await repo.live_stripe_subscription(conn, user_id)
        if live is None:
            others = await repo.user_subscriptions(conn, user_id)
    if live is None:
        if any(r["source"] == "revenuecat" and r["status"] in ENTITLED_STATUSES for r in others):
            raise APIError(409, "SUBSCRIPTION_MANAGED_IN_APP", "Your subscription is managed in the App Store / Google Play.")
        raise APIError(404, "NO_SUBSCRIPTION", "You have no card subscription to change.")
    return live


async def _apply_returned(request: Request, sub, reason: str, user_id: str) -> SubscriptionState:
    """Apply the subscription state Stripe just answered with, so the change shows at once (the
    webhook for it then finds the same state)."""
    state = request.app.state
    sub = to_dict(sub)
    now = datetime.fromtimestamp(int(time.time()), timezone.utc)
    async with state.core_db.acquire() as conn:
        async with conn.transaction():
            applied = await state.billing.apply_stripe_subscription(conn, sub, now, reason=reason, provider_event_id=None)
        result = await _state(conn, user_id)
    if applied:
        await after_commit(request.app, [applied])
    return result


@router.post("/subscription/change", response_model=SubscriptionState)
async def change_subscription(body: ChangeRequest, request: Request, user: CurrentUser = Depends(get_current_user)):
    user_id = _user(user)
    state = request.app.state
    client = state.gateway.require()
    target = TIERS[body.tier]
    price = state.billing.price_for_tier(target)
    if not price:
        raise APIError(503, "PRICE_NOT_CONFIGURED", f"The {body.tier} plan has no Stripe price configured.")
    live = await _live_subscription(request, user_id)
    async with stripe_errors("read the subscription"):
        sub = to_dict(await client.v1.subscriptions.retrieve_async(live["external_id"]))
    items = sub["items"]["data"]
    item = items[0]
    current_tier = state.billing.tier_for_price(item["price"]["id"])
    metadata = sub.get("metadata") or {}
    try:
        paid_tier = int(metadata.get("scenextras_paid_tier") or 0)
        paid_until = int(metadata.get("scenextras_paid_tier_until") or 0)
    except ValueError:
        paid_tier, paid_until = 0, 0
    if paid_until <= time.time():
        paid_tier = 0
    if current_tier == target:
        # Already on that price (a downgrade to it may be scheduled): nothing to do.
        async with state.core_db.acquire() as conn:
            return await _state(conn, user_id)
    key = f"change-{sub['id']}-{price}-{uuid.uuid4()}"
    cleared = {"tier": body.tier, "scenextras_paid_tier": "", "scenextras_paid_tier_until": ""}
    if paid_tier and target == paid_tier:
        # Back to the tier already paid for this period: undo the scheduled downgrade, no charge.
        params = {"items": [{"id": item["id"], "price": price}], "proration_behavior": "none", "metadata": cleared}
        reason = "downgrade_withdrawn"
    elif target > current_tier:
        # Upgrade now: swap the price and invoice the prorated difference immediately; with
        # pending_if_incomplete the swap only happens once that invoice is paid. (Stripe accepts no
        # metadata with pending_if_incomplete; none is needed: a scheduled downgrade cannot be
        # pending here, going back to the paid-for tier took the branch above.)
        params = {
            "items": [{"id": item["id"], "price": price}],
            "proration_behavior": "always_invoice",
            "payment_behavior": "pending_if_incomplete",
        }
        reason = "upgrade"
    else:
        # Downgrade at period end: the new price bills from the next period (no proration, no credit);
        # the paid-for tier stays until then (recorded on the subscription itself).
        period_end = item.get("current_period_end") or sub.get("current_period_end")
        params = {
            "items": [{"id": item["id"], "price": price}],
            "proration_behavior": "none",
            "metadata": {"tier": body.tier, "scenextras_paid_tier": str(max(current_tier, paid_tier)),
                         "scenextras_paid_tier_until": str(period_end)},
        }
        reason = "downgrade_scheduled"
    async with stripe_errors("change the subscription"):
        updated = await client.v1.subscriptions.update_async(sub["id"], params, {"idempotency_key": key})
    result = await _apply_returned(request, updated, reason, user_id)
    if to_dict(updated).get("pending_update"):
        # The prorated invoice was not paid: Stripe keeps the old price until it is.
        raise APIError(402, "UPGRADE_PAYMENT_PENDING", "The upgrade waits for its payment; update your card in the billing portal.",
                       tier=result.tier)
    return result


@router.post("/subscription/cancel", response_model=SubscriptionState)
async def cancel_subscription(request: Request, body: CancelRequest | None = None, user: CurrentUser = Depends(get_current_user)):
    user_id = _user(user)
    state = request.app.state
    client = state.gateway.require()
    body = body or CancelRequest()
    live = await _live_subscription(request, user_id)
    async with stripe_errors("cancel the subscription"):
        if body.at_period_end:
            updated = await client.v1.subscriptions.update_async(
                live["external_id"], {"cancel_at_period_end": True}, {"idempotency_key": f"cancel-{live['external_id']}-{uuid.uuid4()}"}
            )
        else:
            updated = await client.v1.subscriptions.cancel_async(live["external_id"])
    return await _apply_returned(request, updated, "cancel_requested", user_id)


__all__ = ["router", "Applied"]
