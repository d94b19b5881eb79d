"""Pydantic models at the edges of the payment service."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckoutRequest(_Strict):
    tier: Literal["pro", "max"]
    promo_code: str | None = Field(default=None, min_length=1, max_length=64)
    success_url: str | None = Field(default=None, max_length=2000)
    cancel_url: str | None = Field(default=None, max_length=2000)


class CheckoutResponse(BaseModel):
    checkout_url: str
    session_id: str


class PortalRequest(_Strict):
    return_url: str | None = Field(default=None, max_length=2000)


class PortalResponse(BaseModel):
    url: str


class ChangeRequest(_Strict):
    tier: Literal["pro", "max"]


class CancelRequest(_Strict):
    at_period_end: bool = True


class SubscriptionItem(BaseModel):
    source: str
    subscription_id: str
    tier: int
    status: str
    current_period_end: datetime | None
    cancel_at_period_end: bool
    pending_tier: int | None = None
    pending_tier_at: datetime | None = None
    grace_until: datetime | None = None


class SubscriptionState(BaseModel):
    tier: int
    tier_name: str
    status: str
    source: str | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    pending_tier: int | None = None
    subscriptions: list[SubscriptionItem]


class QuotaEntry(BaseModel):
    remaining: int
    reset_at: str | None


class QuotaResponse(BaseModel):
    tier: int
    tier_name: str
    quotas: dict[str, QuotaEntry]


class Plan(BaseModel):
    tier: int
    name: str
    price_cents: int
    currency: str = "usd"
    interval: str | None
    quotas: dict[str, int]
    context_tokens: int
    reset: str
    available: bool


class PlansResponse(BaseModel):
    plans: list[Plan]


class WebhookAck(BaseModel):
    received: bool = True
    duplicate: bool = False
    ignored: bool = False
