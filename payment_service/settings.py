"""The payment service's settings: everything ServiceSettings reads, plus its own."""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator

from shared.settings import ServiceSettings
from shared.tiers import TIER_BY_NAME, TIER_FREE, TIER_NAMES


class Settings(ServiceSettings):
    service_name: str = "payment"
    port: int = 8002

    # Stripe. Without a key the Stripe routes answer 503 STRIPE_NOT_CONFIGURED (the service still
    # starts: quotas, RevenueCat and webhooks keep working). The keyless local fleet points
    # STRIPE_API_BASE at the sandbox.
    stripe_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("STRIPE_API_KEY", "STRIPE_SECRET_KEY", "stripe_api_key")
    )
    stripe_webhook_secret: str | None = None
    stripe_api_base: str = "https://api.stripe.com"
    stripe_price_pro: str | None = None
    stripe_price_max: str | None = None
    stripe_trial_days: int | None = Field(default=None, ge=0, le=730)
    stripe_webhook_tolerance_seconds: int = 300
    stripe_timeout_seconds: float = 20.0
    stripe_max_network_retries: int = 2

    # RevenueCat: the Authorization header value configured in its dashboard, and which
    # entitlement grants which tier.
    revenuecat_webhook_auth: str | None = None
    # Default: entitlements named like the paid tiers ("pro", "max").
    revenuecat_entitlement_tiers: dict[str, int] = Field(
        default_factory=lambda: {name: tier for name, tier in TIER_BY_NAME.items() if tier != TIER_FREE}
    )

    payment_grace_days: float = Field(default=3.0, ge=0)
    frontend_url: str = "https://scenextras.com"
    # Hosts (besides FRONTEND_URL's, and their subdomains) allowed as checkout/portal redirect targets.
    allowed_redirect_hosts: list[str] = []

    # Background sweeper: expired reservations, daily free resets, grace periods that ended.
    sweep_interval_seconds: float = 30.0
    reservation_retention_days: int = 7
    quota_cache_ttl_seconds: int = 300

    @field_validator(
        "stripe_api_key",
        "stripe_webhook_secret",
        "stripe_price_pro",
        "stripe_price_max",
        "revenuecat_webhook_auth",
        "stripe_trial_days",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value):
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("revenuecat_entitlement_tiers")
    @classmethod
    def _tiers_in_range(cls, value: dict[str, int]) -> dict[str, int]:
        for name, tier in value.items():
            if tier not in TIER_NAMES:
                raise ValueError(
                    f"entitlement {name!r} maps to tier {tier}; tiers are {', '.join(map(str, TIER_NAMES))}"
                )
        return value
