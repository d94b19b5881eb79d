"""Stripe API subset (``/stripe``) that the official SDK can talk to.

* bodies and queries are form-encoded and decoded like Stripe (``metadata[user_id]``,
  ``line_items[0][price]``, ``expand[]``); unknown top-level parameters are refused
  (400 ``parameter_unknown``) as Stripe does;
* auth: ``Authorization: Bearer sk_test_...`` (or ``rk_test_``); anything else 401 - a live key is
  refused so a misconfigured service cannot believe it reached real Stripe;
* ``Idempotency-Key`` on POST: same key + same endpoint + same parameters replays the first
  answer (header ``Idempotent-Replayed: true``); different parameters or endpoint -> 400
  ``idempotency_error``; answers to invalid parameters are not saved, as at Stripe;
* ``Stripe-Version`` is recorded (``GET /_sandbox/requests?provider=stripe``) and echoed;
* objects follow the basil+ shapes of :mod:`sandbox.stripe_events`; lists are newest first with
  ``limit``/``starting_after``/``ending_before``; ``expand[]`` resolves ids (``subscription``,
  ``customer``, ``latest_invoice``, ``items.data.price.product``, ``line_items``...).

Routes: customers (create, retrieve, update, delete, list, search), checkout sessions (create,
retrieve, list, line_items, expire), billing portal sessions, subscriptions (retrieve, update,
cancel, resume, list), prices, products, coupons, promotion codes, invoices, charges, refunds,
events (retrieve, list).

A Checkout/portal ``url`` points at small HTML pages of the sandbox (``/stripe/checkout/pay/{id}``,
``/stripe/billing_portal/p/session/{id}``) so a person using the keyless fleet can "pay".

Control (``/_sandbox/stripe/...``): complete or expire a Checkout Session, move a subscription
through renew / payment_failed / pause / resume / cancel / refund / trial_end, register webhook
endpoints (events are then POSTed there, signed), list deliveries, redeliver an event.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import html
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route, Router

from . import stripe_events as se
from .core import JSON, SandboxState, now, register_error_renderer, sandbox_scope

log = logging.getLogger("sandbox.stripe")

Obj = dict[str, Any]

DEFAULT_WEBHOOK_SECRET = "whsec_sandbox_0123456789abcdefghijklmnopqrstuv"
SEED_PRODUCTS = [
    ("prod_SandboxPro0001", "SceneXtras Pro"),
    ("prod_SandboxMax0001", "SceneXtras Max"),
]
SEED_PRICES = [
    ("price_sandbox_pro_monthly", "prod_SandboxPro0001", 999, "month", "pro_monthly", "Pro monthly"),
    ("price_sandbox_max_monthly", "prod_SandboxMax0001", 1999, "month", "max_monthly", "Max monthly"),
    ("price_sandbox_pro_yearly", "prod_SandboxPro0001", 9999, "year", "pro_yearly", "Pro yearly"),
    ("price_sandbox_max_yearly", "prod_SandboxMax0001", 19999, "year", "max_yearly", "Max yearly"),
]
SEED_COUPONS = [("SANDBOX20", 20.0, "repeating", 3), ("SANDBOX100", 100.0, "once", None)]
SEED_PROMOTION_CODES = [
    ("promo_SandboxWelcome20", "WELCOME20", "SANDBOX20"),
    ("promo_SandboxFree100", "FREEMONTH", "SANDBOX100"),
]

# Known top-level parameters per endpoint (anything else is `parameter_unknown`, like Stripe).
COMMON = {"expand"}
PARAMS = {
    "customer_create": {
        "email",
        "name",
        "phone",
        "description",
        "metadata",
        "address",
        "shipping",
        "preferred_locales",
        "payment_method",
        "invoice_settings",
        "tax_exempt",
        "test_clock",
        "balance",
        "source",
        "tax_id_data",
        "individual_name",
        "business_name",
    },
    "checkout_create": {
        "mode",
        "line_items",
        "success_url",
        "cancel_url",
        "customer",
        "customer_email",
        "client_reference_id",
        "metadata",
        "allow_promotion_codes",
        "discounts",
        "subscription_data",
        "payment_method_types",
        "billing_address_collection",
        "locale",
        "customer_update",
        "expires_at",
        "ui_mode",
        "return_url",
        "automatic_tax",
        "tax_id_collection",
        "consent_collection",
        "payment_method_collection",
        "customer_creation",
        "custom_text",
        "currency",
        "saved_payment_method_options",
        "payment_intent_data",
        "invoice_creation",
        "phone_number_collection",
        "redirect_on_completion",
        "origin_context",
    },
    "portal_create": {"customer", "return_url", "configuration", "flow_data", "locale", "on_behalf_of"},
    "subscription_update": {
        "items",
        "proration_behavior",
        "cancel_at_period_end",
        "cancel_at",
        "metadata",
        "pause_collection",
        "payment_behavior",
        "default_payment_method",
        "trial_end",
        "description",
        "billing_cycle_anchor",
        "proration_date",
        "discounts",
        "cancellation_details",
        "collection_method",
        "days_until_due",
        "off_session",
        "add_invoice_items",
        "trial_from_plan",
        "default_tax_rates",
        "automatic_tax",
    },
    "subscription_cancel": {"invoice_now", "prorate", "cancellation_details"},
}


class StripeError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param

    def body(self) -> Obj:
        err: Obj = {"message": self.message, "type": self.type}
        if self.code:
            err["code"] = self.code
            err["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            err["param"] = self.param
        err["request_log_url"] = "https://dashboard.stripe.com/test/logs?sandbox=true"
        return {"error": err}


@register_error_renderer("stripe")
def render_error(status: int, message: str | None = None, error_type: str | None = None, **_: Any) -> Response:
    if status == 429:
        e = StripeError(
            429,
            message
            or "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
            error_type or "invalid_request_error",
            "rate_limit",
        )
    elif status == 402:
        e = StripeError(402, message or "Your card was declined.", error_type or "card_error", "card_declined")
    elif status >= 500:
        e = StripeError(status, message or "An unknown error occurred", error_type or "api_error")
    else:
        e = StripeError(status, message or "Invalid request", error_type or "invalid_request_error")
    return JSON(e.body(), status_code=status)


def missing(kind: str, oid: str, param: str = "id") -> StripeError:
    return StripeError(404, f"No such {kind}: '{oid}'", code="resource_missing", param=param)


def _bool(v: Any) -> bool | None:
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        return v
    return str(v).lower() == "true"


def _int(v: Any, param: str) -> int | None:
    if v is None or v == "":
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        raise StripeError(400, f"Invalid integer: {v}", code="parameter_invalid_integer", param=param) from None


def _metadata(current: dict | None, update: Any) -> dict:
    """Stripe metadata semantics: merge; ``""`` for a key (or the whole field) unsets."""
    out = dict(current or {})
    if update == "":
        return {}
    if isinstance(update, dict):
        for k, v in update.items():
            if v == "":
                out.pop(k, None)
            else:
                out[k] = str(v)
    return out


@dataclass
class Delivery:
    event_id: str
    type: str
    url: str
    status: int | None = None
    error: str | None = None
    attempts: int = 0
    time: float = 0.0


@dataclass
class StripeStore:
    state: SandboxState
    objects: dict[str, Obj] = field(default_factory=dict)  # every object by id
    order: list[str] = field(default_factory=list)  # creation order of ids
    idempotency: dict[tuple[str, str], Obj] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    checkout_items: dict[str, list[Obj]] = field(default_factory=dict)
    checkout_extra: dict[str, Obj] = field(default_factory=dict)
    proration: dict[str, list[str]] = field(default_factory=dict)
    charges_by_subscription: dict[str, list[str]] = field(default_factory=dict)
    endpoints: list[Obj] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    tasks: set = field(default_factory=set)
    api_version: str = se.API_VERSION

    # -- ids and storage ----------------------------------------------------------------------
    def new_id(self, prefix: str, n: int) -> str:
        return prefix + self.state.rand(n)

    def put(self, obj: Obj) -> Obj:
        if obj["id"] not in self.objects:
            self.order.append(obj["id"])
        self.objects[obj["id"]] = obj
        return obj

    def get(self, oid: str, kind: str, param: str = "id") -> Obj:
        """The object ``oid`` of type ``kind`` (``"customer"``, ``"checkout.session"``...), else 404."""
        obj = self.objects.get(oid)
        if obj is None or obj.get("object") != kind:
            raise missing(kind.replace("_", " "), oid, param)
        return obj

    def of_kind(self, kind: str) -> list[Obj]:
        return [self.objects[i] for i in reversed(self.order) if self.objects[i].get("object") == kind]

    def seed(self) -> None:
        created = 1735689600
        for pid, name in SEED_PRODUCTS:
            self.put(se.product_object(pid, name, created))
        for pid, prod, amount, interval, lookup, nick in SEED_PRICES:
            self.put(
                se.price_object(pid, prod, amount, interval=interval, lookup_key=lookup, nickname=nick, created=created)
            )
        for cid, pct, duration, months in SEED_COUPONS:
            self.put(coupon_object(cid, percent_off=pct, duration=duration, duration_in_months=months, created=created))
        for pid, code, coupon in SEED_PROMOTION_CODES:
            self.put(promotion_code_object(pid, code, coupon, created))

    # -- events -------------------------------------------------------------------------------
    def emit(self, type: str, obj: Obj, previous: Obj | None = None, request: Request | None = None) -> Obj:
        rid = idem = None
        if request is not None:
            rid = request.scope.get("stripe_request_id")
            idem = request.headers.get("idempotency-key")
        evt = se.event(
            type,
            obj,
            previous_attributes=previous,
            id=self.new_id("evt_1", 23),
            created=now(),
            api_version=self.api_version,
            request_id=rid,
            idempotency_key=idem,
        )
        evt["pending_webhooks"] = len(self.endpoints)
        self.put(evt)
        self.events.append(evt["id"])
        return evt

    async def deliver(self, evt: Obj, endpoint: Obj) -> Delivery:
        d = Delivery(evt["id"], evt["type"], endpoint["url"])
        self.deliveries.append(d)
        body, headers = se.signed_webhook(evt, endpoint["secret"])
        d.attempts += 1
        d.time = now()
        try:
            async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
                r = await client.post(endpoint["url"], content=body, headers=headers)
            d.status = r.status_code
        except Exception as e:  # a failed delivery is recorded, not raised
            d.error = f"{type(e).__name__}: {e}"
        return d

    async def deliver_all(self, events: list[Obj]) -> list[Delivery]:
        out = []
        for evt in events:
            for ep in self.endpoints:
                if ep["enabled_events"] == ["*"] or evt["type"] in ep["enabled_events"]:
                    out.append(await self.deliver(evt, ep))
        return out

    def deliver_later(self, events: list[Obj]) -> None:
        if not self.endpoints or not events:
            return
        task = asyncio.get_running_loop().create_task(self.deliver_all(events))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def coupon_object(
    id: str,
    percent_off: float | None = None,
    amount_off: int | None = None,
    duration: str = "once",
    duration_in_months: int | None = None,
    created: int | None = None,
    name: str | None = None,
    currency: str | None = None,
    metadata: dict | None = None,
) -> Obj:
    return {
        "id": id,
        "object": "coupon",
        "amount_off": amount_off,
        "applies_to": None,
        "created": created or now(),
        "currency": currency if amount_off else None,
        "duration": duration,
        "duration_in_months": duration_in_months,
        "livemode": False,
        "max_redemptions": None,
        "metadata": metadata or {},
        "name": name or id,
        "percent_off": percent_off,
        "redeem_by": None,
        "times_redeemed": 0,
        "valid": True,
    }


def promotion_code_object(
    id: str, code: str, coupon: str, created: int | None = None, metadata: dict | None = None
) -> Obj:
    return {
        "id": id,
        "object": "promotion_code",
        "active": True,
        "code": code,
        "created": created or now(),
        "customer": None,
        "expires_at": None,
        "livemode": False,
        "max_redemptions": None,
        "metadata": metadata or {},
        "promotion": {"coupon": coupon, "type": "coupon"},
        "restrictions": {
            "currency_options": {},
            "first_time_transaction": False,
            "minimum_amount": None,
            "minimum_amount_currency": None,
        },
        "times_redeemed": 0,
    }


def store_of(state: SandboxState) -> StripeStore:
    return state.stores["stripe"]


FORWARDS = "stripe_forwards"  # state.stores key: endpoints that survive a reset (see forward_to)


def _reset(state: SandboxState) -> None:
    store = StripeStore(state)
    store.seed()
    for url, secret in state.stores.get(FORWARDS, []):
        store.endpoints.append(_endpoint(store, url, secret, ["*"]))
    state.stores["stripe"] = store


def _endpoint(store: StripeStore, url: str, secret: str, enabled_events: list[str]) -> Obj:
    return {"id": store.new_id("we_1", 23), "url": url, "secret": secret, "enabled_events": enabled_events}


def forward_to(state: SandboxState, url: str, secret: str = DEFAULT_WEBHOOK_SECRET) -> Obj:
    """What `stripe listen --forward-to URL` does: every event is POSTed to `url`, signed with
    `secret`, from now on. Unlike endpoints added through the control API, it survives
    `POST /_sandbox/reset` (the local fleet's Payment keeps receiving events after a reset)."""
    state.stores.setdefault(FORWARDS, []).append((url, secret))
    ep = _endpoint(store_of(state), url, secret, ["*"])
    store_of(state).endpoints.append(ep)
    return ep


# ---------------------------------------------------------------------------------------- expand

_EXPANDABLE_PREFIXES = ("cus_", "sub_", "in_", "price_", "prod_", "ch_", "cs_", "si_", "evt_", "bps_", "re_")


def _expand(store: StripeStore, obj: Any, path: list[str], depth: int = 0) -> Any:
    if depth > 4 or not path:
        return obj
    head, rest = path[0], path[1:]
    if isinstance(obj, list):
        return [_expand(store, o, path, depth) for o in obj]
    if not isinstance(obj, dict):
        return obj
    if head == "data" and obj.get("object") in ("list", "search_result"):
        obj["data"] = [_expand(store, o, rest, depth + 1) for o in obj["data"]]
        return obj
    if head == "line_items" and obj.get("object") == "checkout.session":
        items = copy.deepcopy(store.checkout_items.get(obj["id"], []))
        obj["line_items"] = _expand(
            store, se.list_object(items, f"/v1/checkout/sessions/{obj['id']}/line_items"), rest, depth + 1
        )
        return obj
    if head not in obj:
        return obj
    val = obj[head]
    if isinstance(val, str) and val.startswith(_EXPANDABLE_PREFIXES) and val in store.objects:
        val = copy.deepcopy(store.objects[val])
    obj[head] = _expand(store, val, rest, depth + 1)
    return obj


def render(store: StripeStore, obj: Obj, params: Obj) -> Obj:
    out = copy.deepcopy(obj)
    expand = params.get("expand") or []
    if isinstance(expand, str):
        expand = [expand]
    for path in expand:
        out = _expand(store, out, str(path).split("."))
    return out


def paginate(items: list[Obj], params: Obj, url: str) -> Obj:
    limit = _int(params.get("limit"), "limit") or 10
    if not 1 <= limit <= 100:
        raise StripeError(400, "Invalid limit: must be between 1 and 100", param="limit")
    start = 0
    if params.get("starting_after"):
        ids = [o["id"] for o in items]
        if params["starting_after"] not in ids:
            raise missing("object", params["starting_after"], "starting_after")
        start = ids.index(params["starting_after"]) + 1
    elif params.get("ending_before"):
        ids = [o["id"] for o in items]
        if params["ending_before"] not in ids:
            raise missing("object", params["ending_before"], "ending_before")
        end = ids.index(params["ending_before"])
        page = items[max(0, end - limit) : end]
        return {"object": "list", "data": page, "has_more": end - limit > 0, "url": url}
    page = items[start : start + limit]
    return {"object": "list", "data": page, "has_more": start + limit < len(items), "url": url}


# ------------------------------------------------------------------------------------- the search


def _search_match(obj: Obj, query: str) -> bool:
    """Stripe search query language, the part services use: ``field:'v'``, ``field~'v'``,
    ``metadata['k']:'v'``, ``-field:'v'`` (negation), joined by all-``AND`` or all-``OR``."""
    import re

    clauses = re.findall(r"(-?)([\w.]+(?:\[['\"][^'\"]+['\"]\])?)\s*([:~])\s*(?:'([^']*)'|\"([^\"]*)\"|(\S+))", query)
    if not clauses:
        raise StripeError(
            400, f"Could not parse the search query: {query}", code="parameter_invalid_string", param="query"
        )
    joiner_or = bool(re.search(r"\)\s*OR\s|'\s+OR\s+|\"\s+OR\s+|\s+OR\s+", query))
    results = []
    for neg, fld, op, v1, v2, v3 in clauses:
        value = v1 or v2 or v3
        m = re.match(r"metadata\[['\"]([^'\"]+)['\"]\]", fld)
        actual = (obj.get("metadata") or {}).get(m.group(1)) if m else obj.get(fld)
        actual_s = "" if actual is None else str(actual)
        if op == ":":
            hit = actual_s.lower() == value.lower() if fld in ("email", "name") else actual_s == value
        else:
            hit = value.lower() in actual_s.lower()
        results.append(hit != bool(neg))
    return any(results) if joiner_or else all(results)


# ---------------------------------------------------------------------------------------- routes


def build(state: SandboxState) -> Router:
    state.on_reset(_reset)

    def api(handler: Callable, kind: str | None = None, allowed: set | None = None) -> Callable:
        """Auth, parameter parsing and checks, idempotency, errors in Stripe's shape."""

        async def endpoint(request: Request) -> Response:
            store = store_of(state)
            sb = sandbox_scope(request)
            rid = "req_" + state.rand(14)
            request.scope["stripe_request_id"] = rid
            version = request.headers.get("stripe-version") or store.api_version
            request.scope["stripe_version"] = version
            headers = {"request-id": rid, "stripe-version": version}
            key = _api_key(request)
            if key is None:
                return _error(
                    StripeError(
                        401,
                        "You did not provide an API key. You need to provide your API key in "
                        "the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                        "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for "
                        "details, or we can help at https://support.stripe.com/.",
                    ),
                    headers,
                )
            if not key.startswith(("sk_test_", "rk_test_")):
                shown = key[:8] + "*" * 4 + key[-4:] if len(key) > 12 else key
                return _error(StripeError(401, f"Invalid API Key provided: {shown}"), headers)
            if request.method == "GET" or request.method == "DELETE":
                params = dict(sb["record"]["query"] or {})
                if request.method == "DELETE" and isinstance(sb["parsed"], dict):
                    params.update(sb["parsed"])
            else:
                params = sb["parsed"] if isinstance(sb["parsed"], dict) else {}
            path = sb["record"]["path"]
            idem_key = request.headers.get("idempotency-key") if request.method == "POST" else None
            fingerprint = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
            if idem_key:
                headers["idempotency-key"] = idem_key
                saved = store.idempotency.get((key, idem_key))
                if saved is not None:
                    if saved["path"] != path:
                        return _error(
                            StripeError(
                                400,
                                "Keys for idempotent requests can only be used for the same endpoint they were "
                                f"first used for ('{saved['path']}' vs '{path}'). Try using a key other than "
                                f"'{idem_key}' if you meant to execute a different request.",
                                type="idempotency_error",
                            ),
                            headers,
                        )
                    if saved["fingerprint"] != fingerprint:
                        return _error(
                            StripeError(
                                400,
                                "Keys for idempotent requests can only be used with the same parameters they were "
                                f"first used with. Try using a key other than '{idem_key}' if you meant to execute a "
                                "different request.",
                                type="idempotency_error",
                            ),
                            headers,
                        )
                    replay_headers = dict(
                        saved["headers"], **{"idempotent-replayed": "true", "original-request": saved["request_id"]}
                    )
                    return Response(
                        saved["body"],
                        status_code=saved["status"],
                        headers=replay_headers,
                        media_type="application/json",
                    )
            try:
                if allowed is not None:
                    unknown = sorted(set(params) - allowed - COMMON)
                    if unknown:
                        raise StripeError(
                            400, f"Received unknown parameter: {unknown[0]}", code="parameter_unknown", param=unknown[0]
                        )
                result = await handler(request, store, params)
                status = 200
                if isinstance(result, tuple):
                    result, status = result
                resp: Response = JSON(result, status_code=status, headers=headers)
                saveable = True
            except StripeError as e:
                resp = _error(e, headers)
                saveable = e.status == 402 or e.status >= 500
            if idem_key and saveable:
                store.idempotency[(key, idem_key)] = {
                    "path": path,
                    "fingerprint": fingerprint,
                    "status": resp.status_code,
                    "body": resp.body,
                    "headers": {k: v for k, v in headers.items()},
                    "request_id": rid,
                }
            return resp

        return endpoint

    # -- customers ----------------------------------------------------------------------------
    async def customer_create(request: Request, store: StripeStore, p: Obj) -> Obj:
        cus = se.customer_object(
            store.new_id("cus_", 14),
            email=p.get("email") or None,
            name=p.get("name") or None,
            metadata=_metadata({}, p.get("metadata")),
            created=now(),
            phone=p.get("phone") or None,
            description=p.get("description") or None,
        )
        store.put(cus)
        store.deliver_later([store.emit("customer.created", cus, request=request)])
        return render(store, cus, p)

    async def customer_get(request: Request, store: StripeStore, p: Obj) -> Obj:
        cid = request.path_params["id"]
        cus = store.objects.get(cid)
        if cus is None or cus.get("object") != "customer":
            raise missing("customer", cid)
        if cus.get("deleted"):
            return {"id": cid, "object": "customer", "deleted": True}
        return render(store, cus, p)

    async def customer_update(request: Request, store: StripeStore, p: Obj) -> Obj:
        cus = store.get(request.path_params["id"], "customer")
        previous: Obj = {}
        for fld in ("email", "name", "phone", "description"):
            if fld in p:
                previous[fld] = cus[fld]
                cus[fld] = p[fld] or None
        if "metadata" in p:
            previous["metadata"] = dict(cus["metadata"])
            cus["metadata"] = _metadata(cus["metadata"], p["metadata"])
        store.deliver_later([store.emit("customer.updated", cus, previous, request)])
        return render(store, cus, p)

    async def customer_delete(request: Request, store: StripeStore, p: Obj) -> Obj:
        cus = store.get(request.path_params["id"], "customer")
        if cus.get("deleted"):
            raise missing("customer", cus["id"])
        events = []
        for sub in store.of_kind("subscription"):
            if sub["customer"] == cus["id"] and sub["status"] not in ("canceled", "incomplete_expired"):
                events.append(_cancel_now(store, sub, request))
        cus["deleted"] = True
        events.append(store.emit("customer.deleted", cus, request=request))
        store.deliver_later(events)
        return {"id": cus["id"], "object": "customer", "deleted": True}

    async def customer_list(request: Request, store: StripeStore, p: Obj) -> Obj:
        items = [c for c in store.of_kind("customer") if not c.get("deleted")]
        if p.get("email"):
            items = [c for c in items if (c.get("email") or "") == p["email"]]
        out = paginate(items, p, "/v1/customers")
        return render(store, out, p)

    async def customer_search(request: Request, store: StripeStore, p: Obj) -> Obj:
        query = p.get("query")
        if not query:
            raise StripeError(400, "Missing required param: query.", code="parameter_missing", param="query")
        items = [c for c in store.of_kind("customer") if not c.get("deleted") and _search_match(c, query)]
        limit = _int(p.get("limit"), "limit") or 10
        page = _int(p.get("page"), "page") or 0
        data = items[page : page + limit]
        more = page + limit < len(items)
        out = {
            "object": "search_result",
            "data": data,
            "has_more": more,
            "next_page": str(page + limit) if more else None,
            "url": "/v1/customers/search",
        }
        return render(store, out, p)

    # -- prices, products, coupons, promotion codes ------------------------------------------
    async def price_get(request: Request, store: StripeStore, p: Obj) -> Obj:
        return render(store, store.get(request.path_params["id"], "price"), p)

    async def price_list(request: Request, store: StripeStore, p: Obj) -> Obj:
        items = store.of_kind("price")
        if p.get("lookup_keys"):
            keys = p["lookup_keys"] if isinstance(p["lookup_keys"], list) else [p["lookup_keys"]]
            items = [x for x in items if x.get("lookup_key") in keys]
        if p.get("product"):
            items = [x for x in items if x["product"] == p["product"]]
        if _bool(p.get("active")) is not None:
            items = [x for x in items if x["active"] == _bool(p["active"])]
        return render(store, paginate(items, p, "/v1/prices"), p)

    async def price_create(request: Request, store: StripeStore, p: Obj) -> Obj:
        if not p.get("currency"):
            raise StripeError(400, "Missing required param: currency.", code="parameter_missing", param="currency")
        product = p.get("product")
        if not product and isinstance(p.get("product_data"), dict):
            prod = store.put(se.product_object(store.new_id("prod_", 14), p["product_data"].get("name", "Product")))
            product = prod["id"]
        if not product:
            raise StripeError(400, "Missing required param: product.", code="parameter_missing", param="product")
        store.get(product, "product", "product")
        rec = p.get("recurring") or {}
        price = se.price_object(
            store.new_id("price_1", 23),
            product,
            _int(p.get("unit_amount"), "unit_amount") or 0,
            currency=p["currency"],
            interval=rec.get("interval"),
            interval_count=_int(rec.get("interval_count"), "recurring[interval_count]") or 1,
            lookup_key=p.get("lookup_key") or None,
            nickname=p.get("nickname") or None,
            created=now(),
            metadata=_metadata({}, p.get("metadata")),
        )
        store.put(price)
        return render(store, price, p)

    async def product_create(request: Request, store: StripeStore, p: Obj) -> Obj:
        if not p.get("name"):
            raise StripeError(400, "Missing required param: name.", code="parameter_missing", param="name")
        prod = se.product_object(
            p.get("id") or store.new_id("prod_", 14), p["name"], now(), _metadata({}, p.get("metadata"))
        )
        return render(store, store.put(prod), p)

    async def product_get(request: Request, store: StripeStore, p: Obj) -> Obj:
        return render(store, store.get(request.path_params["id"], "product"), p)

    async def coupon_create(request: Request, store: StripeStore, p: Obj) -> Obj:
        cid = p.get("id") or store.new_id("", 8)
        if cid in store.objects:
            raise StripeError(400, "Coupon already exists.", code="resource_already_exists", param="id")
        c = coupon_object(
            cid,
            percent_off=float(p["percent_off"]) if p.get("percent_off") else None,
            amount_off=_int(p.get("amount_off"), "amount_off"),
            duration=p.get("duration") or "once",
            duration_in_months=_int(p.get("duration_in_months"), "duration_in_months"),
            name=p.get("name") or None,
            currency=p.get("currency"),
            metadata=_metadata({}, p.get("metadata")),
        )
        return render(store, store.put(c), p)

    async def coupon_get(request: Request, store: StripeStore, p: Obj) -> Obj:
        return render(store, store.get(request.path_params["id"], "coupon"), p)

    async def promo_create(request: Request, store: StripeStore, p: Obj) -> Obj:
        promotion = p.get("promotion") or {}
        coupon = promotion.get("coupon") or p.get("coupon")
        if not coupon:
            raise StripeError(
                400, "Missing required param: promotion[coupon].", code="parameter_missing", param="promotion[coupon]"
            )
        store.get(coupon, "coupon", "promotion[coupon]")
        code = p.get("code") or store.new_id("", 8).upper()
        pc = promotion_code_object(store.new_id("promo_1", 23), code, coupon, now(), _metadata({}, p.get("metadata")))
        return render(store, store.put(pc), p)

    async def promo_list(request: Request, store: StripeStore, p: Obj) -> Obj:
        items = store.of_kind("promotion_code")
        if p.get("code"):
            items = [x for x in items if x["code"].lower() == str(p["code"]).lower()]
        if _bool(p.get("active")) is not None:
            items = [x for x in items if x["active"] == _bool(p["active"])]
        return render(store, paginate(items, p, "/v1/promotion_codes"), p)

    async def promo_get(request: Request, store: StripeStore, p: Obj) -> Obj:
        return render(store, store.get(request.path_params["id"], "promotion_code"), p)

    # -- checkout -----------------------------------------------------------------------------
    async def checkout_create(request: Request, store: StripeStore, p: Obj) -> Obj:
        mode = p.get("mode")
        if not mode:
            raise StripeError(400, "Missing required param: mode.", code="parameter_missing", param="mode")
        if mode not in ("payment", "setup", "subscription"):
            raise StripeError(
                400,
                "Invalid mode: must be one of payment, setup, or subscription",
                code="parameter_invalid_string",
                param="mode",
            )
        if p.get("customer") and p.get("customer_email"):
            raise StripeError(
                400, "You may only specify one of these parameters: customer, customer_email.", param="customer_email"
            )
        if _bool(p.get("allow_promotion_codes")) and p.get("discounts"):
            raise StripeError(
                400,
                "You may only specify one of these parameters: allow_promotion_codes, discounts.",
                param="discounts",
            )
        if p.get("customer"):
            cus = store.objects.get(p["customer"])
            if cus is None or cus.get("object") != "customer" or cus.get("deleted"):
                raise missing("customer", p["customer"], "customer")
        line_items = p.get("line_items") or []
        if mode != "setup" and not line_items:
            raise StripeError(400, "Missing required param: line_items.", code="parameter_missing", param="line_items")
        items: list[Obj] = []
        total = 0
        currency = "usd"
        for i, li in enumerate(line_items):
            if not isinstance(li, dict) or not li.get("price"):
                raise StripeError(
                    400,
                    f"Missing required param: line_items[{i}][price].",
                    code="parameter_missing",
                    param=f"line_items[{i}][price]",
                )
            price = store.objects.get(li["price"])
            if price is None or price.get("object") != "price":
                raise missing("price", li["price"], f"line_items[{i}][price]")
            qty = _int(li.get("quantity"), f"line_items[{i}][quantity]") or 1
            if mode == "payment" and price["type"] == "recurring":
                raise StripeError(
                    400,
                    "You specified `payment` mode but passed a recurring price. Either switch to "
                    "`subscription` mode or use only one-time prices.",
                    param=f"line_items[{i}][price]",
                )
            amount = price["unit_amount"] * qty
            total += amount
            currency = price["currency"]
            prod = store.objects.get(price["product"], {})
            items.append(
                {
                    "id": store.new_id("li_1", 23),
                    "object": "item",
                    "adjustable_quantity": None,
                    "amount_discount": 0,
                    "amount_subtotal": amount,
                    "amount_tax": 0,
                    "amount_total": amount,
                    "currency": currency,
                    "description": prod.get("name"),
                    "discounts": [],
                    "price": copy.deepcopy(price),
                    "quantity": qty,
                    "taxes": [],
                }
            )
        if mode == "subscription" and not any(i["price"]["type"] == "recurring" for i in items):
            raise StripeError(
                400,
                "You must provide at least one recurring price in `subscription` mode when using prices.",
                param="line_items",
            )
        discounts = []
        amount_discount = 0
        for d in p.get("discounts") or []:
            coupon_id = d.get("coupon")
            if d.get("promotion_code"):
                pc = store.get(d["promotion_code"], "promotion_code", "discounts[0][promotion_code]")
                coupon_id = pc["promotion"]["coupon"]
            if coupon_id:
                coupon = store.get(coupon_id, "coupon", "discounts[0][coupon]")
                amount_discount = _discount_amount(coupon, total)
            discounts.append({k: v for k, v in d.items() if v})
        sub_data = p.get("subscription_data") or {}
        if sub_data and mode != "subscription":
            raise StripeError(400, "You can not pass `subscription_data` in `payment` mode.", param="subscription_data")
        trial_days = _int(sub_data.get("trial_period_days"), "subscription_data[trial_period_days]")
        if trial_days is not None and trial_days < 1:
            raise StripeError(
                400,
                "subscription_data[trial_period_days] must be at least 1.",
                param="subscription_data[trial_period_days]",
            )
        sid = store.new_id("cs_test_a1", 58)
        base = _base_url(request)
        sess = se.checkout_session_object(
            id=sid,
            mode=mode,
            customer=p.get("customer") or None,
            customer_email=p.get("customer_email") or None,
            client_reference_id=p.get("client_reference_id") or None,
            metadata=_metadata({}, p.get("metadata")),
            success_url=p.get("success_url"),
            cancel_url=p.get("cancel_url"),
            amount_total=0 if trial_days else total - amount_discount,
            currency=currency,
            allow_promotion_codes=_bool(p.get("allow_promotion_codes")),
            url=f"{base}/stripe/checkout/pay/{sid}",
            created=now(),
            discounts=discounts,
            amount_discount=0 if trial_days else amount_discount,
        )
        if p.get("locale"):
            sess["locale"] = p["locale"]
        store.put(sess)
        store.checkout_items[sid] = items
        store.checkout_extra[sid] = {
            "subscription_data": sub_data,
            "trial_period_days": trial_days,
            "total": total,
            "discounts": discounts,
        }
        return render(store, sess, p)

    async def checkout_get(request: Request, store: StripeStore, p: Obj) -> Obj:
        return render(store, store.get(request.path_params["id"], "checkout.session"), p)

    async def checkout_list(request: Request, store: StripeStore, p: Obj) -> Obj:
        items = store.of_kind("checkout.session")
        for fld in ("customer", "subscription", "status"):
            if p.get(fld):
                items = [x for x in items if x.get(fld) == p[fld]]
        return render(store, paginate(items, p, "/v1/checkout/sessions"), p)

    async def checkout_line_items(request: Request, store: StripeStore, p: Obj) -> Obj:
        sess = store.get(request.path_params["id"], "checkout.session")
        items = copy.deepcopy(store.checkout_items.get(sess["id"], []))
        return render(store, paginate(items, p, f"/v1/checkout/sessions/{sess['id']}/line_items"), p)

    async def checkout_expire(request: Request, store: StripeStore, p: Obj) -> Obj:
        sess = store.get(request.path_params["id"], "checkout.session")
        return render(store, _expire_session(store, sess, request), p)

    # -- billing portal -----------------------------------------------------------------------
    async def portal_create(request: Request, store: StripeStore, p: Obj) -> Obj:
        if not p.get("customer"):
            raise StripeError(400, "Missing required param: customer.", code="parameter_missing", param="customer")
        cus = store.objects.get(p["customer"])
        if cus is None or cus.get("object") != "customer" or cus.get("deleted"):
            raise missing("customer", p["customer"], "customer")
        bid = store.new_id("bps_1", 23)
        sess = {
            "id": bid,
            "object": "billing_portal.session",
            "configuration": "bpc_1SandboxPortalConfig00000",
            "created": now(),
            "customer": cus["id"],
            "flow": None,
            "livemode": False,
            "locale": p.get("locale") or None,
            "on_behalf_of": None,
            "return_url": p.get("return_url") or None,
            "url": f"{_base_url(request)}/stripe/billing_portal/p/session/{bid}",
        }
        return render(store, store.put(sess), p)

    # -- subscriptions ------------------------------------------------------------------------
    async def subscription_get(request: Request, store: StripeStore, p: Obj) -> Obj:
        return render(store, store.get(request.path_params["id"], "subscription"), p)

    async def subscription_list(request: Request, store: StripeStore, p: Obj) -> Obj:
        items = store.of_kind("subscription")
        status = p.get("status")
        if status and status != "all":
            items = [s for s in items if s["status"] == status]
        elif not status:
            items = [s for s in items if s["status"] not in ("canceled", "incomplete_expired")]
        if p.get("customer"):
            items = [s for s in items if s["customer"] == p["customer"]]
        if p.get("price"):
            items = [s for s in items if any(i["price"]["id"] == p["price"] for i in s["items"]["data"])]
        return render(store, paginate(items, p, "/v1/subscriptions"), p)

    async def subscription_update(request: Request, store: StripeStore, p: Obj) -> Obj:
        sub = store.get(request.path_params["id"], "subscription")
        if sub["status"] == "canceled":
            allowed = {"metadata", "cancellation_details", "expand"}
            if set(p) - allowed:
                raise StripeError(400, "A canceled subscription can only update its cancellation_details and metadata.")
        if p.get("payment_behavior") == "pending_if_incomplete":
            # Pending updates take only these parameters; metadata joined them in 2026-05-27.dahlia.
            supported = {
                "expand",
                "payment_behavior",
                "proration_behavior",
                "proration_date",
                "billing_cycle_anchor",
                "items",
                "trial_end",
                "trial_from_plan",
                "add_invoice_items",
            }
            if str(request.scope.get("stripe_version", "")) >= "2026-05-27":
                supported.add("metadata")
            extra = sorted(set(p) - supported)
            if extra:
                raise StripeError(
                    400,
                    f"When `payment_behavior` is `pending_if_incomplete`, you can only pass the "
                    f"parameters supported by pending updates ({', '.join(sorted(supported))}); "
                    f"received: {', '.join(extra)}.",
                    param=extra[0],
                )
        previous: Obj = {}
        events: list[Obj] = []
        behavior = p.get("proration_behavior") or "create_prorations"
        if behavior not in ("create_prorations", "none", "always_invoice"):
            raise StripeError(
                400,
                "Invalid proration_behavior: must be one of create_prorations, none, or always_invoice",
                code="parameter_invalid_string",
                param="proration_behavior",
            )
        if p.get("items"):
            previous["items"] = copy.deepcopy(sub["items"])
            old_amount = sum(i["price"]["unit_amount"] * i["quantity"] for i in sub["items"]["data"])
            for n, spec in enumerate(p["items"]):
                if not isinstance(spec, dict):
                    continue
                if spec.get("id"):
                    item = next((i for i in sub["items"]["data"] if i["id"] == spec["id"]), None)
                    if item is None:
                        raise StripeError(
                            400,
                            f"Subscription item {spec['id']} does not belong to this subscription.",
                            param=f"items[{n}][id]",
                        )
                    if _bool(spec.get("deleted")):
                        sub["items"]["data"].remove(item)
                        continue
                else:
                    if not spec.get("price"):
                        raise StripeError(
                            400,
                            f"Missing required param: items[{n}][price].",
                            code="parameter_missing",
                            param=f"items[{n}][price]",
                        )
                    first = sub["items"]["data"][0] if sub["items"]["data"] else None
                    item = se.subscription_item_object(
                        sub["id"],
                        store.get(spec["price"], "price", f"items[{n}][price]"),
                        first["current_period_start"] if first else now(),
                        first["current_period_end"] if first else se.add_months(now()),
                        id=store.new_id("si_", 14),
                        created=now(),
                    )
                    sub["items"]["data"].append(item)
                if spec.get("price"):
                    price = store.get(spec["price"], "price", f"items[{n}][price]")
                    item["price"] = copy.deepcopy(price)
                    item["plan"] = se.plan_from_price(price)
                if spec.get("quantity"):
                    item["quantity"] = _int(spec["quantity"], f"items[{n}][quantity]")
                if "metadata" in spec:
                    item["metadata"] = _metadata(item["metadata"], spec["metadata"])
            sub["items"]["total_count"] = len(sub["items"]["data"])
            new_amount = sum(i["price"]["unit_amount"] * i["quantity"] for i in sub["items"]["data"])
            store.proration.setdefault(sub["id"], []).append(behavior)
            if behavior == "always_invoice" and new_amount != old_amount:
                item = sub["items"]["data"][0]
                inv = se.invoice_object(
                    id=store.new_id("in_1", 23),
                    customer=sub["customer"],
                    subscription=sub["id"],
                    subscription_item=item["id"],
                    price=item["price"],
                    status="paid",
                    billing_reason="subscription_update",
                    amount=max(0, new_amount - old_amount),
                    line_period_start=now(),
                    line_period_end=item["current_period_end"],
                    subscription_metadata=sub["metadata"],
                    created=now(),
                )
                inv["lines"]["data"][0]["parent"]["subscription_item_details"]["proration"] = True
                store.put(inv)
                previous["latest_invoice"] = sub["latest_invoice"]
                sub["latest_invoice"] = inv["id"]
                events += [
                    store.emit("invoice.created", inv, request=request),
                    store.emit("invoice.paid", inv, request=request),
                ]
        if "cancel_at_period_end" in p:
            flag = bool(_bool(p["cancel_at_period_end"]))
            if flag != sub["cancel_at_period_end"]:
                previous.update(
                    cancel_at_period_end=sub["cancel_at_period_end"],
                    cancel_at=sub["cancel_at"],
                    canceled_at=sub["canceled_at"],
                    cancellation_details=copy.deepcopy(sub["cancellation_details"]),
                )
                end = sub["items"]["data"][0]["current_period_end"]
                sub["cancel_at_period_end"] = flag
                sub["cancel_at"] = end if flag else None
                sub["canceled_at"] = now() if flag else None
                sub["cancellation_details"]["reason"] = "cancellation_requested" if flag else None
        if "cancel_at" in p:
            previous.setdefault("cancel_at", sub["cancel_at"])
            sub["cancel_at"] = _int(p["cancel_at"], "cancel_at")
        if "metadata" in p:
            previous["metadata"] = dict(sub["metadata"])
            sub["metadata"] = _metadata(sub["metadata"], p["metadata"])
        if "pause_collection" in p:
            previous["pause_collection"] = sub["pause_collection"]
            pc = p["pause_collection"]
            sub["pause_collection"] = (
                None
                if pc == ""
                else {"behavior": pc.get("behavior"), "resumes_at": _int(pc.get("resumes_at"), "resumes_at")}
            )
        if p.get("trial_end") == "now" and sub["status"] == "trialing":
            events += _end_trial(store, sub, request, previous)
        if "description" in p:
            previous["description"] = sub["description"]
            sub["description"] = p["description"] or None
        if previous:
            events.append(store.emit("customer.subscription.updated", sub, previous, request))
        store.deliver_later(events)
        return render(store, sub, p)

    async def subscription_cancel(request: Request, store: StripeStore, p: Obj) -> Obj:
        sub = store.get(request.path_params["id"], "subscription")
        if sub["status"] == "canceled":
            raise StripeError(400, f"This subscription has already been canceled: {sub['id']}", code="resource_missing")
        details = p.get("cancellation_details") or {}
        evt = _cancel_now(
            store, sub, request, comment=details.get("comment") or None, feedback=details.get("feedback") or None
        )
        store.deliver_later([evt])
        return render(store, sub, p)

    async def subscription_resume(request: Request, store: StripeStore, p: Obj) -> Obj:
        sub = store.get(request.path_params["id"], "subscription")
        if sub["status"] != "paused":
            raise StripeError(400, "Only paused subscriptions can be resumed.")
        store.deliver_later(_resume(store, sub, request))
        return render(store, sub, p)

    # -- invoices, charges, refunds, events ---------------------------------------------------
    async def invoice_get(request: Request, store: StripeStore, p: Obj) -> Obj:
        return render(store, store.get(request.path_params["id"], "invoice"), p)

    async def invoice_list(request: Request, store: StripeStore, p: Obj) -> Obj:
        items = store.of_kind("invoice")
        if p.get("customer"):
            items = [x for x in items if x["customer"] == p["customer"]]
        if p.get("subscription"):
            items = [
                x
                for x in items
                if ((x.get("parent") or {}).get("subscription_details") or {}).get("subscription") == p["subscription"]
            ]
        if p.get("status"):
            items = [x for x in items if x["status"] == p["status"]]
        return render(store, paginate(items, p, "/v1/invoices"), p)

    async def charge_get(request: Request, store: StripeStore, p: Obj) -> Obj:
        return render(store, store.get(request.path_params["id"], "charge"), p)

    async def refund_create(request: Request, store: StripeStore, p: Obj) -> Obj:
        charge = None
        if p.get("charge"):
            charge = store.get(p["charge"], "charge", "charge")
        elif p.get("payment_intent"):
            charge = next((c for c in store.of_kind("charge") if c["payment_intent"] == p["payment_intent"]), None)
            if charge is None:
                raise missing("payment_intent", p["payment_intent"], "payment_intent")
        else:
            raise StripeError(
                400,
                "One of the following params should be provided for this request: payment_intent or charge.",
                param="charge",
            )
        amount = _int(p.get("amount"), "amount") or charge["amount"] - charge["amount_refunded"]
        if amount > charge["amount"] - charge["amount_refunded"]:
            raise StripeError(
                400,
                f"Refund amount (${amount / 100:.2f}) is greater than unrefunded amount on charge "
                f"(${(charge['amount'] - charge['amount_refunded']) / 100:.2f})",
                param="amount",
                code="amount_too_large",
            )
        refund, evt = _refund(
            store, charge, amount, request, reason=p.get("reason") or None, metadata=_metadata({}, p.get("metadata"))
        )
        store.deliver_later([evt])
        return render(store, refund, p)

    async def event_get(request: Request, store: StripeStore, p: Obj) -> Obj:
        return render(store, store.get(request.path_params["id"], "event"), p)

    async def event_list(request: Request, store: StripeStore, p: Obj) -> Obj:
        items = [store.objects[e] for e in reversed(store.events)]
        if p.get("type"):
            t = p["type"]
            items = [e for e in items if e["type"] == t or (t.endswith("*") and e["type"].startswith(t[:-1]))]
        if p.get("types"):
            items = [e for e in items if e["type"] in p["types"]]
        created = p.get("created")
        if isinstance(created, dict):
            for op, fn in (
                ("gt", lambda a, b: a > b),
                ("gte", lambda a, b: a >= b),
                ("lt", lambda a, b: a < b),
                ("lte", lambda a, b: a <= b),
            ):
                if created.get(op):
                    bound = _int(created[op], f"created[{op}]")
                    items = [e for e in items if fn(e["created"], bound)]
        elif created:
            items = [e for e in items if e["created"] == _int(created, "created")]
        return render(store, paginate(items, p, "/v1/events"), p)

    # -- hosted pages (no API key: a browser opens them) -------------------------------------
    async def pay_page(request: Request) -> Response:
        store = store_of(state)
        sess = store.objects.get(request.path_params["id"])
        if sess is None or sess.get("object") != "checkout.session":
            return HTMLResponse("<h1>Checkout session not found</h1>", status_code=404)
        if request.method == "POST":
            if sess["status"] == "open":
                form = sandbox_scope(request)["parsed"] or {}
                result = _complete_session(
                    store,
                    sess,
                    request,
                    promotion_code=form.get("promotion_code") or None,
                    email=form.get("email") or None,
                )
                await store.deliver_all(result["events"])
            target = (sess.get("success_url") or "/").replace("{CHECKOUT_SESSION_ID}", sess["id"])
            return RedirectResponse(target, status_code=303)
        items = store.checkout_items.get(sess["id"], [])
        rows = "".join(
            f"<li>{html.escape(str(i['description']))} - {i['amount_total'] / 100:.2f} {i['currency'].upper()}</li>"
            for i in items
        )
        cancel = html.escape(sess.get("cancel_url") or "/")
        return HTMLResponse(
            "<!doctype html><title>Sandbox Checkout</title><body style='font-family:sans-serif'>"
            "<p style='background:#fc0;padding:8px'><b>LOCAL SANDBOX</b> - not Stripe, no money moves.</p>"
            f"<h1>Checkout</h1><p>Status: {html.escape(sess['status'])}</p><ul>{rows}</ul>"
            "<form method='post'><label>Email <input name='email' "
            f"value='{html.escape(sess.get('customer_email') or '')}'>"
            "</label><br><label>Promotion code <input name='promotion_code'></label><br>"
            "<button type='submit'>Pay (sandbox)</button></form>"
            f"<p><a href='{cancel}'>Cancel</a></p></body>"
        )

    async def portal_page(request: Request) -> Response:
        store = store_of(state)
        sess = store.objects.get(request.path_params["id"])
        if sess is None or sess.get("object") != "billing_portal.session":
            return HTMLResponse("<h1>Portal session not found</h1>", status_code=404)
        if request.method == "POST":
            form = sandbox_scope(request)["parsed"] or {}
            sub = store.objects.get(form.get("subscription", ""))
            if sub and sub["customer"] == sess["customer"] and not sub["cancel_at_period_end"]:
                previous = {"cancel_at_period_end": False, "cancel_at": None, "canceled_at": None}
                sub["cancel_at_period_end"] = True
                sub["cancel_at"] = sub["items"]["data"][0]["current_period_end"]
                sub["canceled_at"] = now()
                sub["cancellation_details"]["reason"] = "cancellation_requested"
                await store.deliver_all([store.emit("customer.subscription.updated", sub, previous)])
            return RedirectResponse(sess.get("return_url") or "/", status_code=303)
        subs = [s for s in store.of_kind("subscription") if s["customer"] == sess["customer"]]
        rows = "".join(
            f"<li>{html.escape(s['id'])}: {html.escape(s['items']['data'][0]['price'].get('nickname') or '')} "
            f"{s['status']}{' (cancels at period end)' if s['cancel_at_period_end'] else ''}"
            f"<form method='post' style='display:inline'><input type='hidden' name='subscription' value='{s['id']}'>"
            "<button>Cancel plan</button></form></li>"
            for s in subs
        )
        back = html.escape(sess.get("return_url") or "/")
        return HTMLResponse(
            "<!doctype html><title>Sandbox billing portal</title><body style='font-family:sans-serif'>"
            "<p style='background:#fc0;padding:8px'><b>LOCAL SANDBOX</b> - not Stripe.</p>"
            f"<h1>Your plan</h1><ul>{rows or '<li>No subscriptions</li>'}</ul><p><a href='{back}'>Return</a></p>"
        )

    P = PARAMS
    routes = [
        Route("/v1/customers", api(customer_create, allowed=P["customer_create"]), methods=["POST"]),
        Route("/v1/customers", api(customer_list), methods=["GET"]),
        Route("/v1/customers/search", api(customer_search), methods=["GET"]),
        Route("/v1/customers/{id}", api(customer_get), methods=["GET"]),
        Route("/v1/customers/{id}", api(customer_update, allowed=P["customer_create"]), methods=["POST"]),
        Route("/v1/customers/{id}", api(customer_delete), methods=["DELETE"]),
        Route("/v1/prices", api(price_list), methods=["GET"]),
        Route("/v1/prices", api(price_create), methods=["POST"]),
        Route("/v1/prices/{id}", api(price_get), methods=["GET"]),
        Route("/v1/products", api(product_create), methods=["POST"]),
        Route("/v1/products/{id}", api(product_get), methods=["GET"]),
        Route("/v1/coupons", api(coupon_create), methods=["POST"]),
        Route("/v1/coupons/{id}", api(coupon_get), methods=["GET"]),
        Route("/v1/promotion_codes", api(promo_create), methods=["POST"]),
        Route("/v1/promotion_codes", api(promo_list), methods=["GET"]),
        Route("/v1/promotion_codes/{id}", api(promo_get), methods=["GET"]),
        Route("/v1/checkout/sessions", api(checkout_create, allowed=P["checkout_create"]), methods=["POST"]),
        Route("/v1/checkout/sessions", api(checkout_list), methods=["GET"]),
        Route("/v1/checkout/sessions/{id}", api(checkout_get), methods=["GET"]),
        Route("/v1/checkout/sessions/{id}/line_items", api(checkout_line_items), methods=["GET"]),
        Route("/v1/checkout/sessions/{id}/expire", api(checkout_expire), methods=["POST"]),
        Route("/v1/billing_portal/sessions", api(portal_create, allowed=P["portal_create"]), methods=["POST"]),
        Route("/v1/subscriptions", api(subscription_list), methods=["GET"]),
        Route("/v1/subscriptions/{id}", api(subscription_get), methods=["GET"]),
        Route("/v1/subscriptions/{id}", api(subscription_update, allowed=P["subscription_update"]), methods=["POST"]),
        Route("/v1/subscriptions/{id}", api(subscription_cancel, allowed=P["subscription_cancel"]), methods=["DELETE"]),
        Route("/v1/subscriptions/{id}/resume", api(subscription_resume), methods=["POST"]),
        Route("/v1/invoices", api(invoice_list), methods=["GET"]),
        Route("/v1/invoices/{id}", api(invoice_get), methods=["GET"]),
        Route("/v1/charges/{id}", api(charge_get), methods=["GET"]),
        Route("/v1/refunds", api(refund_create), methods=["POST"]),
        Route("/v1/events", api(event_list), methods=["GET"]),
        Route("/v1/events/{id}", api(event_get), methods=["GET"]),
        Route("/checkout/pay/{id}", pay_page, methods=["GET", "POST"]),
        Route("/billing_portal/p/session/{id}", portal_page, methods=["GET", "POST"]),
    ]
    return Router(routes=routes)


def _api_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if scheme.lower() == "basic" and token.strip():
        import base64

        try:
            return base64.b64decode(token).decode().split(":", 1)[0] or None
        except Exception:
            return None
    return None


def _error(e: StripeError, headers: dict[str, str]) -> Response:
    return JSON(e.body(), status_code=e.status, headers=headers)


def _base_url(request: Request) -> str:
    state: SandboxState = request.scope["sandbox"]["state"]
    if state.base_url:
        return state.base_url.rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}"


def _discount_amount(coupon: Obj, total: int) -> int:
    if coupon.get("percent_off"):
        return int(round(total * coupon["percent_off"] / 100))
    return min(total, coupon.get("amount_off") or 0)


# -------------------------------------------------------------------------------- state changes


def _complete_session(
    store: StripeStore,
    sess: Obj,
    request: Request | None = None,
    promotion_code: str | None = None,
    email: str | None = None,
) -> Obj:
    """Pay an open Checkout Session: customer, subscription, first invoice, charge and events."""
    if sess["status"] != "open":
        raise StripeError(400, f"This Checkout Session is {sess['status']} and cannot be completed.")
    events: list[Obj] = []
    extra = store.checkout_extra.get(sess["id"], {})
    items = store.checkout_items.get(sess["id"], [])
    ts = now()
    email = email or sess.get("customer_email")
    if sess.get("customer"):
        cus = store.objects[sess["customer"]]
        email = email or cus.get("email")
    else:
        cus = store.put(se.customer_object(store.new_id("cus_", 14), email=email, created=ts))
        events.append(store.emit("customer.created", cus, request=request))
    discount_amount = 0
    coupon = None
    for d in extra.get("discounts") or []:
        if d.get("promotion_code"):
            coupon = store.objects[store.objects[d["promotion_code"]]["promotion"]["coupon"]]
        elif d.get("coupon"):
            coupon = store.objects[d["coupon"]]
    if promotion_code and sess.get("allow_promotion_codes"):
        pc = next((x for x in store.of_kind("promotion_code") if x["code"].lower() == promotion_code.lower()), None)
        if pc is None:
            raise StripeError(400, f"No such promotion code: '{promotion_code}'")
        coupon = store.objects[pc["promotion"]["coupon"]]
        pc["times_redeemed"] += 1
        sess["discounts"] = [{"coupon": None, "promotion_code": pc["id"]}]
    total = extra.get("total", 0)
    if coupon is not None:
        discount_amount = _discount_amount(coupon, total)
    sess.update(status="complete", customer=cus["id"], url=None)
    sess["customer_details"] = {
        "address": {"city": None, "country": "US", "line1": None, "line2": None, "postal_code": "42424", "state": None},
        "business_name": None,
        "email": email,
        "individual_name": None,
        "name": None,
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }
    sess["collected_information"] = {"business_name": None, "individual_name": None, "shipping_details": None}
    result: Obj = {"session": sess, "customer": cus, "subscription": None, "invoice": None, "events": events}
    if sess["mode"] != "subscription":
        sess["payment_status"] = "paid" if sess["mode"] == "payment" else "no_payment_required"
        events.append(store.emit("checkout.session.completed", sess, request=request))
        return result
    trial_days = extra.get("trial_period_days")
    recurring = [i for i in items if i["price"]["type"] == "recurring"]
    first = recurring[0]
    price = store.objects[first["price"]["id"]]
    sub_meta = _metadata({}, (extra.get("subscription_data") or {}).get("metadata"))
    sid = store.new_id("sub_1", 23)
    trial_end = ts + trial_days * 86400 if trial_days else None
    period_end = trial_end or se.add_interval(ts, price["recurring"]["interval"], price["recurring"]["interval_count"])
    sub = se.subscription_object(
        id=sid,
        customer=cus["id"],
        price=price,
        status="trialing" if trial_days else "active",
        period_start=ts,
        period_end=period_end,
        metadata=sub_meta,
        trial_end=trial_end,
        created=ts,
        item_id=store.new_id("si_", 14),
    )
    sub["items"]["data"][0]["quantity"] = first["quantity"]
    for extra_item in recurring[1:]:
        p2 = store.objects[extra_item["price"]["id"]]
        sub["items"]["data"].append(
            se.subscription_item_object(
                sid, p2, ts, period_end, extra_item["quantity"], id=store.new_id("si_", 14), created=ts
            )
        )
    sub["items"]["total_count"] = len(sub["items"]["data"])
    if coupon is not None:
        sub["discounts"] = [store.new_id("di_", 14)]
    amount = 0 if trial_days else total
    inv = se.invoice_object(
        id=store.new_id("in_1", 23),
        customer=cus["id"],
        subscription=sid,
        subscription_item=sub["items"]["data"][0]["id"],
        price=price,
        status="paid",
        billing_reason="subscription_create",
        amount=amount,
        line_period_start=ts,
        line_period_end=period_end,
        customer_email=email,
        subscription_metadata=sub_meta,
        created=ts,
        discount_amount=0 if trial_days else discount_amount,
        discount=sub["discounts"][0] if sub["discounts"] else None,
        number=f"{cus['invoice_prefix']}-{cus['next_invoice_sequence']:04d}",
    )
    cus["next_invoice_sequence"] += 1
    sub["latest_invoice"] = inv["id"]
    store.put(sub)
    store.put(inv)
    charge = None
    if inv["amount_paid"]:
        charge = store.put(
            se.charge_object(
                store.new_id("ch_3", 23),
                customer=cus["id"],
                amount=inv["amount_paid"],
                currency=inv["currency"],
                payment_intent=store.new_id("pi_3", 23),
                created=ts,
                email=email,
            )
        )
        store.charges_by_subscription.setdefault(sid, []).append(charge["id"])
    sess.update(
        subscription=sid,
        invoice=inv["id"],
        payment_status="no_payment_required" if trial_days or not inv["amount_paid"] else "paid",
        amount_total=inv["amount_paid"],
        total_details={
            "amount_discount": inv["total_discount_amounts"][0]["amount"] if inv["total_discount_amounts"] else 0,
            "amount_shipping": 0,
            "amount_tax": 0,
        },
    )
    events += [
        store.emit("customer.subscription.created", sub, request=request),
        store.emit("invoice.created", inv, request=request),
        store.emit("invoice.finalized", inv, request=request),
        store.emit("invoice.paid", inv, request=request),
        store.emit("invoice.payment_succeeded", inv, request=request),
        store.emit("checkout.session.completed", sess, request=request),
    ]
    result.update(subscription=sub, invoice=inv, charge=charge)
    return result


def _expire_session(store: StripeStore, sess: Obj, request: Request | None = None) -> Obj:
    if sess["status"] != "open":
        raise StripeError(
            400,
            f'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout '
            f'Session has a status of "{sess["status"]}".',
        )
    sess.update(status="expired", url=None)
    store.deliver_later([store.emit("checkout.session.expired", sess, request=request)])
    return sess


def _cancel_now(
    store: StripeStore,
    sub: Obj,
    request: Request | None = None,
    comment: str | None = None,
    feedback: str | None = None,
    reason: str = "cancellation_requested",
) -> Obj:
    ts = now()
    sub.update(status="canceled", canceled_at=sub.get("canceled_at") or ts, ended_at=ts)
    sub["cancellation_details"] = {"comment": comment, "feedback": feedback, "reason": reason}
    return store.emit("customer.subscription.deleted", sub, request=request)


def _new_period_invoice(store: StripeStore, sub: Obj, status: str, billing_reason: str) -> Obj:
    item = sub["items"]["data"][0]
    price = item["price"]
    ts = now()
    cus = store.objects.get(sub["customer"], {})
    amount = sum(i["price"]["unit_amount"] * i["quantity"] for i in sub["items"]["data"])
    start = item["current_period_end"] if billing_reason == "subscription_cycle" else ts
    end = se.add_interval(start, price["recurring"]["interval"], price["recurring"]["interval_count"])
    inv = se.invoice_object(
        id=store.new_id("in_1", 23),
        customer=sub["customer"],
        subscription=sub["id"],
        subscription_item=item["id"],
        price=price,
        status=status,
        billing_reason=billing_reason,
        amount=amount,
        period_start=item["current_period_start"],
        period_end=item["current_period_end"],
        line_period_start=start,
        line_period_end=end,
        customer_email=cus.get("email"),
        subscription_metadata=sub["metadata"],
        created=ts,
        attempt_count=1,
    )
    return store.put(inv)


def _renew(store: StripeStore, sub: Obj, request: Request | None = None) -> list[Obj]:
    if sub["status"] not in ("active", "past_due", "trialing"):
        raise StripeError(400, f"Cannot renew a subscription with status {sub['status']}.")
    if sub["cancel_at_period_end"]:  # the period ends: the subscription ends with it
        return [_cancel_now(store, sub, request)]
    previous: Obj = {"items": copy.deepcopy(sub["items"]), "latest_invoice": sub["latest_invoice"]}
    reason = "subscription_cycle" if sub["status"] != "trialing" else "subscription_cycle"
    inv = _new_period_invoice(store, sub, "paid", reason)
    line = inv["lines"]["data"][0]
    for item in sub["items"]["data"]:
        item["current_period_start"] = line["period"]["start"]
        item["current_period_end"] = line["period"]["end"]
    if sub["status"] != "active":
        previous["status"] = sub["status"]
        sub["status"] = "active"
    sub["latest_invoice"] = inv["id"]
    charge = store.put(
        se.charge_object(
            store.new_id("ch_3", 23),
            customer=sub["customer"],
            amount=inv["amount_paid"],
            currency=inv["currency"],
            payment_intent=store.new_id("pi_3", 23),
            description="Subscription update",
        )
    )
    store.charges_by_subscription.setdefault(sub["id"], []).append(charge["id"])
    return [
        store.emit("invoice.created", inv, request=request),
        store.emit("invoice.finalized", inv, request=request),
        store.emit("invoice.paid", inv, request=request),
        store.emit("invoice.payment_succeeded", inv, request=request),
        store.emit("customer.subscription.updated", sub, previous, request),
    ]


def _end_trial(store: StripeStore, sub: Obj, request: Request | None, previous: Obj) -> list[Obj]:
    previous.setdefault("status", sub["status"])
    previous.setdefault("trial_end", sub["trial_end"])
    previous.setdefault("items", copy.deepcopy(sub["items"]))
    ts = now()
    sub["trial_end"] = ts
    for item in sub["items"]["data"]:
        item["current_period_end"] = ts
    events = _renew(store, sub, request)
    return [e for e in events if e["type"] != "customer.subscription.updated"]


def _payment_failed(store: StripeStore, sub: Obj, request: Request | None = None) -> list[Obj]:
    if sub["status"] not in ("active", "past_due", "trialing"):
        raise StripeError(400, f"Cannot fail a payment of a subscription with status {sub['status']}.")
    previous = {"status": sub["status"], "latest_invoice": sub["latest_invoice"]}
    inv = _new_period_invoice(store, sub, "open", "subscription_cycle")
    inv["next_payment_attempt"] = now() + 3 * 86400
    sub["status"] = "past_due"
    sub["latest_invoice"] = inv["id"]
    return [
        store.emit("invoice.created", inv, request=request),
        store.emit("invoice.finalized", inv, request=request),
        store.emit("invoice.payment_failed", inv, request=request),
        store.emit("customer.subscription.updated", sub, previous, request),
    ]


def _pause(store: StripeStore, sub: Obj, request: Request | None = None) -> list[Obj]:
    if sub["status"] not in ("active", "trialing", "past_due"):
        raise StripeError(400, f"Cannot pause a subscription with status {sub['status']}.")
    previous = {"status": sub["status"]}
    sub["status"] = "paused"
    return [
        store.emit("customer.subscription.paused", sub, request=request),
        store.emit("customer.subscription.updated", sub, previous, request),
    ]


def _resume(store: StripeStore, sub: Obj, request: Request | None = None) -> list[Obj]:
    if sub["status"] != "paused":
        raise StripeError(400, "Only paused subscriptions can be resumed.")
    previous = {"status": "paused", "items": copy.deepcopy(sub["items"])}
    ts = now()
    price = sub["items"]["data"][0]["price"]
    end = se.add_interval(ts, price["recurring"]["interval"], price["recurring"]["interval_count"])
    for item in sub["items"]["data"]:
        item["current_period_start"], item["current_period_end"] = ts, end
    sub["status"] = "active"
    sub["billing_cycle_anchor"] = ts
    return [
        store.emit("customer.subscription.resumed", sub, request=request),
        store.emit("customer.subscription.updated", sub, previous, request),
    ]


def _refund(
    store: StripeStore,
    charge: Obj,
    amount: int,
    request: Request | None = None,
    reason: str | None = None,
    metadata: dict | None = None,
) -> tuple[Obj, Obj]:
    previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
    refund = store.put(
        {
            "id": store.new_id("re_3", 23),
            "object": "refund",
            "amount": amount,
            "balance_transaction": store.new_id("txn_3", 23),
            "charge": charge["id"],
            "created": now(),
            "currency": charge["currency"],
            "destination_details": {
                "card": {
                    "reference_status": "pending",
                    "reference_type": "acquirer_reference_number",
                    "type": "refund",
                },
                "type": "card",
            },
            "metadata": metadata or {},
            "payment_intent": charge["payment_intent"],
            "reason": reason,
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": "succeeded",
            "transfer_reversal": None,
        }
    )
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
    return refund, store.emit("charge.refunded", charge, previous, request)


# ------------------------------------------------------------------------------ control routes


def control_routes(state: SandboxState) -> list[Route]:
    async def body_of(request: Request) -> Obj:
        raw = await request.body()
        return json.loads(raw) if raw else {}

    def fail(e: StripeError) -> Response:
        return JSON(e.body(), status_code=e.status)

    def summary(result: Obj, deliveries: list[Delivery]) -> Obj:
        return {k: v for k, v in result.items() if k != "events"} | {
            "events": [{"id": e["id"], "type": e["type"]} for e in result["events"]],
            "deliveries": [vars(d) for d in deliveries],
        }

    async def complete(request: Request) -> Response:
        store = store_of(state)
        spec = await body_of(request)
        try:
            sess = store.get(request.path_params["id"], "checkout.session")
            result = _complete_session(
                store, sess, None, promotion_code=spec.get("promotion_code"), email=spec.get("email")
            )
        except StripeError as e:
            return fail(e)
        deliveries = await store.deliver_all(result["events"]) if spec.get("deliver", True) else []
        return JSON(summary(result, deliveries))

    async def expire(request: Request) -> Response:
        store = store_of(state)
        try:
            sess = _expire_session(store, store.get(request.path_params["id"], "checkout.session"))
        except StripeError as e:
            return fail(e)
        return JSON({"session": sess})

    actions = {
        "renew": _renew,
        "payment_failed": _payment_failed,
        "pause": _pause,
        "resume": _resume,
        "cancel": lambda store, sub, request=None: [_cancel_now(store, sub, request)],
        "trial_end": lambda store, sub, request=None: (
            _end_trial(store, sub, request, {})
            + [store.emit("customer.subscription.updated", sub, {"status": "trialing"})]
        ),
    }

    async def subscription_action(request: Request) -> Response:
        store = store_of(state)
        spec = await body_of(request)
        action = request.path_params["action"]
        try:
            sub = store.get(request.path_params["id"], "subscription")
            if action == "refund":
                charge_ids = store.charges_by_subscription.get(sub["id"], [])
                if not charge_ids:
                    raise StripeError(400, "This subscription has no charge to refund.")
                charge = store.objects[charge_ids[-1]]
                amount = int(spec.get("amount") or (charge["amount"] - charge["amount_refunded"]))
                _, evt = _refund(store, charge, amount)
                events = [evt]
            elif action in actions:
                if action == "trial_end" and sub["status"] != "trialing":
                    raise StripeError(400, "The subscription is not trialing.")
                events = actions[action](store, sub)
            else:
                return JSON(
                    {"error": f"unknown action {action}; one of {sorted(actions) + ['refund']}"}, status_code=400
                )
        except StripeError as e:
            return fail(e)
        deliveries = await store.deliver_all(events) if spec.get("deliver", True) else []
        return JSON(
            {
                "subscription": sub,
                "events": [{"id": e["id"], "type": e["type"]} for e in events],
                "deliveries": [vars(d) for d in deliveries],
            }
        )

    async def add_endpoint(request: Request) -> Response:
        store = store_of(state)
        spec = await body_of(request)
        if not spec.get("url"):
            return JSON({"error": "url is required"}, status_code=400)
        ep = _endpoint(
            store, spec["url"], spec.get("secret") or DEFAULT_WEBHOOK_SECRET, spec.get("enabled_events") or ["*"]
        )
        store.endpoints.append(ep)
        return JSON(ep, status_code=201)

    async def list_endpoints(request: Request) -> Response:
        return JSON({"data": store_of(state).endpoints})

    async def deliveries(request: Request) -> Response:
        store = store_of(state)
        await asyncio.gather(*list(store.tasks), return_exceptions=True)
        return JSON({"data": [vars(d) for d in store.deliveries]})

    async def redeliver(request: Request) -> Response:
        store = store_of(state)
        try:
            evt = store.get(request.path_params["id"], "event")
        except StripeError as e:
            return fail(e)
        return JSON({"deliveries": [vars(d) for d in await store.deliver_all([evt])]})

    async def config(request: Request) -> Response:
        store = store_of(state)
        spec = await body_of(request)
        if spec.get("api_version"):
            store.api_version = spec["api_version"]
        return JSON({"api_version": store.api_version, "webhook_secret": DEFAULT_WEBHOOK_SECRET})

    async def objects(request: Request) -> Response:
        store = store_of(state)
        kind = request.query_params.get("object")
        return JSON({"data": store.of_kind(kind) if kind else [store.objects[i] for i in reversed(store.order)]})

    return [
        Route("/_sandbox/stripe/checkout/sessions/{id}/complete", complete, methods=["POST"]),
        Route("/_sandbox/stripe/checkout/sessions/{id}/expire", expire, methods=["POST"]),
        Route("/_sandbox/stripe/subscriptions/{id}/{action}", subscription_action, methods=["POST"]),
        Route("/_sandbox/stripe/webhook_endpoints", add_endpoint, methods=["POST"]),
        Route("/_sandbox/stripe/webhook_endpoints", list_endpoints, methods=["GET"]),
        Route("/_sandbox/stripe/deliveries", deliveries, methods=["GET"]),
        Route("/_sandbox/stripe/events/{id}/deliver", redeliver, methods=["POST"]),
        Route("/_sandbox/stripe/config", config, methods=["GET", "POST"]),
        Route("/_sandbox/stripe/objects", objects, methods=["GET"]),
    ]
