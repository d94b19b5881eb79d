"""The official Stripe SDK (v16), asynchronously: a StripeClient on httpx's AsyncClient, its base
address from STRIPE_API_BASE (the sandbox in tests and the keyless fleet), and Stripe's errors
turned into the envelope."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any

import stripe

from payment_service import errors
from shared.errors import APIError

log = logging.getLogger("payment.stripe")


class StripeGateway:
    def __init__(self, api_key: str | None, api_base: str, *, timeout: float = 20.0, max_network_retries: int = 2):
        self.api_key = api_key
        self.api_base = api_base.rstrip("/")
        self._http = None
        self.client: stripe.StripeClient | None = None
        if api_key:
            self._http = stripe.HTTPXClient(timeout=timeout)
            self.client = stripe.StripeClient(
                api_key,
                base_addresses={"api": self.api_base},
                http_client=self._http,
                max_network_retries=max_network_retries,
            )

    @property
    def configured(self) -> bool:
        return self.client is not None

    def require(self) -> stripe.StripeClient:
        if self.client is None:
            raise errors.STRIPE_NOT_CONFIGURED()
        return self.client

    async def close(self) -> None:
        if self._http is not None:
            try:
                await self._http.close_async()
            except Exception:
                pass


def to_dict(obj: Any) -> dict[str, Any]:
    """A StripeObject as plain dicts/lists (what webhooks deliver), so one code path handles both."""
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return dict(obj)


@asynccontextmanager
async def stripe_errors(action: str):
    """Stripe's failures as clear envelope errors; nothing of ours has changed when they happen."""
    try:
        yield
    except APIError:
        raise
    except stripe.CardError as exc:
        raise errors.CARD_DECLINED(exc.user_message, stripe_code=exc.code) from None
    except stripe.InvalidRequestError as exc:
        log.warning("stripe refused a request", extra={"action": action, "error": str(exc), "param": exc.param})
        raise errors.STRIPE_REJECTED(
            f"Stripe refused to {action}: {exc.user_message or exc}", stripe_code=exc.code
        ) from None
    except stripe.AuthenticationError:
        log.error("stripe rejected our API key", extra={"action": action})
        raise errors.STRIPE_UNAVAILABLE("Card payments are unavailable right now (configuration).") from None
    except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
        log.warning("stripe unreachable", extra={"action": action, "error": str(exc)})
        raise errors.STRIPE_UNAVAILABLE(headers={"Retry-After": "5"}) from None
    except stripe.StripeError as exc:
        log.warning("stripe error", extra={"action": action, "error": str(exc)})
        raise errors.STRIPE_ERROR(f"Stripe could not {action} right now; try again shortly.") from None
