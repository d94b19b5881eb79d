"""Stripe's failures while a webhook is being handled: definitive or transient.

Stripe retries a webhook answered with anything but 2xx for three days, then may disable the
endpoint. So an answer from Stripe that will be the same on every retry (404 `resource_missing`:
a customer we never saw or one of another integration; any other 4xx invalid request) is
definitive: the caller records it, logs it once and the event is acknowledged. A failure that may
pass (connection error, timeout, 5xx, 429, our own key refused until someone fixes it) is
transient: the event is answered 503 `STRIPE_UNAVAILABLE` with `Retry-After`, the transaction
rolls back, and Stripe's retry finds nothing recorded.
"""

from __future__ import annotations

import logging

import stripe

from payment_service import errors
from shared.errors import APIError

log = logging.getLogger("payment.stripe")

DEFAULT_RETRY_AFTER_SECONDS = 30


def is_definitive(exc: stripe.StripeError) -> bool:
    """True when Stripe gave an answer that a retry would get again."""
    if isinstance(
        exc, (stripe.APIConnectionError, stripe.RateLimitError, stripe.AuthenticationError, stripe.PermissionError)
    ):
        # Network, throttling, or our own key/permissions: all of them pass or get fixed on our side.
        return False
    status = exc.http_status
    return status is not None and 400 <= status < 500 and status not in (408, 409, 429)


def retry_after(exc: stripe.StripeError) -> int:
    value = (exc.headers or {}).get("retry-after") or (exc.headers or {}).get("Retry-After")
    try:
        return max(1, min(int(float(value)), 3600)) if value is not None else DEFAULT_RETRY_AFTER_SECONDS
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_SECONDS


def webhook_unavailable(exc: stripe.StripeError, action: str) -> APIError:
    """The 503 a transient failure answers (logged once, without a stack trace)."""
    seconds = retry_after(exc)
    log.warning(
        "stripe unavailable while handling a webhook; answered 503 for a retry",
        extra={
            "action": action,
            "error_type": type(exc).__name__,
            "http_status": exc.http_status,
            "stripe_code": exc.code,
            "retry_after": seconds,
        },
    )
    return errors.STRIPE_UNAVAILABLE(
        "Stripe could not be reached; the event was not processed.",
        headers={"Retry-After": str(seconds)},
        retry_after=seconds,
    )


def log_definitive(exc: stripe.StripeError, action: str, **context: object) -> None:
    log.warning(
        "stripe gave a definitive answer while handling a webhook; recorded and acknowledged",
        extra={
            "action": action,
            "http_status": exc.http_status,
            "stripe_code": exc.code,
            "error": exc.user_message or str(exc),
            **context,
        },
    )
