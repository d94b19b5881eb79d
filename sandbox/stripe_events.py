"""Stripe objects, events and webhook signatures, shaped like the real API (basil and later).

Used by the Stripe sandbox itself and directly by tests that post webhooks to the payment service.

Shapes (checked against stripe-python 16's generated types):
* a subscription has no top-level ``current_period_start/end`` since 2025-03-31 ("basil"): they live
  on each item (``items.data[i].current_period_end``);
* an invoice names its subscription in ``parent.subscription_details.subscription`` (not
  ``invoice.subscription``); its lines carry ``pricing.price_details.price`` and
  ``parent.subscription_item_details``; ``invoice.paid`` is the event to grant access on;
* a discount points at its coupon through ``source.coupon``; a promotion code through
  ``promotion.coupon``;
* ``checkout.session.completed`` carries ``client_reference_id``, ``customer``, ``subscription``,
  ``metadata``, ``payment_status`` ("paid", or "no_payment_required" for a trial).

Event builders return the event as a dict; :func:`payload` serialises it the way Stripe sends it
(pretty JSON), and :func:`sign_stripe_payload` makes the ``Stripe-Signature`` header
(``t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<payload>">``) that ``stripe.Webhook.construct_event``
verifies. Typical test use::

    event = stripe_events.invoice_paid(customer="cus_1", subscription="sub_1", price="price_pro")
    body = stripe_events.payload(event)
    headers = {"Stripe-Signature": stripe_events.sign_stripe_payload(body, "whsec_test")}
"""

from __future__ import annotations

import calendar
import copy
import datetime as _dt
import hashlib
import hmac
import json
import secrets
import string
import time
from typing import Any

try:  # the API version the installed SDK speaks, which is what the services will send
    from stripe._api_version import _ApiVersion as _SDKVersion

    API_VERSION = _SDKVersion.CURRENT
except Exception:  # pragma: no cover - stripe is a project dependency
    API_VERSION = "2025-03-31.basil"

_ALNUM = string.ascii_letters + string.digits

Obj = dict[str, Any]


def new_id(prefix: str, n: int = 24) -> str:
    """A Stripe-looking id: ``cus_`` + 14 chars, ``sub_1`` + 23, ``cs_test_a1`` + 58, ..."""
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(n))


def _now() -> int:
    return int(time.time())


def add_months(ts: int, months: int = 1) -> int:
    d = _dt.datetime.fromtimestamp(ts, _dt.UTC)
    m = d.month - 1 + months
    year, month = d.year + m // 12, m % 12 + 1
    day = min(d.day, calendar.monthrange(year, month)[1])
    return int(d.replace(year=year, month=month, day=day).timestamp())


def add_interval(ts: int, interval: str, count: int = 1) -> int:
    if interval == "month":
        return add_months(ts, count)
    if interval == "year":
        return add_months(ts, 12 * count)
    if interval == "week":
        return ts + 7 * 86400 * count
    return ts + 86400 * count


def list_object(data: list[Obj], url: str) -> Obj:
    return {"object": "list", "data": data, "has_more": False, "total_count": len(data), "url": url}


# --------------------------------------------------------------------------------------- objects


def product_object(id: str, name: str, created: int | None = None, metadata: dict | None = None) -> Obj:
    return {
        "id": id,
        "object": "product",
        "active": True,
        "attributes": [],
        "created": created or _now(),
        "default_price": None,
        "description": None,
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": metadata or {},
        "name": name,
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "type": "service",
        "unit_label": None,
        "updated": created or _now(),
        "url": None,
    }


def price_object(
    id: str,
    product: str,
    unit_amount: int,
    currency: str = "usd",
    interval: str | None = "month",
    interval_count: int = 1,
    lookup_key: str | None = None,
    nickname: str | None = None,
    created: int | None = None,
    metadata: dict | None = None,
) -> Obj:
    return {
        "id": id,
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": created or _now(),
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": lookup_key,
        "metadata": metadata or {},
        "nickname": nickname,
        "product": product,
        "recurring": None
        if interval is None
        else {
            "interval": interval,
            "interval_count": interval_count,
            "meter": None,
            "trial_period_days": None,
            "usage_type": "licensed",
        },
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "one_time" if interval is None else "recurring",
        "unit_amount": unit_amount,
        "unit_amount_decimal": str(unit_amount),
    }


def plan_from_price(price: Obj) -> Obj:
    rec = price.get("recurring") or {}
    return {
        "id": price["id"],
        "object": "plan",
        "active": price["active"],
        "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": "per_unit",
        "created": price["created"],
        "currency": price["currency"],
        "interval": rec.get("interval"),
        "interval_count": rec.get("interval_count"),
        "livemode": False,
        "metadata": price.get("metadata", {}),
        "meter": None,
        "nickname": price.get("nickname"),
        "product": price["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": None,
        "usage_type": "licensed",
    }


def default_price(id: str = "price_sandbox_pro_monthly", unit_amount: int = 999) -> Obj:
    return price_object(id, "prod_SandboxPro0001", unit_amount, lookup_key=None, created=1735689600)


def customer_object(
    id: str | None = None,
    email: str | None = None,
    name: str | None = None,
    metadata: dict | None = None,
    created: int | None = None,
    phone: str | None = None,
    description: str | None = None,
) -> Obj:
    return {
        "id": id or new_id("cus_", 14),
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": created or _now(),
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": description,
        "discount": None,
        "email": email,
        "invoice_prefix": "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(8)),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": metadata or {},
        "name": name,
        "next_invoice_sequence": 1,
        "phone": phone,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def subscription_item_object(
    subscription: str,
    price: Obj,
    period_start: int,
    period_end: int,
    quantity: int = 1,
    id: str | None = None,
    created: int | None = None,
    metadata: dict | None = None,
) -> Obj:
    return {
        "id": id or new_id("si_", 14),
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": created or period_start,
        "current_period_end": period_end,
        "current_period_start": period_start,
        "discounts": [],
        "metadata": metadata or {},
        "plan": plan_from_price(price),
        "price": copy.deepcopy(price),
        "quantity": quantity,
        "subscription": subscription,
        "tax_rates": [],
    }


def subscription_object(
    id: str | None = None,
    customer: str = "cus_Sandbox000001",
    price: Obj | None = None,
    status: str = "active",
    period_start: int | None = None,
    period_end: int | None = None,
    cancel_at_period_end: bool = False,
    metadata: dict | None = None,
    trial_end: int | None = None,
    latest_invoice: str | None = None,
    created: int | None = None,
    item_id: str | None = None,
    canceled_at: int | None = None,
    discounts: list | None = None,
) -> Obj:
    """A subscription in the basil+ shape: the billing period lives on ``items.data[i]``."""
    sid = id or new_id("sub_1", 23)
    price = price or default_price()
    start = period_start or created or _now()
    interval = (price.get("recurring") or {}).get("interval", "month")
    end = period_end or (trial_end if trial_end else add_interval(start, interval))
    created = created or start
    item = subscription_item_object(sid, price, start, end, id=item_id, created=created)
    return {
        "id": sid,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": end if trial_end else start,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"flexible": None, "type": "classic", "updated_at": None},
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": end if cancel_at_period_end else None,
        "cancel_at_period_end": cancel_at_period_end,
        "canceled_at": canceled_at,
        "cancellation_details": {
            "comment": None,
            "feedback": None,
            "reason": "cancellation_requested" if (cancel_at_period_end or canceled_at) else None,
        },
        "collection_method": "charge_automatically",
        "created": created,
        "currency": price["currency"],
        "customer": customer,
        "days_until_due": None,
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": discounts or [],
        "ended_at": canceled_at if status == "canceled" else None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": list_object([item], f"/v1/subscription_items?subscription={sid}"),
        "latest_invoice": latest_invoice,
        "livemode": False,
        "metadata": metadata or {},
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": created,
        "status": status,
        "test_clock": None,
        "transfer_data": None,
        "trial_end": trial_end,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": created if trial_end else None,
    }


def invoice_line_object(
    invoice: str,
    subscription: str,
    subscription_item: str,
    price: Obj,
    period_start: int,
    period_end: int,
    quantity: int = 1,
    amount: int | None = None,
    proration: bool = False,
    description: str | None = None,
) -> Obj:
    amount = price["unit_amount"] * quantity if amount is None else amount
    return {
        "id": new_id("il_1", 23),
        "object": "line_item",
        "amount": amount,
        "currency": price["currency"],
        "description": description or f"{quantity} \u00d7 {price.get('nickname') or price['product']}",
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": invoice,
        "livemode": False,
        "metadata": {},
        "parent": {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": proration,
                "proration_details": {"credited_items": None},
                "subscription": subscription,
                "subscription_item": subscription_item,
            },
            "type": "subscription_item_details",
        },
        "period": {"end": period_end, "start": period_start},
        "pretax_credit_amounts": [],
        "pricing": {
            "price_details": {"price": price["id"], "product": price["product"]},
            "type": "price_details",
            "unit_amount_decimal": price["unit_amount_decimal"],
        },
        "quantity": quantity,
        "subtotal": amount,
        "taxes": [],
    }


def invoice_object(
    id: str | None = None,
    customer: str = "cus_Sandbox000001",
    subscription: str | None = "sub_1Sandbox00000000000000000",
    subscription_item: str = "si_Sandbox000001",
    price: Obj | None = None,
    status: str = "paid",
    billing_reason: str = "subscription_create",
    period_start: int | None = None,
    period_end: int | None = None,
    line_period_start: int | None = None,
    line_period_end: int | None = None,
    amount: int | None = None,
    customer_email: str | None = None,
    subscription_metadata: dict | None = None,
    attempt_count: int | None = None,
    created: int | None = None,
    number: str | None = None,
    discount_amount: int = 0,
    discount: str | None = None,
) -> Obj:
    """An invoice in the basil+ shape (subscription under ``parent.subscription_details``).
    ``discount``: the id of the discount behind ``discount_amount`` (Stripe never leaves it null)."""
    iid = id or new_id("in_1", 23)
    price = price or default_price()
    created = created or _now()
    ls = line_period_start or created
    le = line_period_end or add_interval(ls, (price.get("recurring") or {}).get("interval", "month"))
    subtotal = price["unit_amount"] if amount is None else amount
    total = max(0, subtotal - discount_amount)
    paid = status == "paid"
    lines = [invoice_line_object(iid, subscription or "", subscription_item, price, ls, le, amount=subtotal)]
    return {
        "id": iid,
        "object": "invoice",
        "account_country": "US",
        "account_name": "SceneXtras (sandbox)",
        "account_tax_ids": None,
        "amount_due": total,
        "amount_overpaid": 0,
        "amount_paid": total if paid else 0,
        "amount_remaining": 0 if paid else total,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": attempt_count if attempt_count is not None else (1 if total else 0),
        "attempted": status in ("paid", "open") and bool(total),
        "auto_advance": status == "open",
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None,
        "billing_reason": billing_reason,
        "collection_method": "charge_automatically",
        "confirmation_secret": None,
        "created": created,
        "currency": price["currency"],
        "custom_fields": None,
        "customer": customer,
        "customer_address": None,
        "customer_email": customer_email,
        "customer_name": None,
        "customer_phone": None,
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": created,
        "ending_balance": 0,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": f"https://invoice.stripe.com/i/acct_sandbox/test_{iid}",
        "invoice_pdf": f"https://pay.stripe.com/invoice/acct_sandbox/test_{iid}/pdf",
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": list_object(lines, f"/v1/invoices/{iid}/lines"),
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None if paid else created + 3 * 86400,
        "number": number or f"SBX{secrets.randbelow(10**6):06d}-0001",
        "on_behalf_of": None,
        "parent": None
        if subscription is None
        else {
            "quote_details": None,
            "subscription_details": {"metadata": subscription_metadata or {}, "subscription": subscription},
            "type": "subscription_details",
        },
        "payment_settings": {"default_mandate": None, "payment_method_options": None, "payment_method_types": None},
        "period_end": period_end if period_end is not None else created,
        "period_start": period_start if period_start is not None else created,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": status,
        "status_transitions": {
            "finalized_at": created,
            "marked_uncollectible_at": None,
            "paid_at": created if paid else None,
            "voided_at": None,
        },
        "subtotal": subtotal,
        "subtotal_excluding_tax": subtotal,
        "test_clock": None,
        "total": total,
        "total_discount_amounts": []
        if not discount_amount
        else [{"amount": discount_amount, "discount": discount or new_id("di_", 14)}],
        "total_excluding_tax": total,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": created,
    }


def charge_object(
    id: str | None = None,
    customer: str = "cus_Sandbox000001",
    amount: int = 999,
    currency: str = "usd",
    amount_refunded: int = 0,
    payment_intent: str | None = None,
    created: int | None = None,
    description: str = "Subscription creation",
    email: str | None = None,
) -> Obj:
    cid = id or new_id("ch_3", 23)
    return {
        "id": cid,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": amount_refunded,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": new_id("txn_3", 23),
        "billing_details": {
            "address": {
                "city": None,
                "country": "US",
                "line1": None,
                "line2": None,
                "postal_code": "42424",
                "state": None,
            },
            "email": email,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        "calculated_statement_descriptor": "SCENEXTRAS",
        "captured": True,
        "created": created or _now(),
        "currency": currency,
        "customer": customer,
        "description": description,
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "fraud_details": {},
        "livemode": False,
        "metadata": {},
        "on_behalf_of": None,
        "outcome": {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "risk_score": 32,
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
        "paid": True,
        "payment_intent": payment_intent or new_id("pi_3", 23),
        "payment_method": new_id("pm_1", 23),
        "payment_method_details": {
            "card": {
                "brand": "visa",
                "country": "US",
                "exp_month": 12,
                "exp_year": 2034,
                "funding": "credit",
                "last4": "4242",
                "network": "visa",
            },
            "type": "card",
        },
        "receipt_email": email,
        "receipt_number": None,
        "receipt_url": f"https://pay.stripe.com/receipts/payment/sandbox_{cid}",
        "refunded": amount_refunded >= amount,
        "review": None,
        "shipping": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "succeeded",
        "transfer_data": None,
        "transfer_group": None,
    }


def checkout_session_object(
    id: str | None = None,
    mode: str = "subscription",
    customer: str | None = None,
    customer_email: str | None = None,
    client_reference_id: str | None = None,
    metadata: dict | None = None,
    success_url: str | None = "https://example.com/success",
    cancel_url: str | None = "https://example.com/cancel",
    amount_total: int = 999,
    currency: str = "usd",
    allow_promotion_codes: bool | None = None,
    status: str = "open",
    payment_status: str = "unpaid",
    subscription: str | None = None,
    invoice: str | None = None,
    url: str | None = None,
    created: int | None = None,
    discounts: list | None = None,
    amount_discount: int = 0,
) -> Obj:
    sid = id or new_id("cs_test_a1", 58)
    created = created or _now()
    complete = status == "complete"
    return {
        "id": sid,
        "object": "checkout.session",
        "adaptive_pricing": None,
        "after_expiration": None,
        "allow_promotion_codes": allow_promotion_codes,
        "amount_subtotal": amount_total + amount_discount,
        "amount_total": amount_total,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": cancel_url,
        "client_reference_id": client_reference_id,
        "client_secret": None,
        "collected_information": {"business_name": None, "individual_name": None, "shipping_details": None}
        if complete
        else None,
        "consent": None,
        "consent_collection": None,
        "created": created,
        "currency": currency,
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": customer,
        "customer_creation": None if mode == "subscription" else "if_required",
        "customer_details": None
        if not (complete or customer_email)
        else {
            "address": {
                "city": None,
                "country": "US",
                "line1": None,
                "line2": None,
                "postal_code": "42424",
                "state": None,
            }
            if complete
            else None,
            "business_name": None,
            "email": customer_email,
            "individual_name": None,
            "name": None,
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": [],
        },
        "customer_email": customer_email,
        "discounts": discounts or [],
        "expires_at": created + 86400,
        "invoice": invoice,
        "invoice_creation": None,
        "livemode": False,
        "locale": None,
        "metadata": metadata or {},
        "mode": mode,
        "origin_context": None,
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "always",
        "payment_method_configuration_details": None,
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"],
        "payment_status": payment_status,
        "permissions": None,
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": {
            "allow_redisplay_filters": ["always"],
            "payment_method_remove": "disabled",
            "payment_method_save": None,
        },
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": status,
        "submit_type": None,
        "subscription": subscription,
        "success_url": success_url,
        "total_details": {"amount_discount": amount_discount, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted_page",
        "url": None if status != "open" else (url or f"https://checkout.stripe.com/c/pay/{sid}"),
        "wallet_options": None,
    }


# ---------------------------------------------------------------------------------------- events


def event(
    type: str,
    obj: Obj,
    previous_attributes: Obj | None = None,
    id: str | None = None,
    created: int | None = None,
    api_version: str | None = None,
    request_id: str | None = None,
    idempotency_key: str | None = None,
) -> Obj:
    """Wrap ``obj`` in an event (``data.object`` is a snapshot copy)."""
    data: Obj = {"object": copy.deepcopy(obj)}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    return {
        "id": id or new_id("evt_1", 23),
        "object": "event",
        "api_version": api_version or API_VERSION,
        "created": created or _now(),
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": request_id, "idempotency_key": idempotency_key},
        "type": type,
    }


def checkout_session_completed(
    *,
    customer: str = "cus_Sandbox000001",
    subscription: str = "sub_1Sandbox00000000000000000",
    client_reference_id: str | None = None,
    metadata: dict | None = None,
    customer_email: str | None = None,
    amount_total: int = 999,
    session_id: str | None = None,
    payment_status: str = "paid",
    invoice: str | None = None,
    session: Obj | None = None,
    **event_kw: Any,
) -> Obj:
    """``checkout.session.completed`` for a subscription Checkout (what grants the plan since basil).
    Event fields: ``event_id``, ``event_created``, ``api_version``, ``request_id``, ``idempotency_key``."""
    rest, ev = _split_event_kw(event_kw)
    if rest:
        raise TypeError(f"unexpected arguments: {sorted(rest)}")
    session = session or checkout_session_object(
        id=session_id,
        customer=customer,
        customer_email=customer_email,
        client_reference_id=client_reference_id,
        metadata=metadata,
        amount_total=amount_total,
        status="complete",
        payment_status=payment_status,
        subscription=subscription,
        invoice=invoice,
    )
    return event("checkout.session.completed", session, **ev)


def _split_event_kw(kw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    event_keys = {
        "event_id": "id",
        "event_created": "created",
        "api_version": "api_version",
        "request_id": "request_id",
        "idempotency_key": "idempotency_key",
    }
    ev = {event_keys[k]: kw.pop(k) for k in list(kw) if k in event_keys}
    return kw, ev


def customer_subscription_created(subscription: Obj | None = None, **kw: Any) -> Obj:
    """Builds the subscription from ``kw`` (see :func:`subscription_object`) unless one is given.
    Event fields: ``event_id``, ``event_created``, ``api_version``, ``request_id``, ``idempotency_key``."""
    kw, ev = _split_event_kw(kw)
    sub = subscription if subscription is not None else subscription_object(**kw)
    return event("customer.subscription.created", sub, **ev)


def customer_subscription_updated(
    subscription: Obj | None = None, previous_attributes: Obj | None = None, **kw: Any
) -> Obj:
    kw, ev = _split_event_kw(kw)
    sub = subscription if subscription is not None else subscription_object(**kw)
    return event("customer.subscription.updated", sub, previous_attributes=previous_attributes or {}, **ev)


def customer_subscription_deleted(subscription: Obj | None = None, **kw: Any) -> Obj:
    kw, ev = _split_event_kw(kw)
    if subscription is None:
        kw.setdefault("status", "canceled")
        kw.setdefault("canceled_at", _now())
        subscription = subscription_object(**kw)
    return event("customer.subscription.deleted", subscription, **ev)


def customer_subscription_paused(subscription: Obj | None = None, **kw: Any) -> Obj:
    kw, ev = _split_event_kw(kw)
    if subscription is None:
        kw.setdefault("status", "paused")
        subscription = subscription_object(**kw)
    return event("customer.subscription.paused", subscription, **ev)


def customer_subscription_resumed(subscription: Obj | None = None, **kw: Any) -> Obj:
    kw, ev = _split_event_kw(kw)
    if subscription is None:
        kw.setdefault("status", "active")
        subscription = subscription_object(**kw)
    return event("customer.subscription.resumed", subscription, **ev)


def invoice_paid(invoice: Obj | None = None, **kw: Any) -> Obj:
    """``invoice.paid``; builds the invoice from ``kw`` (see :func:`invoice_object`) unless given."""
    kw, ev = _split_event_kw(kw)
    inv = invoice if invoice is not None else invoice_object(**kw)
    return event("invoice.paid", inv, **ev)


def invoice_payment_succeeded(invoice: Obj | None = None, **kw: Any) -> Obj:
    kw, ev = _split_event_kw(kw)
    inv = invoice if invoice is not None else invoice_object(**kw)
    return event("invoice.payment_succeeded", inv, **ev)


def invoice_payment_failed(invoice: Obj | None = None, **kw: Any) -> Obj:
    kw, ev = _split_event_kw(kw)
    if invoice is None:
        kw.setdefault("status", "open")
        kw.setdefault("billing_reason", "subscription_cycle")
        kw.setdefault("attempt_count", 1)
        invoice = invoice_object(**kw)
    return event("invoice.payment_failed", invoice, **ev)


def charge_refunded(charge: Obj | None = None, **kw: Any) -> Obj:
    kw, ev = _split_event_kw(kw)
    if charge is None:
        kw.setdefault("amount_refunded", kw.get("amount", 999))
        charge = charge_object(**kw)
    return event("charge.refunded", charge, previous_attributes={"amount_refunded": 0, "refunded": False}, **ev)


BUILDERS = {
    "checkout.session.completed": checkout_session_completed,
    "customer.subscription.created": customer_subscription_created,
    "customer.subscription.updated": customer_subscription_updated,
    "customer.subscription.deleted": customer_subscription_deleted,
    "customer.subscription.paused": customer_subscription_paused,
    "customer.subscription.resumed": customer_subscription_resumed,
    "invoice.paid": invoice_paid,
    "invoice.payment_succeeded": invoice_payment_succeeded,
    "invoice.payment_failed": invoice_payment_failed,
    "charge.refunded": charge_refunded,
}


# ------------------------------------------------------------------------------------ signatures


def payload(evt: Obj) -> bytes:
    """The event as Stripe puts it on the wire (pretty-printed JSON, 2-space indent)."""
    return json.dumps(evt, indent=2).encode("utf-8")


def sign_stripe_payload(payload_bytes: bytes | str, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header value for ``payload_bytes``: ``t=<ts>,v1=<hex hmac>``.

    The HMAC-SHA256 is keyed with the whole endpoint secret (``whsec_...``) over ``"<t>.<payload>"``,
    which is what ``stripe.Webhook.construct_event`` checks (default tolerance 300 s: pass an old
    ``timestamp`` to test replay rejection)."""
    if isinstance(payload_bytes, str):
        payload_bytes = payload_bytes.encode("utf-8")
    t = int(time.time()) if timestamp is None else int(timestamp)
    signed = str(t).encode() + b"." + payload_bytes
    sig = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"t={t},v1={sig}"


def signed_webhook(evt: Obj, secret: str, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    """``(body, headers)`` ready to POST to a webhook endpoint."""
    body = payload(evt)
    return body, {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": sign_stripe_payload(body, secret, timestamp),
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }
