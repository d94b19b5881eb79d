"""JSON Schemas of Stripe's objects, read from the typed resource classes of the official SDK.

stripe-python's resource classes are generated from Stripe's OpenAPI document ("File generated from
our OpenAPI spec") at the API version the SDK pins (`stripe.api_version`), the version the sandbox
answers. The document itself (`openapi/spec3.json`, 7.9 MB) is over what this workplace can fetch
whole (tests/fixtures/providers/README.md), so the contract is taken from its generated form:

- every declared field, typed: `str`/`int`/`float`/`bool`, `Literal[...]` as an enum, `Optional`
  as nullable, expandable fields (`Union[str, Customer]`) as id-or-object, `ListObject[T]` as a
  Stripe list, nested classes as objects, `UntypedStripeObject[str]` (metadata) as a string map;
- a field not typed `Optional` is required (Stripe sends it, null or not, on every object);
- nothing else is allowed (`additionalProperties: false`): a field the fake invents is drift.

Stripe's own fixture objects (fixtures3.json) are validated with the same schemas in the tests, so a
mistake here shows up against Stripe's data, not only against the sandbox's.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
import types
import typing
from functools import cache
from typing import Any, ForwardRef

import stripe
from stripe._list_object import ListObject
from stripe._stripe_object import StripeObject, UntypedStripeObject

# Fields the SDK declares but Stripe sends only when asked (`expand[]` / `include[]`), or only on
# some objects: allowed, never required.
NOT_ALWAYS_SENT = {
    ("Session", "line_items"),  # checkout.session: only with expand[]=line_items
    ("Session", "configuration"),  # billing_portal.session: an id unless expanded (typed Union)
}


@cache
def _module_imports(module_name: str) -> dict[str, tuple[str, str]]:
    """name -> (module, attribute) of every `from M import A [as B]` in a module (TYPE_CHECKING too)."""
    module = sys.modules[module_name]
    tree = ast.parse(inspect.getsource(module))
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                out[alias.asname or alias.name] = (node.module, alias.name)
    return out


def _resolve(ref: ForwardRef, owner: type) -> Any:
    name = ref.__forward_arg__
    module_name, attr = _module_imports(owner.__module__).get(name, (owner.__module__, name))
    return getattr(importlib.import_module(module_name), attr)


def _is_stripe_class(tp: Any) -> bool:
    return inspect.isclass(tp) and issubclass(tp, StripeObject)


class SchemaBuilder:
    def __init__(self) -> None:
        self.defs: dict[str, dict] = {}

    def ref(self, cls: type) -> dict:
        key = f"{cls.__module__}.{cls.__qualname__}"
        if key not in self.defs:
            self.defs[key] = {}  # placeholder: recursion (an object that refers to its own kind)
            self.defs[key] = self.object_schema(cls)
        return {"$ref": f"#/$defs/{key}"}

    def object_schema(self, cls: type) -> dict:
        props, required = {}, []
        for name, ann in getattr(cls, "__annotations__", {}).items():
            if name.startswith("_") or typing.get_origin(ann) is typing.ClassVar:
                continue
            props[name] = self.type_schema(ann, cls)
            nullable = _allows_none(ann)
            if not nullable and (cls.__name__, name) not in NOT_ALWAYS_SENT:
                required.append(name)
        return {
            "type": "object",
            "properties": props,
            "required": sorted(required),
            "additionalProperties": False,
            "title": cls.__qualname__,
        }

    def type_schema(self, tp: Any, owner: type) -> dict:
        if isinstance(tp, ForwardRef):
            tp = _resolve(tp, owner)
        if isinstance(tp, str):
            tp = _resolve(ForwardRef(tp), owner)
        if tp is type(None):
            return {"type": "null"}
        if tp is Any:
            return {}
        if tp is bool:
            return {"type": "boolean"}
        if tp is int:
            return {"type": "integer"}
        if tp is float:
            return {"type": "number"}
        if tp is str:
            return {"type": "string"}
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is typing.Literal:
            return {"enum": list(args)}
        if origin in (typing.Union, types.UnionType):
            literals = [a for a in args if typing.get_origin(a) is typing.Literal]
            rest = [a for a in args if typing.get_origin(a) is not typing.Literal]
            if literals and str in rest:
                # `Union[Literal[...], str]`: the SDK's forward compatibility; the spec's enum is the Literal.
                rest.remove(str)
            return {"anyOf": [self.type_schema(a, owner) for a in [*literals, *rest]]}
        if origin is list:
            return {"type": "array", "items": self.type_schema(args[0], owner) if args else {}}
        if origin is dict:
            return {"type": "object", "additionalProperties": self.type_schema(args[1], owner) if args else {}}
        if origin is ListObject or tp is ListObject:
            item = self.type_schema(args[0], owner) if args else {}
            # `total_count`: not in the document, but Stripe sends it on lists embedded in an object
            # (a subscription's `items`, an invoice's `lines`).
            return {
                "type": "object",
                "required": ["data", "has_more", "object", "url"],
                "additionalProperties": False,
                "properties": {
                    "object": {"enum": ["list"]},
                    "data": {"type": "array", "items": item},
                    "has_more": {"type": "boolean"},
                    "url": {"type": "string"},
                    "total_count": {"type": "integer"},
                },
            }
        if origin is UntypedStripeObject or tp is UntypedStripeObject:
            return {"type": "object", "additionalProperties": self.type_schema(args[0], owner) if args else {}}
        if _is_stripe_class(tp):
            if not getattr(tp, "__annotations__", None):
                return {"type": "object"}  # declared without fields in the SDK: any object
            return self.ref(tp)
        return {}


def _allows_none(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


def schema_for(cls: type) -> dict:
    builder = SchemaBuilder()
    root = builder.ref(cls)
    return {**root, "$defs": builder.defs}


# The objects the sandbox answers for the endpoints and webhooks SceneXtras uses.
OBJECTS: dict[str, type] = {
    "customer": stripe.Customer,
    "deleted_customer": stripe.Customer,  # a DELETE answers {id, object, deleted}: checked apart
    "subscription": stripe.Subscription,
    "subscription_item": stripe.SubscriptionItem,
    "price": stripe.Price,
    "product": stripe.Product,
    "coupon": stripe.Coupon,
    "promotion_code": stripe.PromotionCode,
    "discount": stripe.Discount,
    "invoice": stripe.Invoice,
    "charge": stripe.Charge,
    "refund": stripe.Refund,
    "event": stripe.Event,
    "checkout.session": stripe.checkout.Session,
    "billing_portal.session": stripe.billing_portal.Session,
}
