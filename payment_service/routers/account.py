"""Plans, quota and subscription state, and the Stripe actions a user takes (checkout, portal,
change, cancel): validated and shaped here, decided in payment_service.service.account."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request

from payment_service import errors
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
    SubscriptionState,
)
from payment_service.repositories.billing import as_uuid
from payment_service.service import account
from shared.auth import CurrentUser, get_current_user
from shared.errors import USER_TOKEN_REQUIRED, documented
from shared.tiers import TIER_CONTEXT_TOKENS, TIER_PRICES_CENTS, TIER_QUOTAS, parse_tier, tier_name

log = logging.getLogger("payment.account")
router = APIRouter(tags=["payment"])

# What a route that calls Stripe may answer besides its own codes.
STRIPE_CALLS = documented(*errors.STRIPE_CALL_ERRORS, errors.PRICE_NOT_CONFIGURED)


def _user(user: CurrentUser) -> str:
    if as_uuid(user.user_id) is None:
        raise USER_TOKEN_REQUIRED("This route is for user accounts.")
    return str(as_uuid(user.user_id))


@router.get("/plans", response_model=PlansResponse)
async def plans(request: Request):
    billing = request.app.state.billing
    out = []
    for tier in (0, 1, 2):
        out.append(
            Plan(
                tier=tier,
                name=tier_name(tier),
                price_cents=TIER_PRICES_CENTS[tier],
                interval=None if tier == 0 else "month",
                quotas=TIER_QUOTAS[tier],
                context_tokens=TIER_CONTEXT_TOKENS[tier],
                reset="daily (UTC midnight)" if tier == 0 else "each paid billing period",
                available=tier == 0 or bool(billing.price_for_tier(tier) and request.app.state.gateway.configured),
            )
        )
    return PlansResponse(plans=out)


@router.get("/quota", response_model=QuotaResponse, responses=documented(USER_TOKEN_REQUIRED))
async def quota(request: Request, user: CurrentUser = Depends(get_current_user)):
    user_id = _user(user)
    quotas = await request.app.state.quota.remaining(user_id)
    tier = await request.app.state.tier_resolver(user)
    return QuotaResponse(tier=tier, tier_name=tier_name(tier), quotas=quotas)


@router.get("/subscription", response_model=SubscriptionState, responses=documented(USER_TOKEN_REQUIRED))
async def subscription(request: Request, user: CurrentUser = Depends(get_current_user)):
    return await account.current_state(request.app.state, _user(user))


def _checked_url(request: Request, url: str | None, default: str, field: str) -> str:
    """Redirect targets must be our own front end (no open redirect through Stripe)."""
    if not url:
        return default
    settings = request.app.state.settings
    allowed = {urlsplit(settings.frontend_url).hostname, *settings.allowed_redirect_hosts}
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not any(h and (host == h or host.endswith("." + h)) for h in allowed):
        raise errors.INVALID_REDIRECT_URL(f"{field} must be a URL on {settings.frontend_url}.", field=field)
    return url


@router.post(
    "/create-checkout-session",
    response_model=CheckoutResponse,
    responses=STRIPE_CALLS
    | documented(
        USER_TOKEN_REQUIRED, errors.INVALID_PROMO_CODE, errors.ALREADY_SUBSCRIBED, errors.INVALID_REDIRECT_URL
    ),
)
async def create_checkout_session(
    body: CheckoutRequest, request: Request, user: CurrentUser = Depends(get_current_user)
):
    user_id = _user(user)
    frontend = request.app.state.settings.frontend_url.rstrip("/")
    success_url = _checked_url(
        request, body.success_url, f"{frontend}/payment-success?session_id={{CHECKOUT_SESSION_ID}}", "success_url"
    )
    cancel_url = _checked_url(request, body.cancel_url, f"{frontend}/payment-cancelled", "cancel_url")
    session = await account.start_checkout(
        request.app.state,
        user_id,
        user.email,
        parse_tier(body.tier),
        success_url=success_url,
        cancel_url=cancel_url,
        promo_code=body.promo_code,
    )
    return CheckoutResponse(checkout_url=session.url, session_id=session.id)


@router.post(
    "/billing-portal",
    response_model=PortalResponse,
    responses=STRIPE_CALLS | documented(USER_TOKEN_REQUIRED, errors.NO_BILLING_ACCOUNT, errors.INVALID_REDIRECT_URL),
)
async def billing_portal(
    request: Request, body: PortalRequest | None = None, user: CurrentUser = Depends(get_current_user)
):
    user_id = _user(user)
    body = body or PortalRequest()
    default = request.app.state.settings.frontend_url.rstrip("/") + "/account"
    return_url = _checked_url(request, body.return_url, default, "return_url")
    return PortalResponse(url=await account.open_portal(request.app.state, user_id, return_url))


@router.post(
    "/subscription/change",
    response_model=SubscriptionState,
    responses=STRIPE_CALLS
    | documented(
        USER_TOKEN_REQUIRED, errors.NO_SUBSCRIPTION, errors.SUBSCRIPTION_MANAGED_IN_APP, errors.UPGRADE_PAYMENT_PENDING
    ),
)
async def change_subscription(body: ChangeRequest, request: Request, user: CurrentUser = Depends(get_current_user)):
    """Upgrade now (the prorated difference is charged at once), downgrade at the end of the paid
    period, or withdraw a scheduled downgrade (service.plans)."""
    return await account.change_plan(request.app.state, _user(user), parse_tier(body.tier))


@router.post(
    "/subscription/cancel",
    response_model=SubscriptionState,
    responses=STRIPE_CALLS
    | documented(USER_TOKEN_REQUIRED, errors.NO_SUBSCRIPTION, errors.SUBSCRIPTION_MANAGED_IN_APP),
)
async def cancel_subscription(
    request: Request, body: CancelRequest | None = None, user: CurrentUser = Depends(get_current_user)
):
    body = body or CancelRequest()
    return await account.cancel_subscription(request.app.state, _user(user), at_period_end=body.at_period_end)
