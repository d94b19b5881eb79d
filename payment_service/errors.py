"""The payment service's own error codes (the shared ones are in shared.errors)."""

from __future__ import annotations

from shared.errors import ErrorCode

# Accounts and plans.
NO_SUBSCRIPTION = ErrorCode(404, "NO_SUBSCRIPTION", "You have no card subscription to change.")
NO_BILLING_ACCOUNT = ErrorCode(404, "NO_BILLING_ACCOUNT", "You have no card billing account yet.")
ALREADY_SUBSCRIBED = ErrorCode(
    409, "ALREADY_SUBSCRIBED", "You already have a subscription; change it with /subscription/change."
)
SUBSCRIPTION_MANAGED_IN_APP = ErrorCode(
    409, "SUBSCRIPTION_MANAGED_IN_APP", "Your subscription is managed in the App Store / Google Play."
)
# A code Stripe does not know (or no longer active) is not found; a redirect off our front end is refused.
INVALID_PROMO_CODE = ErrorCode(404, "INVALID_PROMO_CODE", "The promotion code is not valid.")
INVALID_REDIRECT_URL = ErrorCode(403, "INVALID_REDIRECT_URL", "The redirect URL must be on our front end.")
UPGRADE_PAYMENT_PENDING = ErrorCode(
    402, "UPGRADE_PAYMENT_PENDING", "The upgrade waits for its payment; update your card in the billing portal."
)
PRICE_NOT_CONFIGURED = ErrorCode(503, "PRICE_NOT_CONFIGURED", "This plan has no Stripe price configured.")

# Stripe, as our answers to its failures (payment_service.stripe_gateway).
STRIPE_NOT_CONFIGURED = ErrorCode(
    503, "STRIPE_NOT_CONFIGURED", "Card payments are not configured on this server (STRIPE_API_KEY is not set)."
)
CARD_DECLINED = ErrorCode(402, "CARD_DECLINED", "The card was declined.")
STRIPE_REJECTED = ErrorCode(502, "STRIPE_REJECTED", "Stripe refused the request.")
STRIPE_ERROR = ErrorCode(502, "STRIPE_ERROR", "Stripe could not do this right now; try again shortly.")
STRIPE_UNAVAILABLE = ErrorCode(503, "STRIPE_UNAVAILABLE", "Card payments are unavailable right now; try again shortly.")

# Provider webhooks. A signature that does not verify is a sender not authenticated (401).
INVALID_SIGNATURE = ErrorCode(
    400, "INVALID_SIGNATURE", "The Stripe-Signature header does not match this payload (or is too old)."
)
INVALID_PAYLOAD = ErrorCode(400, "INVALID_PAYLOAD", "The webhook body is not a valid event.")
INVALID_WEBHOOK_AUTH = ErrorCode(
    401, "INVALID_WEBHOOK_AUTH", "The Authorization header does not match the configured RevenueCat secret."
)
WEBHOOK_NOT_CONFIGURED = ErrorCode(
    503, "WEBHOOK_NOT_CONFIGURED", "This webhook is not configured; the event was not processed."
)

# Every Stripe call a route makes can answer these.
STRIPE_CALL_ERRORS = (STRIPE_NOT_CONFIGURED, CARD_DECLINED, STRIPE_REJECTED, STRIPE_ERROR, STRIPE_UNAVAILABLE)
